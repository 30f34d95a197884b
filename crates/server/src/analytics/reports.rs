//! The reports: a registry of named queries over the analytics store
//! ([`REPORTS`]), each a filter (kind, actions, outcomes) and a grouping,
//! run by the read identity on any engine (SQL for the embedded file and
//! PostgreSQL, a composite aggregation for OpenSearch), shaped into a
//! table for JSON, CSV and the console's charts.
//!
//! A new report is one more [`Spec`] here (package compliance joins once
//! the package events are shipped: `kind = "package"`).

use jumpgate_api_types::reports as api;

use super::AnalyticsError;

/// What a report groups by (each a stored column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    Day,
    Actor,
    Target,
    Outcome,
    Rule,
    Program,
}

impl Dim {
    /// The SQL expression (a constant: never input).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Actor => "actor",
            Self::Target => "target",
            Self::Outcome => "outcome",
            Self::Rule => "rule",
            Self::Program => "program",
        }
    }

    /// The stored field (OpenSearch).
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Actor => "actor",
            Self::Target => "target",
            Self::Outcome => "outcome",
            Self::Rule => "rule",
            Self::Program => "program",
        }
    }
}

/// What a report counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metric {
    /// Events per group.
    Count,
    /// Events per group, the mean and the largest of their value, divided
    /// by `scale` (1000: ms shown as seconds).
    Value { scale: i64 },
}

/// How rows are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// By the grouping columns (days in order).
    Dims,
    /// Largest count first.
    CountDesc,
}

/// One report.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) description: &'static str,
    pub(crate) kind: &'static str,
    /// Only these actions (empty: any).
    pub(crate) actions: &'static [&'static str],
    /// Only these outcomes (empty: any).
    pub(crate) outcomes: &'static [&'static str],
    /// Grouping columns and their names in the answer.
    pub(crate) dims: &'static [(Dim, &'static str)],
    pub(crate) metric: Metric,
    /// Names of the metric columns: the count, then (for `Value`) the mean
    /// and the largest.
    pub(crate) metric_names: &'static [&'static str],
    pub(crate) order: Order,
    pub(crate) chart: api::ChartKind,
}

/// Every report, in the console's order.
pub(crate) const REPORTS: &[Spec] = &[
    Spec {
        name: "sessions-per-day",
        title: "Sessions per day",
        description: "Sessions opened on endpoints (shell, exec, files, forwarding, desktop), per day (UTC).",
        kind: "session",
        actions: &[],
        outcomes: &[],
        dims: &[(Dim::Day, "day")],
        metric: Metric::Count,
        metric_names: &["sessions"],
        order: Order::Dims,
        chart: api::ChartKind::Line,
    },
    Spec {
        name: "sessions-per-technician",
        title: "Sessions per technician",
        description: "Sessions opened, per technician.",
        kind: "session",
        actions: &[],
        outcomes: &[],
        dims: &[(Dim::Actor, "technician")],
        metric: Metric::Count,
        metric_names: &["sessions"],
        order: Order::CountDesc,
        chart: api::ChartKind::Bar,
    },
    Spec {
        name: "sessions-per-endpoint",
        title: "Sessions per endpoint",
        description: "Sessions opened, per endpoint.",
        kind: "session",
        actions: &[],
        outcomes: &[],
        dims: &[(Dim::Target, "endpoint")],
        metric: Metric::Count,
        metric_names: &["sessions"],
        order: Order::CountDesc,
        chart: api::ChartKind::Bar,
    },
    Spec {
        name: "support-wait-times",
        title: "Attended support: wait times",
        description: "Support sessions taken, per technician, with how long customers waited from their request to being taken (seconds).",
        kind: "support",
        actions: &["accept"],
        outcomes: &[],
        dims: &[(Dim::Actor, "technician")],
        metric: Metric::Value { scale: 1000 },
        metric_names: &["accepted", "mean_wait_s", "max_wait_s"],
        order: Order::CountDesc,
        chart: api::ChartKind::Bar,
    },
    Spec {
        name: "support-ratings",
        title: "Attended support: ratings",
        description: "Customers' ratings (1 to 5 stars), per technician.",
        kind: "support",
        actions: &["rated"],
        outcomes: &[],
        dims: &[(Dim::Actor, "technician")],
        metric: Metric::Value { scale: 1 },
        metric_names: &["ratings", "mean_rating", "best_rating"],
        order: Order::CountDesc,
        chart: api::ChartKind::Bar,
    },
    Spec {
        name: "elevation-decisions",
        title: "Elevation decisions",
        description: "Elevation attempts by rule, program and outcome (allowed, denied, failed).",
        kind: "elevation",
        actions: &[],
        outcomes: &[],
        dims: &[
            (Dim::Rule, "rule"),
            (Dim::Program, "program"),
            (Dim::Outcome, "outcome"),
        ],
        metric: Metric::Count,
        metric_names: &["decisions"],
        order: Order::CountDesc,
        chart: api::ChartKind::Bar,
    },
    Spec {
        name: "blocked-programs",
        title: "Blocked programs",
        description: "Programs whose elevation was denied, most often first.",
        kind: "elevation",
        actions: &[],
        outcomes: &["denied"],
        dims: &[(Dim::Program, "program")],
        metric: Metric::Count,
        metric_names: &["denied"],
        order: Order::CountDesc,
        chart: api::ChartKind::Bar,
    },
    Spec {
        name: "failed-logins",
        title: "Failed logins",
        description: "Failed login attempts per account and day (UTC).",
        kind: "login",
        actions: &[],
        outcomes: &["failed"],
        dims: &[(Dim::Day, "day"), (Dim::Actor, "user")],
        metric: Metric::Count,
        metric_names: &["attempts"],
        order: Order::Dims,
        chart: api::ChartKind::Bar,
    },
];

