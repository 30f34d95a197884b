//! `jg endpoints [--name TEXT] [--group G] [--online|--offline] [--limit N] [--json]`.
//!
//! The list comes a page at a time, each page after the previous one's
//! last name, and the table is printed as pages arrive: a first page of
//! [`FIRST_PAGE`] endpoints shows at once on a site of thousands, then
//! pages of [`PAGE`] (the gateway's largest: few requests, all on the one
//! kept connection of the client).

use std::borrow::Cow;

use anyhow::Context;
use jumpgate_api_types::Endpoint;
use jumpgate_client::{Client, EndpointFilter};

use crate::table;

/// Endpoints asked for by the first request.
const FIRST_PAGE: u32 = 1000;
/// Endpoints asked for by each later request (the gateway's largest page).
const PAGE: u32 = 10_000;

/// What to list.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Names containing this text (any case).
    pub(crate) name: Option<String>,
    pub(crate) group: Option<String>,
    /// Only online (`true`) or offline (`false`) endpoints.
    pub(crate) online: Option<bool>,
    /// At most this many endpoints.
    pub(crate) limit: Option<u32>,
    pub(crate) json: bool,
}

impl Options {
    /// The filters, checked here too: a gateway from before the list had
    /// filters answers every endpoint.
    fn matches(&self, e: &impl Listed) -> bool {
        self.name
            .as_deref()
            .is_none_or(|n| e.name().to_lowercase().contains(&n.to_lowercase()))
            && self.group.as_deref().is_none_or(|g| e.group() == g)
            && self.online.is_none_or(|o| e.online() == o)
    }
}

pub(crate) async fn run(client: &Client, o: &Options) -> anyhow::Result<()> {
    let mut table = table::Paged::new(HEADERS);
    let mut json: Vec<serde_json::Value> = Vec::new();
    let mut shown: u64 = 0;
    let mut after: Option<String> = None;
    loop {
        let size = if after.is_none() { FIRST_PAGE } else { PAGE };
        let want = match o.limit {
            Some(limit) => u64::from(size).min(u64::from(limit) - shown) as u32,
            None => size,
        };
        if want == 0 {
            break;
        }
        let f = EndpointFilter {
            name: o.name.as_deref(),
            group: o.group.as_deref(),
            online: o.online,
            after: after.as_deref(),
            limit: Some(want),
        };
        let body = client
            .endpoints_page_json(&f)
            .await
            .context("listing endpoints")?;
        let seen = if o.json {
            let page: Vec<Endpoint> = parse(&body, want)?;
            let seen = Seen::of(&page, after.as_deref(), want);
            if !seen.repeated {
                let before = json.len();
                for e in page
                    .into_iter()
                    .filter(|e| o.matches(e))
                    .take(want as usize)
                {
                    json.push(serde_json::to_value(e)?);
                }
                shown += (json.len() - before) as u64;
            }
            seen
        } else {
            // The table needs six fields of each endpoint: they are read in
            // place (a page of thousands, not a copy of every value).
            let page: Vec<Row<'_>> = parse(&body, want)?;
            let seen = Seen::of(&page, after.as_deref(), want);
            if !seen.repeated {
                let mut rows: Vec<[Cow<'_, str>; 6]> = Vec::with_capacity(page.len());
                rows.extend(
                    page.iter()
                        .filter(|e| o.matches(*e))
                        .take(want as usize)
                        .map(Row::cells),
                );
                shown += rows.len() as u64;
                crate::out::text(&table.page(&rows))?;
            }
            seen
        };
        // A gateway from before paging answers the whole list each time:
        // more than asked for (shown, up to the limit, and done), or the
        // previous page again, the cursor in it (shown already).
        if seen.repeated {
            break;
        }
        after = seen.last;
        if !seen.more {
            break;
        }
    }
    // Agentless targets follow, marked as such (a gateway without
    // targets answers 404: none then).
    // With --json each is the target's own object plus `"target": true`.
    if o.online.is_none() && o.limit.is_none_or(|l| shown < u64::from(l)) {
        let targets = client.targets().await.unwrap_or_default();
        let wanted: Vec<_> = targets
            .iter()
            .filter(|t| {
                o.name
                    .as_deref()
                    .is_none_or(|n| t.name.to_lowercase().contains(&n.to_lowercase()))
                    && o.group.as_deref().is_none_or(|g| t.group == g)
            })
            .take(
                o.limit
                    .map_or(usize::MAX, |l| (u64::from(l) - shown) as usize),
            )
            .collect();
        if o.json {
            for t in &wanted {
                let mut v = serde_json::to_value(t)?;
                if let Some(m) = v.as_object_mut() {
                    m.insert("target".into(), serde_json::Value::Bool(true));
                }
                json.push(v);
            }
        }
        let rows: Vec<[String; 6]> = wanted
            .iter()
            .filter(|_| !o.json)
            .map(|t| {
                [
                    t.name.clone(),
                    t.group.clone(),
                    format!("target ({})", t.kind),
                    "-".to_owned(),
                    "-".to_owned(),
                    format!("{} via {}", super::targets::address(t), t.via),
                ]
            })
            .collect();
        if !rows.is_empty() {
            shown += rows.len() as u64;
            crate::out::text(&table.page(&rows))?;
        }
    }
    if o.json {
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    } else if shown == 0 {
        // The header alone, as for an empty list.
        out!("{}", table.page::<[&str; 0], &str>(&[]))?;
    }
    Ok(())
}

/// A page of the list: a JSON array of `T`, read into a vector made with
/// room for the `want` entries asked for (not grown and copied while a
/// page of thousands is read).
fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8], want: u32) -> anyhow::Result<Vec<T>> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(body);
    Reserved(want as usize, std::marker::PhantomData)
        .deserialize(&mut de)
        .and_then(|page| de.end().map(|()| page))
        .context("listing endpoints: the gateway's answer is not an endpoint list")
}

