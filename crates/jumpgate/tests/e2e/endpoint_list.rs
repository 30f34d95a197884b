//! `jg endpoints` on a site of more endpoints than one page: the list comes
//! page by page (`GET /api/v1/endpoints?limit=&after=`), every endpoint
//! once and in order, filtered by name, group and connection state, and
//! limited to the caller's groups in the query itself.

use jumpgate_api_types as api;

use crate::support::*;

/// More than `jg`'s page (1000), so that `jg endpoints` takes two pages.
const FLEET: usize = 1100;

/// `FLEET` endpoints `node-0000`… in group `fleet`, enrolled through the
/// API (no agent runs for them: they stay offline).
async fn enroll_fleet(site: &Site) {
    use base64::Engine as _;
    let tokens = site
        .enroll_token(&["--group", "fleet", "--count", &FLEET.to_string()])
        .await;
    let tokens: Vec<String> = tokens.lines().map(str::to_owned).collect();
    assert_eq!(tokens.len(), FLEET);
    let client = site.api_client();
    let mut pending = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    for (i, token) in tokens.into_iter().enumerate() {
        let (client, sem) = (client.clone(), std::sync::Arc::clone(&sem));
        pending.spawn(async move {
            let _p = sem.acquire().await.unwrap();
            let mut key = [7u8; 32];
            key[..4].copy_from_slice(&(i as u32).to_be_bytes());
            client
                .enroll(&api::EnrollRequest {
                    token,
                    name: format!("node-{i:04}"),
                    public_key: base64::engine::general_purpose::STANDARD.encode(key),
                    details: api::EndpointDetails {
                        hostname: format!("node-{i:04}.lan"),
                        os: "Debian 12".into(),
                        arch: "x86_64".into(),
                        agent_version: "0.1.0".into(),
                    },
                })
                .await
                .unwrap()
        });
    }
    while let Some(r) = pending.join_next().await {
        r.unwrap();
    }
}

fn json_names(out: &std::process::Output) -> Vec<String> {
    let v: Vec<api::Endpoint> = serde_json::from_str(&ok(out)).unwrap();
    v.into_iter().map(|e| e.name).collect()
}

/// The NAME column of a `jg endpoints` table (its header checked).
fn table_names(out: &std::process::Output) -> Vec<String> {
    let text = ok(out);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("NAME "), "{text}");
    lines
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn jg_endpoints_lists_a_big_site_page_by_page_with_filters() {
    let site = Site::start().await;
    let token = site.enroll_token(&["--group", "web"]).await;
    let _web = site.spawn_agent("web-live", Some(&token), &[]);
    site.wait_online("web-live", true).await;
    enroll_fleet(&site).await;

    // Every endpoint once, in the gateway's order, over two pages; the
    // table is one table (one header).
    let all = json_names(&site.jg(&["endpoints", "--json"]).await);
    assert_eq!(all.len(), FLEET + 1);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), FLEET + 1, "an endpoint listed twice");
    let table = table_names(&site.jg(&["endpoints"]).await);
    assert_eq!(table, all);
    let fleet: Vec<&String> = all.iter().filter(|n| n.starts_with("node-")).collect();
    let mut sorted = fleet.clone();
    sorted.sort();
    assert_eq!(fleet, sorted, "not in name order");

    // Filters.
    let named = json_names(&site.jg(&["endpoints", "--json", "--name", "WEB"]).await);
    assert_eq!(named, ["web-live"]);
    let named = table_names(&site.jg(&["endpoints", "--name", "ode-000"]).await);
    assert_eq!(named.len(), 10, "{named:?}");
    let first = table_names(
        &site
            .jg(&["endpoints", "--group", "fleet", "--limit", "3"])
            .await,
    );
    assert_eq!(first, ["node-0000", "node-0001", "node-0002"]);
    let online = table_names(&site.jg(&["endpoints", "--online"]).await);
    assert_eq!(online, ["web-live"]);
    let offline = json_names(
        &site
            .jg(&["endpoints", "--json", "--offline", "--limit", "1050"])
            .await,
    );
    assert_eq!(offline.len(), 1050);
    assert!(
        offline.iter().all(|n| n.starts_with("node-")),
        "{offline:?}"
    );
    let none = table_names(&site.jg(&["endpoints", "--name", "no-such"]).await);
    assert!(none.is_empty(), "{none:?}");

    // The API's paging: a page starts after the cursor; bad parameters are
    // refused with a clear error.
    let api = site
        .api_client()
        .with_token(site.saved_token(&site.jg_home()));
    let page: Vec<api::Endpoint> = api
        .get_json("/api/v1/endpoints?group=fleet&after=node-0001&limit=2")
        .await
        .unwrap();
    let page: Vec<&str> = page.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(page, ["node-0002", "node-0003"]);
    for bad in ["limit=0", "limit=10001", "online=maybe", "colour=red"] {
        let got = api
            .get_json::<Vec<api::Endpoint>>(&format!("/api/v1/endpoints?{bad}"))
            .await;
        assert!(got.is_err(), "{bad}: {got:?}");
    }

    // A reader of one group lists that group's endpoints only.
    const PW: &str = "reads-the-web-group-only-9";
    let pw = site.password_file("wendy.pw", PW);
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "wendy",
            "--role",
            "auditor",
            "--groups",
            "web",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    let wendy = site.home("wendy");
    ok(&site.try_login_in(&wendy, "wendy", PW, &[]).await);
    let seen = json_names(&site.jg_in(&wendy, &["endpoints", "--json"]).await);
    assert_eq!(seen, ["web-live"]);
    let seen = table_names(&site.jg_in(&wendy, &["endpoints", "--group", "fleet"]).await);
    assert!(seen.is_empty(), "{seen:?}");
}
