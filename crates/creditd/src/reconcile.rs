//! `creditd reconcile FILE [--apply] [--report OUT.csv]`: the provider's paid orders sent
//! to a running creditd (`POST /v1/reconciliations`), streamed with a progress bar, then
//! a summary table, the rows to look at, and on request every row's status as CSV.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use creditd_server::dto::{ReconciliationDto, ReconciliationRowDto};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ReconcileArgs;
use crate::client::Api;
use crate::render::{Rows, say};

/// How long one reconciliation may take: a million rows applied is minutes of work.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(3_600);
/// Rows of the answer printed on the terminal; the report file has them all.
const ROWS_SHOWN: usize = 20;

/// `creditd reconcile`.
pub async fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.remote)?;
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("opening {}", args.file.display()))?;
    let length = file.metadata().await?.len();
    let bar = ProgressBar::new(length).with_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )?
        .progress_chars("=> "),
    );
    bar.set_message(if args.apply {
        "reconciling and applying"
    } else {
        "reconciling (dry run)"
    });
    let counter = bar.clone();
    let mut query = vec![("apply", args.apply.to_string())];
    if let Some(reason) = &args.reason {
        query.push(("reason", reason.clone()));
    }
    let answer: anyhow::Result<ReconciliationDto> = api
        .post_csv(
            &["v1", "reconciliations"],
            &query,
            file,
            length,
            RECONCILE_TIMEOUT,
            move |n| counter.inc(n),
        )
        .await;
    bar.finish_and_clear();
    let report = answer?;
    summarize(&report, args.apply)?;
    if let Some(out) = &args.report {
        write_report(&args.file, out, &report)
            .with_context(|| format!("writing {}", out.display()))?;
        say(&format!("Every row's status is in {}.", out.display()))?;
    }
    Ok(())
}

fn summarize(report: &ReconciliationDto, applied: bool) -> anyhow::Result<()> {
    let mut totals = Rows::new(&["status", "orders"]);
    for (status, count) in [
        ("credited", report.credited),
        ("missing", report.missing),
        ("conflicting", report.conflicting),
        ("invalid", report.invalid),
        ("all", report.orders),
    ] {
        totals.push(vec![status.to_owned(), count.to_string()]);
    }
    say(&totals.table().to_string())?;
    say(&if applied {
        format!("{} missing orders recorded now.", report.applied)
    } else if report.missing > 0 {
        format!(
            "{} missing orders: run again with --apply to record them.",
            report.missing
        )
    } else {
        "Nothing is missing.".to_owned()
    })?;
    if !report.rows.is_empty() {
        let mut rows = Rows::new(&["line", "order_id", "status", "detail"]);
        for row in report.rows.iter().take(ROWS_SHOWN) {
            rows.push(vec![
                row.line.to_string(),
                row.order_id.clone(),
                row.status.to_string(),
                row.detail.clone(),
            ]);
        }
        say(&rows.table().to_string())?;
        if report.rows.len() > ROWS_SHOWN {
            say(&format!(
                "… and {} more rows to look at (--report writes them all).",
                report.rows.len().saturating_sub(ROWS_SHOWN)
            ))?;
        }
    }
    Ok(())
}

/// Every row of `file` with its status: those the answer lists, the rest credited (or,
/// past the answer's list, not known).
fn write_report(
    file: &std::path::Path,
    out: &std::path::Path,
    report: &ReconciliationDto,
) -> anyhow::Result<()> {
    let listed: HashMap<u64, &ReconciliationRowDto> =
        report.rows.iter().map(|row| (row.line, row)).collect();
    let unlisted = if report.rows_omitted > 0 {
        "not listed (more rows than the answer lists were not credited)"
    } else {
        "credited"
    };
    let mut input = csv::ReaderBuilder::new().flexible(true).from_path(file)?;
    let order_column = input.headers()?.iter().position(|h| h.trim() == "order_id");
    let mut output = csv::Writer::from_path(out)?;
    output.write_record(["line", "order_id", "status", "detail"])?;
    let mut record = csv::ByteRecord::new();
    while input.read_byte_record(&mut record)? {
        let line = record.position().map_or(0, csv::Position::line);
        let order_id = order_column
            .and_then(|i| record.get(i))
            .map(|field| String::from_utf8_lossy(field).trim().to_owned())
            .unwrap_or_default();
        match listed.get(&line) {
            Some(row) => output.write_record([
                line.to_string(),
                row.order_id.clone(),
                row.status.to_string(),
                row.detail.clone(),
            ])?,
            None => output.write_record([
                line.to_string(),
                order_id,
                unlisted.to_owned(),
                String::new(),
            ])?,
        }
    }
    output.flush()?;
    Ok(())
}
