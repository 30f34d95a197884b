//! The reports: a registry of named queries over the analytics store
//! ([`REPORTS`]), each a filter (kind, actions, outcomes) and a grouping,
//! run by the read identity on any engine (SQL for the embedded file and
//! PostgreSQL, a composite aggregation for OpenSearch), shaped into a
//! table for JSON, CSV and the console's charts.
//!
//! A new report is one more [`Spec`] here; its day rollup follows from the
//! spec ([`rollup_add_sql`]) and is rebuilt from the stored events when
//! the set of reports changes ([`rollup_fingerprint`]).

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
    Group,
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
            Self::Group => "grp",
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
            Self::Group => "grp",
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
    /// Endpoints by the outcome of their latest event per package (the
    /// first grouping column must be the package, `program`): how many,
    /// and how many of them are compliant (`installed`, `removed`,
    /// `unchanged`), failed (`failed`, `refused`) and pending (told, no
    /// answer yet). A state, not a count of events: read from the events
    /// (a window per package and endpoint), never from the day rollups. In
    /// a [`Group`]: `count` the endpoints, `sum` the compliant, `values`
    /// the failed, `max` the pending.
    Compliance,
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
    Spec {
        name: "package-compliance",
        title: "Package compliance",
        description: "Per package and endpoint group, the endpoints whose latest result in the window is compliant (installed, removed or already as assigned), failed (the installer failed or the download was refused) or pending (told, no answer yet).",
        kind: "package",
        actions: &[],
        outcomes: &[],
        dims: &[(Dim::Program, "package"), (Dim::Group, "group")],
        metric: Metric::Compliance,
        metric_names: &["endpoints", "compliant", "failed", "pending"],
        order: Order::Dims,
        chart: api::ChartKind::StackedBar,
    },
];

/// The outcomes a compliance report counts as compliant and as failed
/// (anything else, `pending`, as pending).
const COMPLIANT: &str = "'installed', 'removed', 'unchanged'";
const FAILED: &str = "'failed', 'refused'";

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
    if q.spec.metric == Metric::Compliance {
        // The latest event per package (the first column) and endpoint.
        let text = format!(
            "SELECT {dims}, COUNT(*),
                    CAST(SUM(CASE WHEN outcome IN ({COMPLIANT}) THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN outcome IN ({FAILED}) THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN outcome IN ({COMPLIANT}) OR outcome IN ({FAILED})
                                  THEN 0 ELSE 1 END) AS BIGINT)
               FROM (SELECT {dims}, outcome,
                            ROW_NUMBER() OVER (PARTITION BY {first}, target
                                               ORDER BY at DESC, id DESC) AS latest
                       FROM analytics_events WHERE {}) l
              WHERE latest = 1 GROUP BY {dims} ORDER BY {dims} LIMIT {MAX_ROWS}",
            wh.join(" AND "),
            first = q.spec.dims[0].0.sql(),
        );
        return (text, binds);
    }
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

/// Which dims of a rollup row hold a report's grouping columns: `k1`,
/// `k2`, `k3` in the order of [`Spec::dims`] (a report has at most three).
const ROLLUP_KEYS: [&str; 3] = ["k1", "k2", "k3"];

/// The day rollup of every report (`analytics_rollup`): per report, UTC
/// day and grouping values, the count, the sum, count and largest of the
/// values. Both SQL engines keep it in the same transaction as the events
/// (embedded: the write identity's batch, [`rollup_rows`]; PostgreSQL: a
/// statement trigger owned by the database owner running
/// [`rollup_add_sql`], see `pg.rs`); reports over whole days read it
/// instead of the events.
pub(crate) const ROLLUP_COLUMNS: &str = "report, day, k1, k2, k3, n, vsum, vn, vmax";

