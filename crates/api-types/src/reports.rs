//! Reports over the analytics store (`/api/v1/reports/…`), read with the
//! `reports-read` permission (OAuth2 clients with the `read` scope too).
//!
//! | method & path | auth | body → answer |
//! |---|---|---|
//! | `GET /api/v1/reports` | `reports-read` | → `Vec<`[`ReportInfo`]`>` |
//! | `GET /api/v1/reports/{name}?since=&until=&group=&user=&endpoint=&format=json\|csv` | `reports-read` | → [`Report`] (or `text/csv`); 404 `unknown_report`; 503 `analytics_unavailable` when the analytics store cannot be read |
//!
//! `since` and `until` are RFC 3339 times or `YYYY-MM-DD` (midnight UTC);
//! `since` is inclusive, `until` exclusive.

use serde::{Deserialize, Serialize};

/// How the console draws a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChartKind {
    /// One bar per row (first column as label, first number as height).
    Bar,
    /// A line over the rows in order (days).
    Line,
    /// One bar per row, stacked from its second, third and following
    /// numbers (the first is their total): compliant, failed, pending.
    StackedBar,
}

/// A report the gateway offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportInfo {
    pub name: String,
    pub title: String,
    pub description: String,
    pub chart: ChartKind,
}

/// A column of a [`Report`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// Numbers (or null); otherwise text.
    pub numeric: bool,
}

/// A report's answer: a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub title: String,
    pub columns: Vec<Column>,
    /// One array per row, one value per column.
    pub rows: Vec<Vec<serde_json::Value>>,
    pub chart: ChartKind,
}