/// The report named `name`.
pub(crate) fn find(name: &str) -> Option<&'static Spec> {
    REPORTS.iter().find(|s| s.name == name)
}

/// Most rows a report answers.
pub(crate) const MAX_ROWS: usize = 10_000;

/// A report run: its spec and the caller's filters.
#[derive(Clone, Debug)]
pub(crate) struct Query<'a> {
    pub(crate) spec: &'a Spec,
    /// From (inclusive), ms.
    pub(crate) since: Option<i64>,
    /// Until (exclusive), ms.
    pub(crate) until: Option<i64>,
    pub(crate) group: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) endpoint: Option<&'a str>,
    /// The caller's groups when it does not hold all (`None`: every row).
    pub(crate) scope: Option<&'a [String]>,
}

impl<'a> Query<'a> {
    /// The report without filters.
    pub(crate) fn all(spec: &'a Spec) -> Self {
        Self {
            spec,
            since: None,
            until: None,
            group: None,
            user: None,
            endpoint: None,
            scope: None,
        }
    }
}

/// One row of a report: the grouping values, then the count, the sum and
/// count of the values, and the largest value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) dims: Vec<String>,
    pub(crate) count: i64,
    pub(crate) sum: Option<i64>,
    pub(crate) values: i64,
    pub(crate) max: Option<i64>,
}

/// A bound parameter of [`sql`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// The SQL of a query (the same on SQLite and PostgreSQL) and its
/// parameters. Only constants go into the text; every value is bound.
pub(crate) fn sql(q: &Query<'_>) -> (String, Vec<Bind>) {
    fn param(binds: &mut Vec<Bind>, b: Bind) -> String {
        binds.push(b);
        format!("${}", binds.len())
    }
    fn list(binds: &mut Vec<Bind>, col: &str, items: &[&str]) -> String {
        let ps: Vec<String> = items
            .iter()
            .map(|s| param(binds, Bind::Text((*s).to_owned())))
            .collect();
        format!("{col} IN ({})", ps.join(", "))
    }
    let mut binds = vec![Bind::Text(q.spec.kind.to_owned())];
    let mut wh = vec!["kind = $1".to_owned()];
    if !q.spec.actions.is_empty() {
        wh.push(list(&mut binds, "action", q.spec.actions));
    }
    if !q.spec.outcomes.is_empty() {
        wh.push(list(&mut binds, "outcome", q.spec.outcomes));
    }
    if let Some(scope) = q.scope {
        if scope.is_empty() {
            wh.push("1 = 0".to_owned());
        } else {
            let items: Vec<&str> = scope.iter().map(String::as_str).collect();
            wh.push(list(&mut binds, "grp", &items));
        }
    }
    if let Some(s) = q.since {
        wh.push(format!("at >= {}", param(&mut binds, Bind::Int(s))));
    }
    if let Some(u) = q.until {
        wh.push(format!("at < {}", param(&mut binds, Bind::Int(u))));
    }
    for (col, v) in [("grp", q.group), ("actor", q.user), ("target", q.endpoint)] {
        if let Some(v) = v {
            wh.push(format!(
                "{col} = {}",
                param(&mut binds, Bind::Text(v.to_owned()))
            ));
        }
    }
    let dims: Vec<&str> = q.spec.dims.iter().map(|(d, _)| d.sql()).collect();
    let dims = dims.join(", ");
    let order = match q.spec.order {
        Order::Dims => dims.clone(),
        Order::CountDesc => format!("COUNT(*) DESC, {dims}"),
    };
    let text = format!(
        "SELECT {dims}, COUNT(*), CAST(SUM(value) AS BIGINT), COUNT(value), MAX(value)
           FROM analytics_events WHERE {} GROUP BY {dims} ORDER BY {order} LIMIT {MAX_ROWS}",
        wh.join(" AND ")
    );
    (text, binds)
}

