//! `jg report [NAME] [--since T] [--until T] [--group G] [--user U]
//! [--endpoint E] [--format table|csv|json]`: the reports of the analytics
//! store (needs `reports-read`). Without NAME, the reports there are.

use anyhow::Context;
use jumpgate_api_types::reports::Report;
use jumpgate_client::{Client, ReportFilter};

use crate::table;

/// How a report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

/// What `jg report` was asked.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) name: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) format: Format,
}

pub(crate) async fn run(client: &Client, a: Args) -> anyhow::Result<()> {
    let Some(name) = a.name.as_deref() else {
        let list = client.reports().await.context("listing reports")?;
        if a.format == Format::Json {
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
        } else {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| vec![r.name.clone(), r.description.clone()])
                .collect();
            out!("{}", table::render(&["REPORT", "WHAT"], &rows))?;
        }
        return Ok(());
    };
    let f = ReportFilter {
        since: a.since.as_deref(),
        until: a.until.as_deref(),
        group: a.group.as_deref(),
        user: a.user.as_deref(),
        endpoint: a.endpoint.as_deref(),
    };
    match a.format {
        Format::Csv => {
            let csv = client
                .report_csv(name, &f)
                .await
                .with_context(|| format!("report {name}"))?;
            out!("{csv}")?;
        }
        Format::Json => {
            let r = client
                .report(name, &f)
                .await
                .with_context(|| format!("report {name}"))?;
            outln!("{}", serde_json::to_string_pretty(&r)?)?;
        }
        Format::Table => {
            let r = client
                .report(name, &f)
                .await
                .with_context(|| format!("report {name}"))?;
            out!("{}", render(&r))?;
        }
    }
    Ok(())
}

fn render(r: &Report) -> String {
    let headers: Vec<String> = r.columns.iter().map(|c| c.name.to_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".to_owned(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    if rows.is_empty() {
        return format!("{}: no events in this window\n", r.title);
    }
    table::render(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jumpgate_api_types::reports::{ChartKind, Column};

    #[test]
    fn a_report_prints_as_a_table() {
        let r = Report {
            name: "failed-logins".into(),
            title: "Failed logins".into(),
            columns: vec![
                Column {
                    name: "day".into(),
                    numeric: false,
                },
                Column {
                    name: "user".into(),
                    numeric: false,
                },
                Column {
                    name: "attempts".into(),
                    numeric: true,
                },
            ],
            rows: vec![vec!["2026-12-02".into(), "mallory".into(), 3.into()]],
            chart: ChartKind::Bar,
        };
        let out = render(&r);
        assert!(out.lines().next().unwrap().starts_with("DAY"), "{out}");
        assert!(out.contains("mallory") && out.contains('3'), "{out}");
    }
}