/// Reads a JSON array into a vector with room for this many entries
/// (at most [`PAGE`]: the answer decides, not the hint).
struct Reserved<T>(usize, std::marker::PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for Reserved<T> {
    type Value = Vec<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Reserved<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of endpoints")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut page = Vec::with_capacity(self.0.min(PAGE as usize));
        while let Some(e) = seq.next_element()? {
            page.push(e);
        }
        Ok(page)
    }
}

/// What the paging loop needs of an endpoint, whichever way it was read.
trait Listed {
    fn name(&self) -> &str;
    fn group(&self) -> &str;
    fn online(&self) -> bool;
}

impl Listed for Endpoint {
    fn name(&self) -> &str {
        &self.name
    }
    fn group(&self) -> &str {
        &self.group
    }
    fn online(&self) -> bool {
        self.online
    }
}

impl Listed for Row<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn group(&self) -> &str {
        &self.group
    }
    fn online(&self) -> bool {
        self.online
    }
}

/// What one page tells the paging loop.
struct Seen {
    /// The page holds the cursor: a gateway from before paging sent the
    /// previous page again.
    repeated: bool,
    /// A full page: there may be more.
    more: bool,
    /// The cursor for the next page.
    last: Option<String>,
}

impl Seen {
    fn of<E: Listed>(page: &[E], after: Option<&str>, want: u32) -> Self {
        Self {
            repeated: after.is_some_and(|a| page.iter().any(|e| e.name() == a)),
            more: page.len() == want as usize,
            last: page.last().map(|e| e.name().to_owned()),
        }
    }
}

/// The fields of an [`Endpoint`] the table shows, borrowed from the
/// gateway's answer where no escape forces a copy.
#[derive(Debug, serde::Deserialize)]
struct Row<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    group: Cow<'a, str>,
    online: bool,
    #[serde(default)]
    last_seen: Option<Cow<'a, str>>,
    #[serde(borrow)]
    os: Cow<'a, str>,
    #[serde(borrow)]
    hostname: Cow<'a, str>,
    #[serde(default)]
    conflict: Option<RowConflict>,
}

#[derive(Debug, serde::Deserialize)]
struct RowConflict {
    count: u64,
}

impl Row<'_> {
    fn cells(&self) -> [Cow<'_, str>; 6] {
        [
            Cow::Borrowed(&*self.name),
            Cow::Borrowed(&*self.group),
            status(self.online, self.conflict.as_ref().map(|c| c.count)),
            last_seen(self.online, self.last_seen.as_deref()),
            Cow::Borrowed(&*self.os),
            Cow::Borrowed(&*self.hostname),
        ]
    }
}

const HEADERS: &[&str] = &["NAME", "GROUP", "STATUS", "LAST SEEN", "OS", "HOSTNAME"];

/// `online`/`offline`, and `conflict` while a second agent with the
/// endpoint's identity has been refused (until it is re-enrolled).
fn status(online: bool, conflicts: Option<u64>) -> Cow<'static, str> {
    let state = if online { "online" } else { "offline" };
    match conflicts {
        Some(n) => Cow::Owned(format!("{state}, conflict ({n}x)")),
        None => Cow::Borrowed(state),
    }
}

fn last_seen(online: bool, at: Option<&str>) -> Cow<'static, str> {
    match (at, online) {
        (_, true) => Cow::Borrowed("now"),
        (Some(t), false) => Cow::Owned(table::timestamp(t)),
        (None, false) => Cow::Borrowed("never"),
    }
}

/// The table of `endpoints`, read as `run` reads the gateway's answer.
#[cfg(test)]
fn render(endpoints: &[Endpoint]) -> String {
    let body = serde_json::to_vec(endpoints).unwrap();
    let rows: Vec<Row<'_>> = parse(&body, 10).unwrap();
    let cells: Vec<[Cow<'_, str>; 6]> = rows.iter().map(Row::cells).collect();
    table::Paged::new(HEADERS).page(&cells)
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
    fn a_page_is_read_whole_whatever_room_was_made_and_only_as_an_array() {
        let three = [
            endpoint("a", true, None),
            endpoint("b", false, None),
            endpoint("c", false, None),
        ];
        let body = serde_json::to_vec(&three).unwrap();
        let rows: Vec<Row<'_>> = parse(&body, 1).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let whole: Vec<Endpoint> = parse(&body, PAGE).unwrap();
        assert_eq!(whole, three);
        assert!(parse::<Row<'_>>(b"{}", 10).is_err());
        assert!(parse::<Row<'_>>(b"[] []", 10).is_err());
        assert!(parse::<Row<'_>>(b"[", 10).is_err());
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
