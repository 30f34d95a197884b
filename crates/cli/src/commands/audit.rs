//! `jg audit [--since TIME] [--user NAME] [--limit N] [--json]`: the
//! gateway's audit log, newest first (needs the `view-audit` permission).

use anyhow::Context;
use jumpgate_api_types::SecurityEvent;
use jumpgate_client::Client;

use crate::table;

/// Longest detail shown in the table; `--json` has them whole.
const DETAIL_WIDTH: usize = 60;

/// `since`: RFC 3339 UTC, already converted from the command line.
pub(crate) async fn run(
    client: &Client,
    since: Option<&str>,
    user: Option<&str>,
    limit: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let events = client
        .audit(since, user, limit)
        .await
        .context("listing audit events")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&events)?)?;
    } else {
        out!("{}", render(&events))?;
    }
    Ok(())
}

fn render(events: &[SecurityEvent]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                table::timestamp(&e.at),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                e.outcome.clone(),
                table::truncate(&e.detail, DETAIL_WIDTH),
            ]
        })
        .collect();
    table::render(
        &["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_each_event_with_a_truncated_detail() {
        let login = SecurityEvent {
            id: 2,
            at: "2026-11-23T10:00:05.123Z".into(),
            actor: "alice".into(),
            action: "login".into(),
            target: "alice".into(),
            outcome: "ok".into(),
            detail: "from 10.0.0.5".into(),
            hash: "ab".repeat(32),
        };
        let denied = SecurityEvent {
            id: 1,
            at: "2026-11-23T11:59:00+02:00".into(),
            actor: "bob".into(),
            action: "user.delete".into(),
            target: "carol".into(),
            outcome: "denied".into(),
            detail: "x".repeat(100),
            hash: "cd".repeat(32),
        };
        let out = render(&[login, denied]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"],
            "{out}"
        );
        let row1: Vec<&str> = lines[1].split("  ").filter(|c| !c.is_empty()).collect();
        let row1: Vec<&str> = row1.iter().map(|c| c.trim()).collect();
        assert_eq!(
            row1,
            [
                "2026-11-23 10:00:05",
                "alice",
                "login",
                "alice",
                "ok",
                "from 10.0.0.5"
            ],
            "{out}"
        );
        assert!(lines[2].starts_with("2026-11-23 09:59:00  bob"), "{out}");
        assert!(lines[2].contains("user.delete") && lines[2].contains("denied"));
        let detail = format!("{}…", "x".repeat(DETAIL_WIDTH - 1));
        assert!(lines[2].ends_with(&detail), "{out}");
        assert!(!lines[2].contains(&"x".repeat(DETAIL_WIDTH)), "{out}");
        // Columns line up under their headers.
        let col = lines[0].find("OUTCOME").unwrap();
        assert_eq!(&lines[1][col..col + 2], "ok", "{out}");
        assert_eq!(&lines[2][col..col + 6], "denied", "{out}");
    }
}