/// Rows of [`sql`]'s answer as groups.
///
/// # Errors
/// A column has an unexpected type.
pub(crate) fn groups_from_rows<R>(spec: &Spec, rows: &[R]) -> Result<Vec<Group>, AnalyticsError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let n = spec.dims.len();
    rows.iter()
        .map(|r| {
            let mut dims = Vec::with_capacity(n);
            for i in 0..n {
                let v: Option<String> = r.try_get(i)?;
                dims.push(v.unwrap_or_default());
            }
            Ok(Group {
                dims,
                count: r.try_get(n)?,
                sum: r.try_get(n + 1)?,
                values: r.try_get(n + 2)?,
                max: r.try_get(n + 3)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(AnalyticsError::Db)
}

/// Sorts groups as the spec says (engines that cannot, or to be sure).
pub(crate) fn sort(spec: &Spec, groups: &mut [Group]) {
    match spec.order {
        Order::Dims => groups.sort_by(|a, b| a.dims.cmp(&b.dims)),
        Order::CountDesc => {
            groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.dims.cmp(&b.dims)));
        }
    }
}

/// The answer of a report: columns and rows.
pub(crate) fn table(spec: &Spec, groups: &[Group]) -> api::Report {
    let mut columns: Vec<api::Column> = spec
        .dims
        .iter()
        .map(|(_, name)| api::Column {
            name: (*name).to_owned(),
            numeric: false,
        })
        .collect();
    columns.extend(spec.metric_names.iter().map(|name| api::Column {
        name: (*name).to_owned(),
        numeric: true,
    }));
    let rows = groups
        .iter()
        .map(|g| {
            let mut row: Vec<serde_json::Value> = g
                .dims
                .iter()
                .map(|d| serde_json::Value::from(d.as_str()))
                .collect();
            row.push(g.count.into());
            if let Metric::Value { scale } = spec.metric {
                let mean = match (g.sum, g.values) {
                    (Some(s), n) if n > 0 => Some(round2(s as f64 / n as f64 / scale as f64)),
                    _ => None,
                };
                row.push(mean.map_or(serde_json::Value::Null, serde_json::Value::from));
                row.push(g.max.map_or(serde_json::Value::Null, |m| {
                    round2(m as f64 / scale as f64).into()
                }));
            }
            row
        })
        .collect();
    api::Report {
        name: spec.name.to_owned(),
        title: spec.title.to_owned(),
        columns,
        rows,
        chart: spec.chart,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The report as CSV (RFC 4180: a header line, fields quoted when they
/// hold a comma, quote or line break). A field that a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`.
pub(crate) fn csv(report: &api::Report) -> String {
    let mut out = String::new();
    let line = |out: &mut String, fields: Vec<String>| {
        let cells: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(
        &mut out,
        report.columns.iter().map(|c| c.name.clone()).collect(),
    );
    for row in &report.rows {
        line(
            &mut out,
            row.iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    out
}

fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@']) && f.parse::<f64>().is_err() {
        format!("'{f}")
    } else {
        f.to_owned()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

/// Every report's name, title and columns (`GET /api/v1/reports`).
pub(crate) fn catalogue() -> Vec<api::ReportInfo> {
    REPORTS
        .iter()
        .map(|s| api::ReportInfo {
            name: s.name.to_owned(),
            title: s.title.to_owned(),
            description: s.description.to_owned(),
            chart: s.chart,
        })
        .collect()
}