/// The filter of a spec as SQL with its constants inline (they come from
/// [`REPORTS`], never from input; `every_report_is_a_plain_constant`
/// checks they hold no quote).
fn spec_where(spec: &Spec) -> String {
    let quote = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut w = format!("kind = '{}'", spec.kind);
    if !spec.actions.is_empty() {
        w.push_str(&format!(" AND action IN ({})", quote(spec.actions)));
    }
    if !spec.outcomes.is_empty() {
        w.push_str(&format!(" AND outcome IN ({})", quote(spec.outcomes)));
    }
    w
}

/// The grouping columns of a spec as `k1, k2, k3` expressions (`''` for
/// the unused ones).
fn key_exprs(spec: &Spec) -> [&'static str; 3] {
    let mut k = ["''"; 3];
    for (i, (d, _)) in spec.dims.iter().take(3).enumerate() {
        k[i] = d.sql();
    }
    k
}

/// How a rollup row already stored takes in a new one (both engines).
pub(crate) const ROLLUP_MERGE: &str = "ON CONFLICT (report, day, k1, k2, k3) DO UPDATE SET
           n = analytics_rollup.n + excluded.n,
           vsum = CASE WHEN analytics_rollup.vsum IS NULL THEN excluded.vsum
                       WHEN excluded.vsum IS NULL THEN analytics_rollup.vsum
                       ELSE analytics_rollup.vsum + excluded.vsum END,
           vn = analytics_rollup.vn + excluded.vn,
           vmax = CASE WHEN analytics_rollup.vmax IS NULL THEN excluded.vmax
                       WHEN excluded.vmax IS NULL OR excluded.vmax <= analytics_rollup.vmax
                         THEN analytics_rollup.vmax
                       ELSE excluded.vmax END";

/// One day-rollup row a batch adds (the embedded writer aggregates in
/// memory what [`rollup_add_sql`] aggregates in SQL: the same filter,
/// keys and sums; `reports_from_the_day_rollups_answer_as_the_events_do`
/// compares the result with the events).
#[derive(Debug, Default)]
pub(crate) struct RollupRow {
    pub(crate) report: &'static str,
    pub(crate) day: String,
    pub(crate) k: [String; 3],
    pub(crate) n: i64,
    pub(crate) vsum: Option<i64>,
    pub(crate) vn: i64,
    pub(crate) vmax: Option<i64>,
}

impl Dim {
    /// This column's value in an event.
    fn of(self, e: &super::Event) -> String {
        match self {
            Self::Day => e.day(),
            Self::Actor => e.actor.clone(),
            Self::Target => e.target.clone(),
            Self::Outcome => e.outcome.clone(),
            Self::Rule => e.rule.clone(),
            Self::Program => e.program.clone(),
            Self::Group => e.grp.clone(),
        }
    }
}

/// The rollup rows of `events` (the events just stored), one per report,
/// day and grouping values.
pub(crate) fn rollup_rows<'e>(events: impl Iterator<Item = &'e super::Event>) -> Vec<RollupRow> {
    let mut rows: std::collections::HashMap<(usize, String, [String; 3]), RollupRow> =
        std::collections::HashMap::new();
    for e in events {
        let mut day: Option<String> = None;
        for (i, spec) in REPORTS.iter().enumerate() {
            if spec.metric == Metric::Compliance
                || spec.kind != e.kind
                || (!spec.actions.is_empty() && !spec.actions.contains(&e.action.as_str()))
                || (!spec.outcomes.is_empty() && !spec.outcomes.contains(&e.outcome.as_str()))
            {
                continue;
            }
            let d = day.get_or_insert_with(|| e.day()).clone();
            let mut k: [String; 3] = Default::default();
            for (j, (dim, _)) in spec.dims.iter().take(3).enumerate() {
                k[j] = dim.of(e);
            }
            let r = rows
                .entry((i, d.clone(), k.clone()))
                .or_insert_with(|| RollupRow {
                    report: spec.name,
                    day: d,
                    k,
                    ..RollupRow::default()
                });
            r.n += 1;
            if let Some(v) = e.value {
                r.vsum = Some(r.vsum.unwrap_or(0) + v);
                r.vn += 1;
                r.vmax = Some(r.vmax.map_or(v, |m| m.max(v)));
            }
        }
    }
    rows.into_values().collect()
}

