//! The OpenSearch/Elasticsearch analytics store: the gateway ships events
//! with `POST /_bulk` (`create` with the event's id as `_id`: a resent
//! event answers 409 and is skipped) as a write-only user, and reports run
//! `POST /<index>/_search` (a composite aggregation) as a read-only user,
//! each with its own credentials (HTTP basic). The client is the gateway's
//! own HTTP stack (`crate::http_client`: hyper over tokio-rustls, the
//! system's roots or a pinned certificate fingerprint).
//!
//! The index's fields are keywords (`kind`, `actor`, …), `at` and `value`
//! numbers: README shows the mapping and the two roles to create.

use std::time::Duration;

use base64::Engine as _;
use http::{HeaderValue, Method, header};
use serde_json::{Value, json};

use super::reports::{self, Dim, Group};
use super::{AnalyticsError, Event};
use crate::config::OpenSearchConfig;
use crate::http_client::{Endpoint, PlainHttp, TrustSpec};

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Groups asked per composite-aggregation page.
const PAGE: usize = 1000;

/// The cluster's endpoint from the configuration.
fn endpoint(url: &str, pin: Option<&str>) -> Result<Endpoint, AnalyticsError> {
    let trust = match pin {
        Some(p) => TrustSpec::Pinned(p),
        None => TrustSpec::System,
    };
    Endpoint::parse(url, &trust, PlainHttp::Allowed)
        .map_err(|m| AnalyticsError::Config(format!("analytics.url: {m}")))
}

/// One identity's client: the endpoint and its basic credentials.
#[derive(Clone)]
struct Client {
    ep: Endpoint,
    user: String,
    authorization: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.ep.url)
            .field("user", &self.user)
            .field("password", &"MASKED")
            .finish()
    }
}

impl Client {
    fn new(ep: Endpoint, user: &str, password: &str) -> Self {
        let pair = zeroize::Zeroizing::new(format!("{user}:{password}"));
        Self {
            ep,
            user: user.to_owned(),
            authorization: zeroize::Zeroizing::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            )),
        }
    }

    /// One request on a fresh connection: (status, body).
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), AnalyticsError> {
        let headers = [
            (
                header::AUTHORIZATION,
                HeaderValue::from_str(self.authorization.as_str())
                    .map_err(|e| AnalyticsError::Config(format!("analytics credentials: {e}")))?,
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(content_type)
                    .map_err(|e| AnalyticsError::Config(e.to_string()))?,
            ),
        ];
        self.ep
            .call(method, path, &headers, body, TIMEOUT)
            .await
            .map_err(|message| AnalyticsError::Http {
                url: self.ep.url.clone(),
                message,
            })
    }
}

/// A short excerpt of an error answer for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// The stored document of an event (field order fixed: the contract test
/// compares requests).
#[derive(serde::Serialize)]
struct Doc<'a> {
    at: i64,
    day: String,
    kind: &'a str,
    action: &'a str,
    actor: &'a str,
    target: &'a str,
    grp: &'a str,
    outcome: &'a str,
    rule: &'a str,
    program: &'a str,
    value: Option<i64>,
    detail: &'a str,
}

/// The write identity: `_bulk` only.
#[derive(Debug)]
pub(crate) struct Writer {
    client: Client,
    index: String,
}

impl Writer {
    /// # Errors
    /// Bad URL or certificate pin.
    pub(crate) fn new(c: &OpenSearchConfig, password: &str) -> Result<Self, AnalyticsError> {
        let ep = endpoint(&c.url, c.ca_fingerprint.as_deref())?;
        Ok(Self {
            client: Client::new(ep, &c.write_user, password),
            index: c.index.clone(),
        })
    }

    /// The `_bulk` body of a batch (NDJSON, `create` with `_id`).
    pub(crate) fn bulk_body(index: &str, events: &[Event]) -> Vec<u8> {
        let mut out = Vec::with_capacity(events.len() * 256);
        for e in events {
            let action = json!({"create": {"_index": index, "_id": e.id}});
            out.extend_from_slice(action.to_string().as_bytes());
            out.push(b'\n');
            let doc = Doc {
                at: e.at,
                day: e.day(),
                kind: &e.kind,
                action: &e.action,
                actor: &e.actor,
                target: &e.target,
                grp: &e.grp,
                outcome: &e.outcome,
                rule: &e.rule,
                program: &e.program,
                value: e.value,
                detail: &e.detail,
            };
            out.extend_from_slice(&serde_json::to_vec(&doc).unwrap_or_default());
            out.push(b'\n');
        }
        out
    }

