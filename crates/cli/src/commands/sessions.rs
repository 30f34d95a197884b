//! `jg sessions [--endpoint E] [--user U] [--kind K] [--since T] [--until T]
//! [--active|--ended] [--before ID] [--limit N] [--json]`: the session event
//! table, newest first, a page at a time.

use anyhow::Context;
use jumpgate_api_types::SessionEvent;
use jumpgate_client::{Client, SessionFilter};

use crate::table;

/// Longest target shown in the table (commands can be long); `--json` has
/// them whole.
const TARGET_WIDTH: usize = 40;

/// The gateway's page size when no `--limit` is given.
const DEFAULT_PAGE: usize = 1000;

pub(crate) async fn run(client: &Client, f: &SessionFilter<'_>, json: bool) -> anyhow::Result<()> {
    let events = client.sessions(f).await.context("listing sessions")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&events)?)?;
    } else {
        out!("{}", render(&events))?;
    }
    // A full page may have more after it: say how to get it (on stderr, so
    // the output stays the rows alone).
    let page = f.limit.map_or(DEFAULT_PAGE, |n| n as usize);
    if let Some(last) = events.last().filter(|_| events.len() == page) {
        eprintln!(
            "more sessions may follow: jg sessions --before {} ...",
            last.id
        );
    }
    Ok(())
}

fn render(events: &[SessionEvent]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let duration = match &e.ended_at {
                Some(end) => table::duration_between(&e.started_at, end).unwrap_or_default(),
                None => "running".to_owned(),
            };
            vec![
                table::timestamp(&e.started_at),
                e.username.clone(),
                e.endpoint.clone(),
                e.kind.clone(),
                table::truncate(&e.target, TARGET_WIDTH),
                duration,
                table::human_bytes(e.bytes_up),
                table::human_bytes(e.bytes_down),
                e.outcome.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "STARTED", "USER", "ENDPOINT", "KIND", "TARGET", "DURATION", "UP", "DOWN", "OUTCOME",
        ],
        &rows,
    )
}

/// `jg watch SESSION`: the session's output on this terminal, read-only. A
/// desktop session is refused with a pointer to the console.
pub(crate) async fn watch(client: &Client, id: &str) -> anyhow::Result<i32> {
    use jumpgate_net::session::MsgStream;
    use jumpgate_proto::session::SessionMsg;
    use tokio::io::AsyncWriteExt;
    let mut io = MsgStream::new(
        client
            .watch_session(id)
            .await
            .with_context(|| format!("cannot watch session {id}"))?,
    );
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        match io.read_msg().await.context("watching")? {
            Some(SessionMsg::Accepted(_)) => {
                stderr
                    .write_all(format!("[watching {id}, read-only; Ctrl-C to stop]\r\n").as_bytes())
                    .await?;
            }
            Some(SessionMsg::Stdout(b)) => {
                stdout.write_all(&b).await?;
                stdout.flush().await?;
            }
            Some(SessionMsg::Stderr(b)) => {
                stderr.write_all(&b).await?;
            }
            Some(SessionMsg::Closed { reason }) => {
                stderr
                    .write_all(format!("\r\n[{reason}]\r\n").as_bytes())
                    .await?;
                return Ok(0);
            }
            // A screen is not for a terminal.
            Some(SessionMsg::DesktopInfo(_) | SessionMsg::Video(_)) => {
                anyhow::bail!(
                    "session {id} is a desktop session: watch it in the web console (Sessions, then Watch), or take a picture with --screenshot FILE"
                );
            }
            Some(_) => {}
            None => return Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_duration_bytes_and_outcome() {
        let done = SessionEvent {
            id: "1".into(),
            username: "alice".into(),
            endpoint: "web-01".into(),
            kind: "exec".into(),
            target: "uname -a".into(),
            started_at: "2025-05-01T10:00:00Z".into(),
            ended_at: Some("2025-05-01T10:01:05Z".into()),
            bytes_up: 10,
            bytes_down: 2048,
            outcome: "ok".into(),
            support_id: None,
        };
        let running = SessionEvent {
            id: "2".into(),
            ended_at: None,
            outcome: "open".into(),
            kind: "shell".into(),
            target: String::new(),
            ..done.clone()
        };
        let out = render(&[done, running]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("STARTED"), "{out}");
        assert!(lines[1].starts_with("2025-05-01 10:00:00  alice"), "{out}");
        for cell in ["uname -a", "1m05s", "10 B", "2.0 KiB", "ok"] {
            assert!(lines[1].contains(cell), "{cell}: {out}");
        }
        assert!(
            lines[2].contains("running") && lines[2].ends_with("open"),
            "{out}"
        );
    }
}
