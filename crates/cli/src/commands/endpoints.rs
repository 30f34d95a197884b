//! `jg endpoints [--json]`.

use anyhow::Context;
use jumpgate_api_types::Endpoint;
use jumpgate_client::Client;

use crate::table;

pub(crate) async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let endpoints = client.endpoints().await.context("listing endpoints")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&endpoints)?)?;
    } else {
        out!("{}", render(&endpoints))?;
    }
    Ok(())
}

/// `online`/`offline`, and `conflict` while a second agent with the
/// endpoint's identity has been refused (until it is re-enrolled).
fn status(e: &Endpoint) -> String {
    let state = if e.online { "online" } else { "offline" };
    match &e.conflict {
        Some(c) => format!("{state}, conflict ({}x)", c.count),
        None => state.to_owned(),
    }
}

fn render(endpoints: &[Endpoint]) -> String {
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.group.clone(),
                status(e),
                match (&e.last_seen, e.online) {
                    (_, true) => "now".to_owned(),
                    (Some(t), false) => table::timestamp(t),
                    (None, false) => "never".to_owned(),
                },
                e.os.clone(),
                e.hostname.clone(),
            ]
        })
        .collect();
    table::render(
        &["NAME", "GROUP", "STATUS", "LAST SEEN", "OS", "HOSTNAME"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, online: bool, last_seen: Option<&str>) -> Endpoint {
        Endpoint {
            id: format!("id-{name}"),
            name: name.into(),
            group: "prod".into(),
            online,
            last_seen: last_seen.map(Into::into),
            enrolled_at: "2025-01-01T00:00:00Z".into(),
            hostname: format!("{name}.lan"),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            conflict: None,
        }
    }

    #[test]
    fn table_shows_status_and_last_seen() {
        let out = render(&[
            endpoint("web-01", true, Some("2025-05-01T10:00:00Z")),
            endpoint("db-01", false, Some("2025-04-30T08:15:00Z")),
            endpoint("new", false, None),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with("NAME    GROUP  STATUS   LAST SEEN"),
            "{out}"
        );
        assert!(
            lines[1].contains("online") && lines[1].contains("now"),
            "{out}"
        );
        assert!(
            lines[2].contains("offline") && lines[2].contains("2025-04-30 08:15:00"),
            "{out}"
        );
        assert!(
            lines[3].contains("never") && lines[3].ends_with("new.lan"),
            "{out}"
        );
    }

    #[test]
    fn a_conflict_shows_in_the_status() {
        let mut e = endpoint("web-01", true, None);
        e.conflict = Some(jumpgate_api_types::EndpointConflict {
            last_at: "2025-05-01T10:00:00Z".into(),
            count: 3,
            newcomer: "10.0.0.9:4711".into(),
        });
        let out = render(&[e]);
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .contains("online, conflict (3x)"),
            "{out}"
        );
    }
}