    /// Ships a batch. Items answering 409 (`version_conflict_engine_exception`:
    /// the id is stored already) count as stored.
    ///
    /// # Errors
    /// The cluster is unreachable, refused the request or an item.
    pub(crate) async fn insert(&self, events: &[Event]) -> Result<(), AnalyticsError> {
        let body = Self::bulk_body(&self.index, events);
        let (status, answer) = self
            .client
            .call(Method::POST, "/_bulk", "application/x-ndjson", body)
            .await?;
        if status != 200 {
            return Err(AnalyticsError::Refused {
                status,
                message: excerpt(&answer),
            });
        }
        let v: Value = serde_json::from_slice(&answer).map_err(|e| AnalyticsError::Refused {
            status,
            message: format!("unreadable _bulk answer: {e}"),
        })?;
        if v["errors"].as_bool() == Some(true) {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            for item in items {
                let r = &item["create"];
                let s = r["status"].as_u64().unwrap_or(0);
                if !matches!(s, 200 | 201 | 409) {
                    return Err(AnalyticsError::Refused {
                        status: u16::try_from(s).unwrap_or(0),
                        message: format!(
                            "{}: {}",
                            r["error"]["type"].as_str().unwrap_or("error"),
                            r["error"]["reason"].as_str().unwrap_or("")
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        format!("opensearch:{}/{}", self.client.ep.url, self.index)
    }
}

/// The read identity: `_search` only.
#[derive(Debug)]
pub(crate) struct Reader {
    client: Client,
    index: String,
}

impl Reader {
    /// # Errors
    /// Bad URL or certificate pin.
    pub(crate) fn new(c: &OpenSearchConfig, password: &str) -> Result<Self, AnalyticsError> {
        let ep = endpoint(&c.url, c.ca_fingerprint.as_deref())?;
        Ok(Self {
            client: Client::new(ep, &c.read_user, password),
            index: c.index.clone(),
        })
    }

    /// The `_search` body of a report query (`after`: the previous page's
    /// `after_key`).
    pub(crate) fn search_body(q: &reports::Query<'_>, after: Option<&Value>) -> Value {
        let mut filter = vec![json!({"term": {"kind": q.spec.kind}})];
        if !q.spec.actions.is_empty() {
            filter.push(json!({"terms": {"action": q.spec.actions}}));
        }
        if !q.spec.outcomes.is_empty() {
            filter.push(json!({"terms": {"outcome": q.spec.outcomes}}));
        }
        if let Some(scope) = q.scope {
            filter.push(json!({"terms": {"grp": scope}}));
        }
        if q.since.is_some() || q.until.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(s) = q.since {
                range.insert("gte".into(), s.into());
            }
            if let Some(u) = q.until {
                range.insert("lt".into(), u.into());
            }
            filter.push(json!({"range": {"at": range}}));
        }
        for (field, v) in [("grp", q.group), ("actor", q.user), ("target", q.endpoint)] {
            if let Some(v) = v {
                let mut term = serde_json::Map::new();
                term.insert(field.to_owned(), v.into());
                filter.push(json!({ "term": term }));
            }
        }
        let sources: Vec<Value> = q
            .spec
            .dims
            .iter()
            .enumerate()
            .map(|(i, (d, _))| {
                let mut source = serde_json::Map::new();
                source.insert(format!("d{i}"), json!({"terms": {"field": d.field()}}));
                Value::Object(source)
            })
            .collect();
        let mut composite = json!({"size": PAGE, "sources": sources});
        if let Some(a) = after {
            composite["after"] = a.clone();
        }
        json!({
            "size": 0,
            "track_total_hits": false,
            "query": {"bool": {"filter": filter}},
            "aggs": {"r": {
                "composite": composite,
                "aggs": {
                    "sum": {"sum": {"field": "value"}},
                    "n": {"value_count": {"field": "value"}},
                    "max": {"max": {"field": "value"}}
                }
            }}
        })
    }

    /// Runs a report query, page by page.
    ///
    /// # Errors
    /// The cluster is unreachable or refused.
    pub(crate) async fn query(&self, q: &reports::Query<'_>) -> Result<Vec<Group>, AnalyticsError> {
        if q.spec.metric == reports::Metric::Compliance {
            // Each endpoint's latest record needs a window over the
            // events; composite aggregations have none.
            return Err(AnalyticsError::Config(format!(
                "the {} report needs an SQL analytics store (embedded or PostgreSQL)",
                q.spec.name
            )));
        }
        let path = format!("/{}/_search", self.index);
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let body =
                serde_json::to_vec(&Self::search_body(q, after.as_ref())).unwrap_or_default();
            let (status, answer) = self
                .client
                .call(Method::POST, &path, "application/json", body)
                .await?;
            if status == 404 && excerpt(&answer).contains("index_not_found") {
                return Ok(Vec::new());
            }
            if status != 200 {
                return Err(AnalyticsError::Refused {
                    status,
                    message: excerpt(&answer),
                });
            }
            let v: Value =
                serde_json::from_slice(&answer).map_err(|e| AnalyticsError::Refused {
                    status,
                    message: format!("unreadable _search answer: {e}"),
                })?;
            let agg = &v["aggregations"]["r"];
            let buckets = agg["buckets"].as_array().cloned().unwrap_or_default();
            let n = buckets.len();
            for b in buckets {
                out.push(group_of(q.spec.dims, &b));
            }
            after = agg.get("after_key").cloned();
            if n < PAGE || after.is_none() || out.len() >= reports::MAX_ROWS {
                break;
            }
        }
        out.truncate(reports::MAX_ROWS);
        reports::sort(q.spec, &mut out);
        Ok(out)
    }
}

/// A composite bucket as a group.
fn group_of(dims: &[(Dim, &'static str)], b: &Value) -> Group {
    let dims = (0..dims.len())
        .map(|i| match &b["key"][format!("d{i}")] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()),
            other => other.to_string(),
        })
        .collect();
    let values = b["n"]["value"].as_i64().unwrap_or(0);
    let num = |v: &Value| v.as_f64().map(|f| f.round() as i64);
    Group {
        dims,
        count: b["doc_count"].as_i64().unwrap_or(0),
        sum: if values > 0 {
            num(&b["sum"]["value"])
        } else {
            None
        },
        values,
        max: num(&b["max"]["value"]),
    }
}