/// Adds the events of table `source` (PostgreSQL's trigger: the statement's
/// transition table; either engine's rebuild: every event) to `spec`'s
/// rollup rows: one `INSERT … SELECT …
/// GROUP BY … ON CONFLICT DO UPDATE`, the same text on SQLite and
/// PostgreSQL.
pub(crate) fn rollup_add_sql(spec: &Spec, source: &str) -> String {
    let k = key_exprs(spec);
    let group: Vec<&str> = spec.dims.iter().map(|(d, _)| d.sql()).collect();
    format!(
        "INSERT INTO analytics_rollup ({ROLLUP_COLUMNS})
         SELECT '{name}', day, {k1}, {k2}, {k3}, COUNT(*), SUM(value), COUNT(value), MAX(value)
           FROM {source} WHERE {wh} GROUP BY day, {group}
 {ROLLUP_MERGE}",
        name = spec.name,
        k1 = k[0],
        k2 = k[1],
        k3 = k[2],
        wh = spec_where(spec),
        group = group.join(", "),
    )
}

/// Every report's rollup statement over `source`.
pub(crate) fn rollup_adds(source: &str) -> Vec<String> {
    REPORTS
        .iter()
        .filter(|s| s.metric != Metric::Compliance)
        .map(|s| rollup_add_sql(s, source))
        .collect()
}

/// What the rollups were built for: a hash of every rollup statement. A
/// store whose `analytics_meta` row `rollup` differs (a report added or
/// changed since) is rebuilt from its events (embedded: when the writer
/// opens; PostgreSQL: by `jumpgate admin analytics init`), and until then
/// reports read the events.
pub(crate) fn rollup_fingerprint() -> &'static str {
    static FP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let text = rollup_adds("analytics_events").join(";\n");
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        crate::events::hex(&d.as_ref()[..16])
    });
    &FP
}

/// The statement a reader runs for `q`: over the rollup when the store's
/// rollup is current (`stored`: its `analytics_meta` fingerprint) and the
/// filters allow, else over the events.
pub(crate) fn plan(q: &Query<'_>, stored: Option<&str>) -> (String, Vec<Bind>) {
    if stored == Some(rollup_fingerprint())
        && let Some(r) = rollup_sql(q)
    {
        return r;
    }
    sql(q)
}

/// The read of the stored fingerprint (compared with
/// [`rollup_fingerprint`]).
pub(crate) const ROLLUP_META: &str = "SELECT value FROM analytics_meta WHERE key = 'rollup'";

/// Midnight (UTC) at or after `ms`.
fn day_ceil(ms: i64) -> i64 {
    let d = ms.div_euclid(86_400_000) * 86_400_000;
    if d == ms { d } else { d + 86_400_000 }
}

/// Midnight (UTC) at or before `ms`.
fn day_floor(ms: i64) -> i64 {
    ms.div_euclid(86_400_000) * 86_400_000
}

