//! Bad input to every route that takes input: a real gateway in this
//! process, over HTTPS on a loopback port, called as an administrator (so
//! that the request reaches the route's own validation, past access
//! control).
//!
//! Every answer must be a 4xx with a JSON error body (`{"error", "message"}`;
//! the OAuth2 token endpoint answers RFC 6749's `{"error",
//! "error_description"}`), never a 5xx, never a framework's plain-text
//! rejection. The route table is walked: a route the gateway serves without
//! an entry below fails the test, so a new route gets its bad-input cases
//! (or is declared as taking no input) when it is added.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use http::Method;
use jumpgate_api_types as api;

mod support;
use support::start_gateway;

/// How a route takes input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takes {
    /// Nothing a caller chooses (beyond credentials): no cases.
    Nothing,
    /// A JSON body (and maybe path parameters): the generic malformed-JSON
    /// cases run on top of the route's own.
    Json,
    /// Path parameters and/or a query string or a form body: only the
    /// route's own cases.
    Other,
}

/// One bad request: the concrete path (with any query string), the content
/// type and the body.
type Bad = (String, Option<&'static str>, Vec<u8>);

fn json(path: &str, body: &str) -> Bad {
    (
        path.to_owned(),
        Some("application/json"),
        body.as_bytes().to_vec(),
    )
}

fn bare(path: &str) -> Bad {
    (path.to_owned(), None, Vec::new())
}

/// Paths for a route with a `{name}` or `{id}` parameter: a segment that is
/// not UTF-8 once decoded, one far over any name limit, one with a space,
/// and one that decodes to a relative path.
fn bad_names(template: &str, query: &str) -> Vec<String> {
    let long = "n".repeat(2000);
    [
        "%FF%FE",
        long.as_str(),
        "bad%20name",
        "..%2F..%2Fkeys%2Froot.key",
    ]
    .iter()
    .map(|seg| {
        template
            .replace("{name}", seg)
            .replace("{id}", seg)
            .replace("{*path}", seg)
            + query
    })
    .collect()
}

/// The table: every route of the gateway, what it takes, and its own bad
/// requests (the generic ones are added by [`cases`]).
fn routes() -> HashMap<&'static str, (Takes, Vec<Bad>)> {
    use Takes::{Json, Nothing, Other};
    let named = |template: &str| -> Vec<Bad> {
        bad_names(template, "")
            .into_iter()
            .map(|p| bare(&p))
            .collect()
    };
    let named_json = |template: &str, body: &str| {
        let mut v: Vec<Bad> = bad_names(template, "")
            .into_iter()
            .map(|p| json(&p, body))
            .collect();
        let real = template.replace("{name}", "web-1");
        v.push(json(&real, body));
        v
    };
    HashMap::from([
        ("GET /healthz", (Nothing, vec![])),
        ("GET /", (Nothing, vec![])),
        ("GET /assets/{*path}", (Other, named("/assets/{*path}"))),
        (
            "POST /api/v1/auth/login",
            (
                Json,
                vec![
                    json("/api/v1/auth/login", r#"{"username":5,"password":[]}"#),
                    json("/api/v1/auth/login", r#"{"username":"x"}"#),
                    json(
                        "/api/v1/auth/login",
                        r#"{"username":"x","password":"y","role":"admin"}"#,
                    ),
                ],
            ),
        ),
        // The public enrollment route: refused before anything is stored.
        (
            "POST /api/v1/agents/enroll",
            (
                Json,
                vec![
                    json(
                        "/api/v1/agents/enroll",
                        r#"{"token":"jge_x","name":"bad name!","public_key":"AAAA","details":{}}"#,
                    ),
                    json(
                        "/api/v1/agents/enroll",
                        r#"{"token":"jge_x","name":"ok-name","public_key":"not base64!","details":{}}"#,
                    ),
                    json(
                        "/api/v1/agents/enroll",
                        r#"{"token":"jge_x","name":"ok-name","public_key":"AAAA","details":{"hostname":7}}"#,
                    ),
                ],
            ),
        ),
        (
            "POST /oauth2/token",
            (
                Other,
                vec![
                    (
                        "/oauth2/token".into(),
                        Some("application/x-www-form-urlencoded"),
                        b"grant_type=password&username=a".to_vec(),
                    ),
                    (
                        "/oauth2/token".into(),
                        Some("application/x-www-form-urlencoded"),
                        b"grant_type=client_credentials&client_id=%ZZ&client_secret=%FF".to_vec(),
                    ),
                    (
                        "/oauth2/token".into(),
                        Some("application/x-www-form-urlencoded"),
                        b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
                    ),
                    json("/oauth2/token", r#"{"grant_type":"client_credentials"}"#),
                    bare("/oauth2/token"),
                ],
            ),
        ),
        ("POST /api/v1/auth/logout", (Nothing, vec![])),
        ("GET /api/v1/me", (Nothing, vec![])),
        ("GET /api/v1/auth/session", (Nothing, vec![])),
        // Only malformed bodies: a wrong current password would count
        // against the administrator's lockout.
        (
            "POST /api/v1/me/password",
            (
                Json,
                vec![json("/api/v1/me/password", r#"{"new_password":"x"}"#)],
            ),
        ),
        ("POST /api/v1/me/mfa/totp", (Nothing, vec![])),
        (
            "POST /api/v1/me/mfa/totp/confirm",
            (
                Json,
                vec![json("/api/v1/me/mfa/totp/confirm", r#"{"code":"12ab"}"#)],
            ),
        ),
        (
            "DELETE /api/v1/me/mfa",
            (Json, vec![json("/api/v1/me/mfa", r#"{"code":"000000"}"#)]),
        ),
        (
            "POST /api/v1/me/mfa/recovery-codes",
            (
                Json,
                vec![json("/api/v1/me/mfa/recovery-codes", r#"{"code":""}"#)],
            ),
        ),
        ("GET /api/v1/ssh-keys", (Nothing, vec![])),
        ("GET /api/v1/ssh/host-key", (Nothing, vec![])),
        ("GET /api/v1/ssh/user-ca", (Nothing, vec![])),
        (
            "POST /api/v1/ssh/user-cert",
            (
                Json,
                vec![
                    json("/api/v1/ssh/user-cert", r#"{"public_key":"not a key"}"#),
                    json("/api/v1/ssh/user-cert", r#"{"public_key":""}"#),
                    json(
                        "/api/v1/ssh/user-cert",
                        r#"{"public_key":"","source_address":"10.0.0.0/8"}"#,
                    ),
                    json("/api/v1/ssh/user-cert", r#"{"public_key":"","no_pty":"yes"}"#),
                    json(
                        "/api/v1/ssh/user-cert",
                        r#"{"public_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}"#,
                    ),
                ],
            ),
        ),
        (
            "POST /api/v1/ssh-keys",
            (
                Json,
                vec![
                    json("/api/v1/ssh-keys", r#"{"public_key":"not a key"}"#),
                    json("/api/v1/ssh-keys", r#"{"public_key":"ssh-ed25519 AAAA"}"#),
                    json("/api/v1/ssh-keys", r#"{"public_key":""}"#),
                    json(
                        "/api/v1/ssh-keys",
                        r#"{"public_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}"#,
                    ),
                ],
            ),
        ),
        (
            "DELETE /api/v1/ssh-keys/{id}",
            (Other, named("/api/v1/ssh-keys/{id}")),
        ),
        ("GET /api/v1/users", (Nothing, vec![])),
        (
            "POST /api/v1/users",
            (
                Json,
                vec![
                    json(
                        "/api/v1/users",
                        r#"{"username":"bad name","password":"long-enough-password-1","role":"technician","groups":[]}"#,
                    ),
                    json(
                        "/api/v1/users",
                        r#"{"username":"ok","password":"long-enough-password-1","role":"wizard","groups":[]}"#,
                    ),
                    json(
                        "/api/v1/users",
                        r#"{"username":"ok","password":"long-enough-password-1","role":"technician","groups":["nowhere"]}"#,
                    ),
                    json(
                        "/api/v1/users",
                        r#"{"username":"ok","password":"short","role":"technician","groups":[]}"#,
                    ),
                    json(
                        "/api/v1/users",
                        r#"{"username":"ok","password":"long-enough-password-1","role":"technician","groups":[],"email":"not-an-email"}"#,
                    ),
                ],
            ),
        ),
        (
            "GET /api/v1/users/{name}",
            (Other, named("/api/v1/users/{name}")),
        ),
        (
            "PATCH /api/v1/users/{name}",
            (
                Json,
                named_json("/api/v1/users/{name}", r#"{"role":"wizard"}"#),
            ),
        ),
        (
            "DELETE /api/v1/users/{name}",
            (Other, named("/api/v1/users/{name}")),
        ),
        (
            "PUT /api/v1/users/{name}/password",
            (
                Json,
                named_json("/api/v1/users/{name}/password", r#"{"password":"short"}"#),
            ),
        ),
        (
            "POST /api/v1/users/{name}/revoke-sessions",
            (Other, named("/api/v1/users/{name}/revoke-sessions")),
        ),
        (
            "POST /api/v1/users/{name}/unlock",
            (Other, named("/api/v1/users/{name}/unlock")),
        ),
        (
            "DELETE /api/v1/users/{name}/mfa",
            (Other, named("/api/v1/users/{name}/mfa")),
        ),
        ("GET /api/v1/roles", (Nothing, vec![])),
        (
            "POST /api/v1/roles",
            (
                Json,
                vec![
                    json(
                        "/api/v1/roles",
                        r#"{"name":"ops","description":"","permissions":["fly"]}"#,
                    ),
                    json(
                        "/api/v1/roles",
                        r#"{"name":"bad name","description":"","permissions":["view"]}"#,
                    ),
                    json(
                        "/api/v1/roles",
                        r#"{"name":"admin","description":"","permissions":["view"]}"#,
                    ),
                ],
            ),
        ),
        (
            "PATCH /api/v1/roles/{name}",
            (
                Json,
                named_json("/api/v1/roles/{name}", r#"{"permissions":["fly"]}"#),
            ),
        ),
        (
            "DELETE /api/v1/roles/{name}",
            (Other, named("/api/v1/roles/{name}")),
        ),
        ("GET /api/v1/api-clients", (Nothing, vec![])),
        (
            "POST /api/v1/api-clients",
            (
                Json,
                vec![
                    json(
                        "/api/v1/api-clients",
                        r#"{"name":"bot","scopes":["sudo"],"role":"admin","groups":["*"]}"#,
                    ),
                    json(
                        "/api/v1/api-clients",
                        r#"{"name":"bot","scopes":["read"],"role":"wizard","groups":["*"]}"#,
                    ),
                    json(
                        "/api/v1/api-clients",
                        r#"{"name":"bad name","scopes":["read"],"role":"admin","groups":["*"]}"#,
                    ),
                ],
            ),
        ),
        (
            "POST /api/v1/api-clients/{name}/rotate",
            (Other, named("/api/v1/api-clients/{name}/rotate")),
        ),
        (
            "DELETE /api/v1/api-clients/{name}",
            (Other, named("/api/v1/api-clients/{name}")),
        ),
        ("GET /api/v1/settings/security", (Nothing, vec![])),
        (
            "PUT /api/v1/settings/security",
            (
                Json,
                vec![
                    json(
                        "/api/v1/settings/security",
                        r#"{"password_min_length":12,"password_min_classes":1,"password_history":0,"lockout_threshold":1000,"lockout_duration_secs":60,"mfa_required_roles":[]}"#,
                    ),
                    json(
                        "/api/v1/settings/security",
                        r#"{"password_min_length":0,"password_min_classes":9,"password_history":0,"lockout_threshold":5,"lockout_duration_secs":60,"mfa_required_roles":["wizard"]}"#,
                    ),
                    json("/api/v1/settings/security", r#"{"password_min_length":-1}"#),
                ],
            ),
        ),
        ("GET /api/v1/endpoints", (Nothing, vec![])),
        (
            "PUT /api/v1/endpoints/{name}/group",
            (
                Json,
                named_json("/api/v1/endpoints/{name}/group", r#"{"group":"nowhere"}"#),
            ),
        ),
        (
            "DELETE /api/v1/endpoints/{name}",
            (Other, named("/api/v1/endpoints/{name}")),
        ),
        (
            "POST /api/v1/endpoints/{name}/reenroll",
            (Json, {
                let mut v = named_json("/api/v1/endpoints/{name}/reenroll", "{}");
                // `web-1` is real; an unknown endpoint and bad lifetimes are not.
                v.pop();
                v.push(json("/api/v1/endpoints/no-such-endpoint/reenroll", "{}"));
                v.push(json(
                    "/api/v1/endpoints/web-1/reenroll",
                    r#"{"ttl":"forever"}"#,
                ));
                v.push(json("/api/v1/endpoints/web-1/reenroll", r#"{"ttl":"0s"}"#));
                v
            }),
        ),
        (
            "POST /api/v1/enroll-tokens",
            (
                Json,
                vec![
                    json("/api/v1/enroll-tokens", r#"{"ttl":"forever"}"#),
                    json("/api/v1/enroll-tokens", r#"{"ttl":"0s"}"#),
                    // (An unknown but valid group is created with the token.)
                    json("/api/v1/enroll-tokens", r#"{"group":"bad name"}"#),
                    json("/api/v1/enroll-tokens", r#"{"ttl":"31d"}"#),
                ],
            ),
        ),
        ("GET /api/v1/groups", (Nothing, vec![])),
        (
            "POST /api/v1/groups",
            (
                Json,
                vec![
                    json("/api/v1/groups", r#"{"name":"bad name","description":""}"#),
                    json("/api/v1/groups", r#"{"name":"web","description":""}"#),
                    json("/api/v1/groups", r#"{"name":"lab","consent":"ask"}"#),
                ],
            ),
        ),
        // Endpoint privilege management.
        (
            "GET /api/v1/epm/policy",
            (Other, vec![bare("/api/v1/epm/policy?format=xml")]),
        ),
        (
            "PUT /api/v1/epm/policy",
            (
                Json,
                vec![
                    json(
                        "/api/v1/epm/policy",
                        r#"{"revision":0,"policy":{"default":"sometimes"}}"#,
                    ),
                    json(
                        "/api/v1/epm/policy",
                        r#"{"revision":0,"policy":{"default":"block","rules":[{"name":"r","applications":["nope"],"action":"elevate"}]}}"#,
                    ),
                    json(
                        "/api/v1/epm/policy",
                        r#"{"revision":99,"policy":{"default":"block"}}"#,
                    ),
                    (
                        "/api/v1/epm/policy".into(),
                        Some("application/yaml"),
                        b"default: [1".to_vec(),
                    ),
                    (
                        "/api/v1/epm/policy".into(),
                        Some("application/yaml"),
                        b"default: block\n".to_vec(),
                    ),
                ],
            ),
        ),
        (
            "POST /api/v1/epm/policy/validate",
            (
                Json,
                vec![json(
                    "/api/v1/epm/policy/validate",
                    r#"{"revision":0,"policy":{"default":5}}"#,
                )],
            ),
        ),
        (
            "POST /api/v1/epm/test",
            (
                Json,
                vec![
                    json(
                        "/api/v1/epm/test",
                        r#"{"endpoint":"nowhere","user":"a","command":["/bin/true"]}"#,
                    ),
                    json(
                        "/api/v1/epm/test",
                        r#"{"endpoint":"web-1","user":"a","command":[]}"#,
                    ),
                    json(
                        "/api/v1/epm/test",
                        r#"{"endpoint":"web-1","user":"a","command":["/bin/true"],"published":true}"#,
                    ),
                ],
            ),
        ),
        ("POST /api/v1/epm/publish", (Nothing, vec![])),
        ("GET /api/v1/epm/bundles", (Nothing, vec![])),
        ("GET /api/v1/epm/status", (Nothing, vec![])),
        (
            "GET /api/v1/epm/events",
            (
                Other,
                vec![
                    bare("/api/v1/epm/events?after=-1"),
                    bare("/api/v1/epm/events?limit=many"),
                    bare("/api/v1/epm/events?endpoint=nowhere"),
                ],
            ),
        ),
        (
            "GET /api/v1/epm/requests",
            (Other, vec![bare("/api/v1/epm/requests?state=bogus")]),
        ),
        ("GET /api/v1/epm/requests/events", (Nothing, vec![])),
        ("GET /api/v1/reports", (Nothing, vec![])),
        (
            "GET /api/v1/reports/{name}",
            (Other, {
                let mut v: Vec<Bad> = named("/api/v1/reports/{name}");
                for q in [
                    "since=yesterday",
                    "until=2026-13-45",
                    "since=2026-12-02&until=2026-12-01",
                    "format=xml",
                    "color=red",
                    "user=",
                ] {
                    v.push(bare(&format!("/api/v1/reports/failed-logins?{q}")));
                }
                v
            }),
        ),
        (
            "POST /api/v1/epm/requests/{id}/approve",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/epm/requests/{id}/approve", "")
                    .into_iter()
                    .map(|p| json(&p, "{}"))
                    .collect();
                v.push(json(
                    "/api/v1/epm/requests/er_none/approve",
                    r#"{"comment":5}"#,
                ));
                v
            }),
        ),
        (
            "POST /api/v1/epm/requests/{id}/deny",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/epm/requests/{id}/deny", "")
                    .into_iter()
                    .map(|p| json(&p, "{}"))
                    .collect();
                v.push(json("/api/v1/epm/requests/er_none/deny", "{}"));
                v
            }),
        ),
        (
            "POST /api/v1/epm/code",
            (
                Json,
                vec![
                    json(
                        "/api/v1/epm/code",
                        r#"{"endpoint":"web-1","challenge":"nope"}"#,
                    ),
                    json(
                        "/api/v1/epm/code",
                        r#"{"endpoint":"nowhere","challenge":"ABCD-EFGH-JK"}"#,
                    ),
                ],
            ),
        ),
        ("GET /api/v1/epm/signing-keys", (Nothing, vec![])),
        ("POST /api/v1/epm/signing-keys/rotate", (Nothing, vec![])),
        (
            "GET /epm/bundles/{version}",
            (
                Other,
                vec![
                    bare("/epm/bundles/abc?expires=1&sig=x"),
                    bare("/epm/bundles/1"),
                    bare("/epm/bundles/1?expires=soon&sig=x"),
                    bare("/epm/bundles/1?expires=99999999999&sig=AAAA"),
                ],
            ),
        ),
        // The Package Manager.
        (
            "POST /api/v1/packages",
            (
                Other,
                vec![
                    (
                        "/api/v1/packages".into(),
                        Some("application/vnd.debian.binary-package"),
                        b"not a debian package".to_vec(),
                    ),
                    (
                        "/api/v1/packages".into(),
                        Some("application/vnd.debian.binary-package"),
                        b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n".to_vec(),
                    ),
                    (
                        "/api/v1/packages".into(),
                        Some("application/octet-stream"),
                        Vec::new(),
                    ),
                    json("/api/v1/packages", "{}"),
                    bare("/api/v1/packages"),
                ],
            ),
        ),
        (
            "GET /api/v1/packages",
            (
                Other,
                vec![
                    bare("/api/v1/packages?name=Bad_Name"),
                    bare("/api/v1/packages?name=%FF"),
                ],
            ),
        ),
        ("GET /api/v1/packages/{id}", (Other, named("/api/v1/packages/{id}"))),
        (
            "DELETE /api/v1/packages/{id}",
            (Other, named("/api/v1/packages/{id}")),
        ),
        ("GET /api/v1/packages/publishers", (Nothing, vec![])),
        (
            "POST /api/v1/packages/publishers",
            (
                Json,
                vec![
                    json(
                        "/api/v1/packages/publishers",
                        r#"{"name":"acme","public_key":"not a key"}"#,
                    ),
                    json(
                        "/api/v1/packages/publishers",
                        r#"{"name":"bad name!","public_key":"RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"}"#,
                    ),
                    json("/api/v1/packages/publishers", r#"{"name":"acme"}"#),
                ],
            ),
        ),
        (
            "DELETE /api/v1/packages/publishers/{name}",
            (Other, named("/api/v1/packages/publishers/{name}")),
        ),
        ("GET /api/v1/packages/settings", (Nothing, vec![])),
        (
            "PUT /api/v1/packages/settings",
            (
                Json,
                vec![
                    json("/api/v1/packages/settings", r#"{"require_signature":"yes"}"#),
                    json("/api/v1/packages/settings", "{}"),
                ],
            ),
        ),
        ("GET /api/v1/packages/assignments", (Nothing, vec![])),
        (
            "PUT /api/v1/packages/assignments",
            (
                Json,
                vec![
                    json(
                        "/api/v1/packages/assignments",
                        r#"{"group":"web","package":"nothing-here","action":"install"}"#,
                    ),
                    json(
                        "/api/v1/packages/assignments",
                        r#"{"group":"no-such-group","package":"x-y","action":"remove"}"#,
                    ),
                    json(
                        "/api/v1/packages/assignments",
                        r#"{"group":"web","package":"x-y","action":"explode"}"#,
                    ),
                    json(
                        "/api/v1/packages/assignments",
                        r#"{"group":"web","package":"Bad_Name","action":"remove"}"#,
                    ),
                    json(
                        "/api/v1/packages/assignments",
                        r#"{"group":"web","package":"x-y","action":"remove","version":"1.0"}"#,
                    ),
                ],
            ),
        ),
        (
            "DELETE /api/v1/packages/assignments/{group}/{package}",
            (
                Other,
                vec![
                    bare("/api/v1/packages/assignments/web/nothing"),
                    bare("/api/v1/packages/assignments/%FF/x"),
                ],
            ),
        ),
        (
            "GET /api/v1/packages/status",
            (
                Other,
                vec![
                    bare("/api/v1/packages/status?endpoint=bad%20name!"),
                    bare("/api/v1/packages/status?package=UPPER"),
                ],
            ),
        ),
        (
            "GET /api/v1/packages/inventory",
            (
                Other,
                vec![
                    bare("/api/v1/packages/inventory"),
                    bare("/api/v1/packages/inventory?version=%3C1"),
                    bare("/api/v1/packages/inventory?package=openssl&version=3.0.11"),
                    bare("/api/v1/packages/inventory?package=openssl&version=%3C%20abc"),
                    bare("/api/v1/packages/inventory?package=Not%20A%20Name"),
                ],
            ),
        ),
        (
            "GET /packages/{id}/{file}",
            (
                Other,
                vec![
                    bare("/packages/pkg_x/deb"),
                    bare("/packages/pkg_x/other?expires=1&sig=x"),
                    bare("/packages/pkg_x/deb?expires=soon&sig=x"),
                    bare("/packages/pkg_x/manifest?expires=99999999999&sig=AAAA"),
                ],
            ),
        ),
        // Attended support.
        ("GET /api/v1/portal", (Nothing, vec![])),
        ("GET /portal", (Nothing, vec![])),
        ("GET /portal/theme.css", (Nothing, vec![])),
        ("GET /portal/logo", (Nothing, vec![])),
        ("GET /api/v1/portal/settings", (Nothing, vec![])),
        ("GET /api/v1/queues", (Nothing, vec![])),
        ("GET /api/v1/support/events", (Nothing, vec![])),
        (
            "POST /api/v1/portal/key",
            (
                Json,
                vec![
                    json("/api/v1/portal/key", r#"{"key":5}"#),
                    json("/api/v1/portal/key", r#"{"key":"1","extra":1}"#),
                    json("/api/v1/portal/key", r#"{"key":"123"}"#),
                ],
            ),
        ),
        (
            "POST /api/v1/portal/requests",
            (
                Json,
                vec![
                    json("/api/v1/portal/requests", r#"{"name":"a","problem":"b"}"#),
                    json(
                        "/api/v1/portal/requests",
                        r#"{"name":" ","problem":"b","queue":"x"}"#,
                    ),
                    json(
                        "/api/v1/portal/requests",
                        r#"{"name":"a","problem":"b","queue":"nope"}"#,
                    ),
                ],
            ),
        ),
        (
            "PUT /api/v1/portal/settings",
            (
                Json,
                vec![
                    json(
                        "/api/v1/portal/settings",
                        r##"{"site_name":"x","colors":{"primary":"red","background":"#000000","text":"#ffffff"}}"##,
                    ),
                    json(
                        "/api/v1/portal/settings",
                        r#"{"site_name":"x","logo":"!!"}"#,
                    ),
                    json("/api/v1/portal/settings", r#"{"site_name":5}"#),
                    json("/api/v1/portal/settings", r#"{"site_name":"x","wat":1}"#),
                ],
            ),
        ),
        (
            "POST /api/v1/support/keys",
            (
                Json,
                vec![
                    json("/api/v1/support/keys", r#"{"ttl":"forever"}"#),
                    json("/api/v1/support/keys", r#"{"queue":"nope"}"#),
                    json("/api/v1/support/keys", r#"{"queue":5}"#),
                ],
            ),
        ),
        (
            "GET /api/v1/support/sessions",
            (
                Other,
                vec![
                    bare("/api/v1/support/sessions?limit=many"),
                    bare("/api/v1/support/sessions?limit=0"),
                    bare("/api/v1/support/sessions?before=yesterday"),
                    bare("/api/v1/support/sessions?bogus=1"),
                ],
            ),
        ),
        (
            "GET /portal/download/{token}",
            (
                Other,
                vec![
                    bare("/portal/download/nope"),
                    bare("/portal/download/jgd_unknown"),
                    bare(&format!("/portal/download/{}", "n".repeat(2000))),
                ],
            ),
        ),
        (
            "GET /api/v1/support/sessions/{id}",
            (Other, named("/api/v1/support/sessions/{id}")),
        ),
        (
            "GET /api/v1/support/sessions/{id}/connect",
            (Other, {
                let mut v: Vec<Bad> =
                    bad_names("/api/v1/support/sessions/{id}/connect", "?kind=shell")
                        .into_iter()
                        .map(|p| bare(&p))
                        .collect();
                v.push(bare("/api/v1/support/sessions/sup_x/connect?kind=forward"));
                v.push(bare("/api/v1/support/sessions/sup_x/connect?kind=bogus"));
                v.push(bare("/api/v1/support/sessions/sup_x/connect"));
                v
            }),
        ),
        (
            "POST /api/v1/support/sessions/{id}/accept",
            (Other, named("/api/v1/support/sessions/{id}/accept")),
        ),
        (
            "POST /api/v1/support/sessions/{id}/end",
            (Other, named("/api/v1/support/sessions/{id}/end")),
        ),
        (
            "GET /api/v1/sessions/{id}/watch",
            (Other, named("/api/v1/sessions/{id}/watch")),
        ),
        (
            "GET /api/v1/support/sessions/{id}/transcript",
            (Other, named("/api/v1/support/sessions/{id}/transcript")),
        ),
        (
            "POST /api/v1/support/sessions/{id}/transfer",
            (
                Json,
                vec![
                    json("/api/v1/support/sessions/sup_x/transfer", r#"{}"#),
                    json(
                        "/api/v1/support/sessions/sup_x/transfer",
                        r#"{"user":"a","queue":"b"}"#,
                    ),
                    json("/api/v1/support/sessions/sup_x/transfer", r#"{"user":5}"#),
                    json(
                        "/api/v1/support/sessions/sup_x/transfer",
                        r#"{"user":"bob"}"#,
                    ),
                ],
            ),
        ),
        (
            "POST /api/v1/support/sessions/{id}/invite",
            (
                Json,
                vec![
                    json("/api/v1/support/sessions/sup_x/invite", r#"{"user":"bob"}"#),
                    json(
                        "/api/v1/support/sessions/sup_x/invite",
                        r#"{"user":"bob","as":"owner"}"#,
                    ),
                    json(
                        "/api/v1/support/sessions/sup_x/invite",
                        r#"{"user":"bob","as":"observer"}"#,
                    ),
                ],
            ),
        ),
        (
            "POST /api/v1/support/sessions/{id}/pin",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/support/sessions/{id}/pin", "")
                    .into_iter()
                    .map(|p| json(&p, r#"{"group":"desks"}"#))
                    .collect();
                v.push(json("/api/v1/support/sessions/sup_x/pin", r#"{}"#));
                v.push(json("/api/v1/support/sessions/sup_x/pin", r#"{"group":5}"#));
                v.push(json(
                    "/api/v1/support/sessions/sup_x/pin",
                    r#"{"group":"bad name"}"#,
                ));
                v.push(json(
                    "/api/v1/support/sessions/sup_x/pin",
                    r#"{"group":"desks","x":1}"#,
                ));
                v
            }),
        ),
        (
            "DELETE /api/v1/support/sessions/{id}/participants/{user}",
            (
                Other,
                vec![
                    bare("/api/v1/support/sessions/sup_x/participants/bob"),
                    bare(&format!(
                        "/api/v1/support/sessions/sup_x/participants/{}",
                        "n".repeat(2000)
                    )),
                ],
            ),
        ),
        (
            "POST /api/v1/support/sessions/{id}/chat",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/support/sessions/{id}/chat", "")
                    .into_iter()
                    .map(|p| json(&p, r#"{"text":"hi"}"#))
                    .collect();
                v.push(json("/api/v1/support/sessions/sup_x/chat", r#"{"text":5}"#));
                v.push(json(
                    "/api/v1/support/sessions/sup_x/chat",
                    r#"{"text":"x","y":1}"#,
                ));
                v
            }),
        ),
        (
            "POST /api/v1/support/sessions/{id}/rights",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/support/sessions/{id}/rights", "")
                    .into_iter()
                    .map(|p| json(&p, r#"{"right":"view"}"#))
                    .collect();
                v.push(json(
                    "/api/v1/support/sessions/sup_x/rights",
                    r#"{"right":"root"}"#,
                ));
                v.push(json(
                    "/api/v1/support/sessions/sup_x/rights",
                    r#"{"right":"forward"}"#,
                ));
                v
            }),
        ),
        (
            "POST /api/v1/queues",
            (
                Json,
                vec![
                    json(
                        "/api/v1/queues",
                        r#"{"name":"bad name!","group":"default"}"#,
                    ),
                    json("/api/v1/queues", r#"{"name":"q","group":"nowhere"}"#),
                    json(
                        "/api/v1/queues",
                        r#"{"name":"q","group":"default","members":["ghost"]}"#,
                    ),
                    json(
                        "/api/v1/queues",
                        r#"{"name":"q","group":"default","max_waiting":0}"#,
                    ),
                ],
            ),
        ),
        (
            "PATCH /api/v1/queues/{name}",
            (
                Json,
                named_json("/api/v1/queues/{name}", r#"{"max_waiting":0}"#),
            ),
        ),
        (
            "DELETE /api/v1/queues/{name}",
            (Other, named("/api/v1/queues/{name}")),
        ),
        (
            "GET /api/v1/groups/{name}",
            (Other, named("/api/v1/groups/{name}")),
        ),
        (
            "PATCH /api/v1/groups/{name}",
            (Json, {
                let mut v = named_json("/api/v1/groups/{name}", r#"{"consent":"ask"}"#);
                // The real group: an unknown consent mode, a field that
                // does not exist, a description of the wrong type.
                v.push(json("/api/v1/groups/default", r#"{"consent":"ask"}"#));
                v.push(json("/api/v1/groups/default", r#"{"colour":"red"}"#));
                v.push(json("/api/v1/groups/default", r#"{"description":7}"#));
                v
            }),
        ),
        (
            "DELETE /api/v1/groups/{name}",
            (Other, named("/api/v1/groups/{name}")),
        ),
        (
            "GET /api/v1/sessions",
            (
                Other,
                vec![
                    bare("/api/v1/sessions?limit=0"),
                    bare("/api/v1/sessions?limit=1001"),
                    bare("/api/v1/sessions?limit=many"),
                    bare("/api/v1/sessions?since=yesterday"),
                    bare("/api/v1/sessions?until=soon"),
                    bare("/api/v1/sessions?active=perhaps"),
                    bare("/api/v1/sessions?kind=teleport"),
                    bare("/api/v1/sessions?before=ses_nosuch"),
                    bare("/api/v1/sessions?wizard=1"),
                ],
            ),
        ),
        (
            "POST /api/v1/sessions/{id}/terminate",
            (Other, named("/api/v1/sessions/{id}/terminate")),
        ),
        (
            "GET /api/v1/events",
            (
                Other,
                vec![
                    bare("/api/v1/events?limit=abc"),
                    bare("/api/v1/events?limit=0"),
                    bare("/api/v1/events?limit=99999999999999999999"),
                    bare("/api/v1/events?since=yesterday"),
                    bare("/api/v1/events?bogus=1"),
                ],
            ),
        ),
        (
            "GET /api/v1/recordings",
            (
                Other,
                vec![
                    bare("/api/v1/recordings?limit=abc"),
                    bare("/api/v1/recordings?limit=5000"),
                    bare("/api/v1/recordings?since=2020-13-45T99:00:00Z"),
                    bare("/api/v1/recordings?bogus=1"),
                ],
            ),
        ),
        (
            "GET /api/v1/recordings/{id}/cast",
            (Other, named("/api/v1/recordings/{id}/cast")),
        ),
        (
            "GET /api/v1/recordings/search",
            (
                Other,
                vec![
                    bare("/api/v1/recordings/search"),
                    bare("/api/v1/recordings/search?q="),
                    bare("/api/v1/recordings/search?q=%20%20"),
                    bare("/api/v1/recordings/search?q=%2F%20-%20a"),
                    bare(&format!("/api/v1/recordings/search?q={}", "x".repeat(300))),
                    bare("/api/v1/recordings/search?q=ls&limit=0"),
                    bare("/api/v1/recordings/search?q=ls&limit=abc"),
                    bare("/api/v1/recordings/search?q=ls&cursor=nope"),
                    bare("/api/v1/recordings/search?q=ls&bogus=1"),
                ],
            ),
        ),
        (
            "GET /api/v1/vault/secrets",
            (
                Other,
                vec![
                    bare("/api/v1/vault/secrets?deleted=maybe"),
                    bare("/api/v1/vault/secrets?bogus=1"),
                ],
            ),
        ),
        (
            "GET /api/v1/vault/secrets/{name}",
            (Other, {
                let mut v: Vec<Bad> = named("/api/v1/vault/secrets/{name}");
                v.push(bare("/api/v1/vault/secrets/db?version=-1"));
                v.push(bare("/api/v1/vault/secrets/db?version=abc"));
                v.push(bare("/api/v1/vault/secrets/db?version=0"));
                v.push(bare("/api/v1/vault/secrets/db?bogus=1"));
                v
            }),
        ),
        (
            "PUT /api/v1/vault/secrets/{name}",
            (
                Json,
                vec![
                    json("/api/v1/vault/secrets/bad%20name", r#"{"value":"v"}"#),
                    json("/api/v1/vault/secrets/%FF", r#"{"value":"v"}"#),
                    json(
                        &format!("/api/v1/vault/secrets/{}", "n".repeat(2000)),
                        r#"{"value":"v"}"#,
                    ),
                    json("/api/v1/vault/secrets/db", r#"{"value":5}"#),
                    json("/api/v1/vault/secrets/db", r#"{"value":"v","email":"x"}"#),
                ],
            ),
        ),
        (
            "DELETE /api/v1/vault/secrets/{name}",
            (Other, named("/api/v1/vault/secrets/{name}")),
        ),
        (
            "GET /api/v1/vault/secrets/{name}/versions",
            (Other, named("/api/v1/vault/secrets/{name}/versions")),
        ),
        (
            "POST /api/v1/vault/secrets/{name}/recover",
            (Other, named("/api/v1/vault/secrets/{name}/recover")),
        ),
        (
            "POST /api/v1/vault/secrets/{name}/purge",
            (Other, named("/api/v1/vault/secrets/{name}/purge")),
        ),
        ("GET /api/v1/vault/settings", (Nothing, vec![])),
        // Access requests with approval.
        (
            "GET /api/v1/access-requests",
            (
                Other,
                vec![
                    bare("/api/v1/access-requests?state=bogus"),
                    bare("/api/v1/access-requests?nope=1"),
                ],
            ),
        ),
        (
            "POST /api/v1/access-requests",
            (
                Json,
                vec![
                    json("/api/v1/access-requests", r#"{"target":"web","reason":"x"}"#),
                    json(
                        "/api/v1/access-requests",
                        r#"{"target":"web","window_secs":-1,"reason":"x"}"#,
                    ),
                    json(
                        "/api/v1/access-requests",
                        r#"{"target":"web","window_secs":60,"reason":"x"}"#,
                    ),
                    json(
                        "/api/v1/access-requests",
                        r#"{"target":"nowhere","window_secs":60,"reason":"x"}"#,
                    ),
                    json(
                        "/api/v1/access-requests",
                        r#"{"target":"","window_secs":60,"reason":"x"}"#,
                    ),
                    json(
                        "/api/v1/access-requests",
                        r#"{"target":"web","window_secs":60,"reason":"x","x":1}"#,
                    ),
                ],
            ),
        ),
        (
            "GET /api/v1/access-requests/{id}",
            (Other, named("/api/v1/access-requests/{id}")),
        ),
        (
            "POST /api/v1/access-requests/{id}/approve",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/access-requests/{id}/approve", "")
                    .iter()
                    .map(|p| json(p, "{}"))
                    .collect();
                v.push(json("/api/v1/access-requests/acc_x/approve", r#"{"reason":5}"#));
                v
            }),
        ),
        (
            "POST /api/v1/access-requests/{id}/deny",
            (Json, {
                let mut v: Vec<Bad> = bad_names("/api/v1/access-requests/{id}/deny", "")
                    .iter()
                    .map(|p| json(p, "{}"))
                    .collect();
                v.push(json("/api/v1/access-requests/acc_x/deny", r#"{"x":1}"#));
                v
            }),
        ),
        (
            "POST /api/v1/access-requests/{id}/cancel",
            (Other, named("/api/v1/access-requests/{id}/cancel")),
        ),
        (
            "GET /api/v1/groups/{name}/approval",
            (Other, named("/api/v1/groups/{name}/approval")),
        ),
        (
            "PUT /api/v1/groups/{name}/approval",
            (Json, {
                let p = "/api/v1/groups/web/approval";
                let mut v = named_json(
                    "/api/v1/groups/{name}/approval",
                    r#"{"permissions":["shell"],"approvers":["role:admin"],"approvals":1}"#,
                );
                v.pop();
                v.extend([
                    json(p, r#"{"permissions":["view"],"approvers":["role:admin"],"approvals":1}"#),
                    json(p, r#"{"permissions":["all","shell"],"approvers":["role:admin"],"approvals":1}"#),
                    json(p, r#"{"permissions":[],"approvers":["role:admin"],"approvals":1}"#),
                    json(p, r#"{"permissions":["shell"],"approvers":["role:admin"],"approvals":3}"#),
                    json(p, r#"{"permissions":["shell"],"approvers":["boss"],"approvals":1}"#),
                    json(p, r#"{"permissions":["shell"],"approvers":["role:nosuch"],"approvals":1}"#),
                    json(p, r#"{"permissions":["shell"],"approvers":["user:nosuch"],"approvals":1}"#),
                    json(p, r#"{"permissions":["shell"],"approvers":[],"approvals":1}"#),
                ]);
                v
            }),
        ),
        (
            "DELETE /api/v1/groups/{name}/approval",
            (Other, named("/api/v1/groups/{name}/approval")),
        ),
        // Mail alerts.
        ("GET /api/v1/alert-rules", (Nothing, vec![])),
        (
            "POST /api/v1/alert-rules",
            (
                Json,
                vec![
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":[],"addresses":["a@example.com"]}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"bad name!","events":["lockout"],"addresses":["a@example.com"]}"#,
                    ),
                    json("/api/v1/alert-rules", r#"{"name":"r","events":["lockout"]}"#),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["Lock Out"],"addresses":["a@example.com"]}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["not an address"]}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"users":["no-such-user"]}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"roles":["no-such-role"]}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["a@example.com"],"body":"{password}"}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["a@example.com"],"digest_every":"1s"}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["a@example.com"],"max_per_hour":0}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["a@example.com"],"x":1}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["a@example.com"],"groups":["no-such-group"]}"#,
                    ),
                    json(
                        "/api/v1/alert-rules",
                        r#"{"name":"r","events":["lockout"],"addresses":["a@example.com"],"groups":["bad name!"]}"#,
                    ),
                ],
            ),
        ),
        (
            "DELETE /api/v1/alert-rules/{name}",
            (Other, named("/api/v1/alert-rules/{name}")),
        ),
        (
            "POST /api/v1/smtp/test",
            (
                Json,
                vec![
                    json("/api/v1/smtp/test", r#"{"to":"not an address"}"#),
                    json("/api/v1/smtp/test", r#"{"to":"a@example.com","x":1}"#),
                ],
            ),
        ),
        // Outbound events (webhooks).
        ("GET /api/v1/webhooks", (Nothing, vec![])),
        (
            "POST /api/v1/webhooks",
            (
                Json,
                vec![
                    json("/api/v1/webhooks", r#"{"url":"https://r.example/h"}"#),
                    json("/api/v1/webhooks", r#"{"url":"https://r.example/h","events":[]}"#),
                    json("/api/v1/webhooks", r#"{"url":"ftp://r.example/h","events":["all"]}"#),
                    json("/api/v1/webhooks", r#"{"url":"http://r.example/h","events":["all"]}"#),
                    json("/api/v1/webhooks", r#"{"url":"not a url","events":["all"]}"#),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["Lock Out"]}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"format":"xml"}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"ca_pem":"nope"}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"x":1}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"name":"bad name!"}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"auth_header":"Bearer a\nb"}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"auth_header":" "}"#,
                    ),
                    json(
                        "/api/v1/webhooks",
                        r#"{"url":"https://r.example/h","events":["all"],"groups":["no-such-group"]}"#,
                    ),
                ],
            ),
        ),
        (
            "DELETE /api/v1/webhooks/{name}",
            (Other, named("/api/v1/webhooks/{name}")),
        ),
        (
            "POST /api/v1/webhooks/{name}/rotate-secret",
            (Other, named("/api/v1/webhooks/{name}/rotate-secret")),
        ),
        (
            "PUT /api/v1/webhooks/{name}/auth-header",
            (Json, {
                let mut v = named_json(
                    "/api/v1/webhooks/{name}/auth-header",
                    r#"{"auth_header":"Bearer a"}"#,
                );
                v.extend([
                    json("/api/v1/webhooks/web-1/auth-header", r#"{"auth_header":"Bearer a\nb"}"#),
                    json("/api/v1/webhooks/web-1/auth-header", r#"{"auth_header":" "}"#),
                    json("/api/v1/webhooks/web-1/auth-header", r#"{"auth_header":null}"#),
                    json("/api/v1/webhooks/web-1/auth-header", r#"{}"#),
                    json("/api/v1/webhooks/web-1/auth-header", r#"{"auth_header":"Bearer a","x":1}"#),
                ]);
                v
            }),
        ),
        (
            "DELETE /api/v1/webhooks/{name}/auth-header",
            (Other, named("/api/v1/webhooks/{name}/auth-header")),
        ),
        (
            "GET /api/v1/webhooks/deliveries",
            (
                Other,
                vec![
                    bare("/api/v1/webhooks/deliveries?dead=maybe"),
                    bare("/api/v1/webhooks/deliveries?bogus=1"),
                ],
            ),
        ),
        (
            "POST /api/v1/webhooks/deliveries/replay",
            (
                Json,
                vec![
                    json("/api/v1/webhooks/deliveries/replay", r#"{}"#),
                    json("/api/v1/webhooks/deliveries/replay", r#"{"ids":["x"]}"#),
                    json("/api/v1/webhooks/deliveries/replay", r#"{"ids":[1],"x":1}"#),
                ],
            ),
        ),
        // Agentless targets and jump points.
        ("GET /api/v1/targets", (Nothing, vec![])),
        (
            "POST /api/v1/targets",
            (
                Json,
                vec![
                    json("/api/v1/targets", r#"{"name":"t","via":"web-1"}"#),
                    json("/api/v1/targets", r#"{"name":"bad name!","via":"web-1","tcp":"h:1"}"#),
                    json(
                        "/api/v1/targets",
                        r#"{"name":"t","via":"web-1","ssh":"h","tcp":"h:1"}"#,
                    ),
                    json("/api/v1/targets", r#"{"name":"t","via":"web-1","tcp":"h:0"}"#),
                    json("/api/v1/targets", r#"{"name":"t","via":"web-1","tcp":"h"}"#),
                    json(
                        "/api/v1/targets",
                        r#"{"name":"t","via":"web-1","ssh":"h","user":"u","credential":"c","host_key":"nonsense"}"#,
                    ),
                    json(
                        "/api/v1/targets",
                        r#"{"name":"t","via":"web-1","ssh":"h","user":"u","credential":"c"}"#,
                    ),
                    json("/api/v1/targets", r#"{"name":"t","via":"no-such","tcp":"h:1"}"#),
                    json("/api/v1/targets", r#"{"name":"t","via":"web-1","tcp":"h:1","x":1}"#),
                ],
            ),
        ),
        ("GET /api/v1/targets/{name}", (Other, named("/api/v1/targets/{name}"))),
        ("DELETE /api/v1/targets/{name}", (Other, named("/api/v1/targets/{name}"))),
        (
            "PUT /api/v1/targets/{name}/host-key",
            (
                Json,
                named_json(
                    "/api/v1/targets/{name}/host-key",
                    r#"{"trust_on_first_use":"yes"}"#,
                ),
            ),
        ),
        (
            "PUT /api/v1/endpoints/{name}/jump-point",
            (Json, {
                let p = "/api/v1/endpoints/web-1/jump-point";
                let mut v = named_json("/api/v1/endpoints/{name}/jump-point", r#"{"on":"yes"}"#);
                v.extend([
                    json(p, r#"{"on":true,"allow":[]}"#),
                    json(p, r#"{"on":true,"allow":["not a host"]}"#),
                    json(p, r#"{"on":true,"allow":["10.0.0.0/40"]}"#),
                    json(p, r#"{"on":true,"allow":["db:0"]}"#),
                    json(p, r#"{"on":true,"allow":"10.0.0.0/8"}"#),
                    json(p, r#"{"on":false,"allow":["10.0.0.0/8"]}"#),
                ]);
                v
            }),
        ),
        ("GET /api/v1/jump-points", (Nothing, vec![])),
        (
            "PUT /api/v1/vault/settings/purge-protection",
            (
                Json,
                vec![json(
                    "/api/v1/vault/settings/purge-protection",
                    r#"{"enabled":"yes"}"#,
                )],
            ),
        ),
        (
            "GET /api/v1/endpoints/{name}/connect",
            (Other, {
                let mut v: Vec<Bad> = bad_names("/api/v1/endpoints/{name}/connect", "?kind=shell")
                    .iter()
                    .map(|p| bare(p))
                    .collect();
                v.push(bare("/api/v1/endpoints/web-1/connect?kind=teleport"));
                v.push(bare("/api/v1/endpoints/web-1/connect"));
                v.push(bare("/api/v1/endpoints/web-1/connect?kind=%FF"));
                v
            }),
        ),
    ])
}

/// Every bad request for a route: its own, plus for JSON routes a body that
/// is not JSON, JSON that is not an object, an empty body, and the right
/// body under another content type.
fn cases(route_path: &str, takes: Takes, own: Vec<Bad>) -> Vec<Bad> {
    let mut all = own;
    if takes == Takes::Json {
        let path = route_path
            .replace("{name}", "web-1")
            .replace("{id}", "web-1");
        all.push(json(&path, r#"{"unterminated"#));
        all.push(json(&path, "[1, 2, 3]"));
        all.push(json(&path, ""));
        all.push(json(&path, "\u{0}\u{1}binary"));
        all.push((path.clone(), Some("text/plain"), b"{}".to_vec()));
        all.push((path, None, b"{}".to_vec()));
    }
    all
}

#[tokio::test]
async fn bad_input_to_every_route_is_a_4xx_with_a_json_error() {
    let gw = start_gateway().await;
    let db = jumpgate_server::admin::open(&gw.data_dir, None)
        .await
        .unwrap();
    // An endpoint, so that per-endpoint checks reach their validation.
    let (token, _) = jumpgate_server::admin::enroll_token(&db, "web", Duration::from_secs(60))
        .await
        .unwrap();
    let pkcs8 =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap();
    let key = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    gw.client()
        .enroll(&api::EnrollRequest {
            token,
            name: "web-1".into(),
            public_key: base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref()),
            details: api::EndpointDetails::default(),
        })
        .await
        .unwrap();
    jumpgate_server::admin::create_user(&db, "chief", "admin", &[], "bad-input-password-1")
        .await
        .unwrap();
    let login = gw
        .client()
        .login("chief", "bad-input-password-1", None)
        .await
        .unwrap();
    let admin = gw.client().with_token(login.token);

    let mut table = routes();
    let served = jumpgate_server::route_table();
    assert!(served.len() >= 40, "route table suspiciously small");
    let (mut with_input, mut sent) = (0, 0);
    let mut failures = Vec::new();
    for route in &served {
        let key = format!("{} {}", route.method, route.path);
        let (takes, own) = table.remove(key.as_str()).unwrap_or_else(|| {
            panic!("no bad-input entry for `{key}`: add its cases (or declare it Nothing) here")
        });
        if takes == Takes::Nothing {
            assert!(own.is_empty(), "{key}: declared as taking nothing");
            continue;
        }
        with_input += 1;
        let all = cases(&route.path, takes, own);
        assert!(
            !all.is_empty(),
            "{key}: takes input but has no bad-input case"
        );
        let method: Method = route.method.parse().unwrap();
        for (path, content_type, body) in all {
            sent += 1;
            let what = format!(
                "{key}: {method} {} {content_type:?} {:?}",
                &path[..path.len().min(120)],
                String::from_utf8_lossy(&body)
            );
            let (status, answer) = tokio::time::timeout(
                Duration::from_secs(30),
                admin.raw(method.clone(), &path, content_type, body),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let error: Option<serde_json::Value> = serde_json::from_slice(&answer).ok();
            let error_text = |k: &str| {
                error
                    .as_ref()
                    .and_then(|e| e.get(k))
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| !s.is_empty())
            };
            let detail_key = if route.path == "/oauth2/token" {
                "error_description"
            } else {
                "message"
            };
            if !status.is_client_error() || !error_text("error") || !error_text(detail_key) {
                failures.push(format!(
                    "{what}\n    -> {status} {}",
                    String::from_utf8_lossy(&answer)
                ));
            }
        }
    }
    // Stale entries (routes the gateway no longer serves) fail too.
    assert!(
        table.is_empty(),
        "entries for routes the gateway does not serve: {:?}",
        table.keys().collect::<Vec<_>>()
    );
    assert!(with_input >= 40, "only {with_input} routes take input?");
    assert!(sent > 150, "only {sent} bad requests sent");
    assert!(
        failures.is_empty(),
        "{} of {sent} bad requests were not answered with a 4xx and a JSON error:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The gateway still serves, and nothing bad input asked for exists.
    let groups: Vec<api::Group> = admin.get_json("/api/v1/groups").await.unwrap();
    assert!(groups.iter().all(|g| g.name != "bad name"), "{groups:?}");
    let users: Vec<api::User> = admin.get_json("/api/v1/users").await.unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    let endpoints: Vec<api::Endpoint> = admin.get_json("/api/v1/endpoints").await.unwrap();
    assert_eq!(
        endpoints
            .iter()
            .map(|e| (e.name.as_str(), e.group.as_str()))
            .collect::<Vec<_>>(),
        [("web-1", "web")]
    );
    db.close().await;
    gw.stop().await;
}

/// The framework's own rejections become the API's JSON errors too: a
/// method a route does not serve, and an unknown route.
#[tokio::test]
async fn framework_rejections_are_json_errors() {
    let gw = start_gateway().await;
    let anon = gw.client();
    for (method, path, status, code) in [
        (
            Method::PATCH,
            "/api/v1/auth/login",
            405,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/v1/agents/enroll",
            405,
            "method_not_allowed",
        ),
        (Method::GET, "/api/v1/no-such-route", 404, "no_route"),
        (Method::GET, "/assets/%FF", 400, "bad_request"),
    ] {
        let (got, body) = anon
            .raw(method.clone(), path, None, Vec::new())
            .await
            .unwrap();
        let e: api::ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: not a JSON error: {got} {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(
            (got.as_u16(), e.error.as_str()),
            (status, code),
            "{method} {path}"
        );
        assert!(!e.message.is_empty());
    }
    gw.stop().await;
}