/// The query of `q` over the day rollup, when it can be answered there:
/// no group filter or group scope (the rollup has no group), a user or
/// endpoint filter only on a report grouped by it. Whole days in the range
/// come from the rollup, the partial days at either end from the events
/// (through their `(kind, at)` index). `None`: run [`sql`].
pub(crate) fn rollup_sql(q: &Query<'_>) -> Option<(String, Vec<Bind>)> {
    fn param(binds: &mut Vec<Bind>, b: Bind) -> String {
        binds.push(b);
        format!("${}", binds.len())
    }
    let spec = q.spec;
    if q.scope.is_some()
        || q.group.is_some()
        || spec.dims.len() > 3
        || spec.metric == Metric::Compliance
    {
        return None;
    }
    let pos = |dim: Dim| spec.dims.iter().position(|(d, _)| *d == dim);
    let mut filters: Vec<(usize, &str, &str)> = Vec::new();
    for (dim, col, v) in [
        (Dim::Actor, "actor", q.user),
        (Dim::Target, "target", q.endpoint),
    ] {
        if let Some(v) = v {
            filters.push((pos(dim)?, col, v));
        }
    }
    let full_from = q.since.map(day_ceil);
    let full_to = q.until.map(day_floor);
    if let (Some(a), Some(b)) = (full_from, full_to)
        && a >= b
    {
        return None;
    }
    let mut binds = Vec::new();
    let k = key_exprs(spec);
    let n = spec.dims.len();
    let mut parts = Vec::new();
    let mut wh = vec![format!(
        "report = {}",
        param(&mut binds, Bind::Text(spec.name.to_owned()))
    )];
    if let Some(a) = full_from {
        wh.push(format!(
            "day >= {}",
            param(&mut binds, Bind::Text(super::day_of(a)))
        ));
    }
    if let Some(b) = full_to {
        wh.push(format!(
            "day < {}",
            param(&mut binds, Bind::Text(super::day_of(b)))
        ));
    }
    for (i, _, v) in &filters {
        wh.push(format!(
            "{} = {}",
            ROLLUP_KEYS[*i],
            param(&mut binds, Bind::Text((*v).to_owned()))
        ));
    }
    parts.push(format!(
        "SELECT k1, k2, k3, n, vsum, vn, vmax FROM analytics_rollup WHERE {}",
        wh.join(" AND ")
    ));
    // The partial days at the ends, from the events.
    let mut edges = Vec::new();
    if let (Some(s), Some(a)) = (q.since, full_from)
        && s < a
    {
        edges.push((s, a));
    }
    if let (Some(u), Some(b)) = (q.until, full_to)
        && b < u
    {
        edges.push((b, u));
    }
    for (from, to) in edges {
        let mut wh = vec![spec_where(spec)];
        wh.push(format!("at >= {}", param(&mut binds, Bind::Int(from))));
        wh.push(format!("at < {}", param(&mut binds, Bind::Int(to))));
        for (_, col, v) in &filters {
            wh.push(format!(
                "{col} = {}",
                param(&mut binds, Bind::Text((*v).to_owned()))
            ));
        }
        parts.push(format!(
            "SELECT {} AS k1, {} AS k2, {} AS k3, 1 AS n, value AS vsum,
                    CASE WHEN value IS NULL THEN 0 ELSE 1 END AS vn, value AS vmax
               FROM analytics_events WHERE {}",
            k[0],
            k[1],
            k[2],
            wh.join(" AND ")
        ));
    }
    let keys = ROLLUP_KEYS[..n].join(", ");
    let order = match spec.order {
        Order::Dims => keys.clone(),
        Order::CountDesc => format!("SUM(n) DESC, {keys}"),
    };
    let text = format!(
        "SELECT {keys}, CAST(SUM(n) AS BIGINT), CAST(SUM(vsum) AS BIGINT), CAST(SUM(vn) AS BIGINT),
                MAX(vmax)
           FROM ({}) r GROUP BY {keys} ORDER BY {order} LIMIT {MAX_ROWS}",
        parts.join(" UNION ALL ")
    );
    Some((text, binds))
}

/// Runs a report statement (`sql` with its `binds`, from [`sql`] or
/// [`plan`]) on either SQL engine's pool and reads its groups.
pub(crate) async fn fetch_groups<DB>(
    pool: &sqlx::Pool<DB>,
    spec: &Spec,
    (sql, binds): (String, Vec<Bind>),
) -> Result<Vec<Group>, AnalyticsError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> Option<String>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<i64>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    let rows = query.fetch_all(pool).await?;
    groups_from_rows(spec, &rows)
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
            if spec.metric == Metric::Compliance {
                row.push(g.sum.unwrap_or(0).into());
                row.push(g.values.into());
                row.push(g.max.unwrap_or(0).into());
            }
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
