//! Reconciliation (SPEC §11): the payment provider's CSV of paid orders, checked against
//! the purchases recorded, and the missing ones recorded.
//!
//! The file is read as it arrives: a blocking task parses it with the `csv` crate
//! (through `SyncIoBridge` over the request's body) and hands batches of
//! [`ROWS_PER_BATCH`] rows over a small channel, so memory holds a few batches whatever
//! the file's size. Each batch's order ids are looked up at once; a row is `credited`,
//! `conflicting` or `missing` by SPEC §8's sameness (`ledger::PaidOrder::status`).
//! Applying records each missing order as the purchase it is, through the writer like
//! any purchase: exactly once by order id, whoever else records it meanwhile. A dry run
//! tries each missing order on a copy of its account in memory, to tell the rows that
//! would be refused (not a member at `paid_at`, …).

use std::collections::HashMap;
use std::io::Read;

use axum::body::Body;
use creditd_ledger::{
    AccountCommand, OrderId, PaidOrder, RECONCILIATION_COLUMNS, Refusal, RowStatus,
};
use creditd_store::PurchaseRecord;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::answer::Problem;
use crate::auth::Actor;
use crate::command::{Command, Outcome, Refused, Submission};
use crate::dto::{ReconciliationDto, ReconciliationRowDto};
use crate::http::AppState;
use crate::idempotency::Reply;

/// Rows read, looked up and applied together: one lookup of their order ids, and their
/// missing orders sent to the writer at once.
pub const ROWS_PER_BATCH: usize = 1_000;
/// Batches parsed ahead of the one being checked: the memory a file may take.
const BATCHES_AHEAD: usize = 4;
/// Rows the answer lists: those that are not `credited`, up to this many (a file of
/// nothing but mistakes still answers in a few megabytes); the rest are counted.
pub const MAX_LISTED_ROWS: usize = 100_000;

/// One row as read: its line in the file, the order id as written, and the paid order
/// or why it is invalid.
struct Row {
    line: u64,
    order_id: String,
    order: Result<PaidOrder, String>,
}

/// Reads and checks the CSV of `body` (at most `max_bytes`), applying the missing
/// orders if `apply`, as `actor`.
pub async fn reconcile(
    state: &AppState,
    body: Body,
    apply: bool,
    max_bytes: u64,
    actor: Option<Actor>,
) -> Result<ReconciliationDto, Problem> {
    let now = state.core.clock.now();
    let (batches, mut incoming) = mpsc::channel::<Vec<Row>>(BATCHES_AHEAD);
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let parser = tokio::task::spawn_blocking(move || parse(reader, max_bytes, now, &batches));
    let mut report = ReconciliationDto::default();
    while let Some(batch) = incoming.recv().await {
        check(state, batch, apply, actor.as_ref(), &mut report).await?;
    }
    parser.await.map_err(|e| Problem::internal(&e))??;
    Ok(report)
}

/// Parses the file into batches of rows; stops at the first error of the file as a
/// whole (too large, no header, unreadable body).
fn parse(
    reader: impl Read,
    max_bytes: u64,
    now: jiff::Timestamp,
    batches: &mpsc::Sender<Vec<Row>>,
) -> Result<(), Problem> {
    let mut limited = reader.take(max_bytes.saturating_add(1));
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(&mut limited);
    let headers = csv.headers().map_err(file_error)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let columns: Vec<Option<usize>> = RECONCILIATION_COLUMNS.iter().map(|c| column(c)).collect();
    if columns.iter().any(Option::is_none) {
        return Err(Problem::invalid(format!(
            "the first line names the columns: {}",
            RECONCILIATION_COLUMNS.join(",")
        )));
    }
    let mut batch = Vec::with_capacity(ROWS_PER_BATCH);
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
                let order = PaidOrder::read(
                    field(columns[0]),
                    field(columns[1]),
                    field(columns[2]),
                    field(columns[3]),
                    field(columns[4]),
                    now,
                )
                .map_err(|refusal| refusal.to_string());
                batch.push(Row {
                    line,
                    order_id: field(columns[0]).trim().to_owned(),
                    order,
                });
            }
            Err(error) if matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) => {
                let line = error.position().map_or(0, csv::Position::line);
                batch.push(Row {
                    line,
                    order_id: String::new(),
                    order: Err("the line is not UTF-8 text".to_owned()),
                });
            }
            Err(error) => return Err(file_error(error)),
        }
        if batch.len() == ROWS_PER_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(ROWS_PER_BATCH));
            if batches.blocking_send(full).is_err() {
                return Ok(()); // the checker stopped: its error is the answer
            }
        }
    }
    drop(csv);
    if limited.limit() == 0 {
        return Err(too_large(max_bytes));
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    Ok(())
}

/// The file cannot be read on: its body failed, or it is no CSV.
fn file_error(error: csv::Error) -> Problem {
    match error.kind() {
        csv::ErrorKind::Io(_) => Problem::invalid(format!("the file could not be read: {error}")),
        _ => Problem::invalid(format!("the file is not CSV: {error}")),
    }
}

/// 413: the file is larger than the policy allows.
pub fn too_large(max_bytes: u64) -> Problem {
    Problem::payload_too_large(usize::try_from(max_bytes).unwrap_or(usize::MAX))
}

/// Checks one batch, applies its missing orders if asked, and adds it to `report`.
async fn check(
    state: &AppState,
    batch: Vec<Row>,
    apply: bool,
    actor: Option<&Actor>,
    report: &mut ReconciliationDto,
) -> Result<(), Problem> {
    let catalog = &state.core.catalog;
    let orders: Vec<OrderId> = batch
        .iter()
        .filter_map(|row| Some(row.order.as_ref().ok()?.purchase.order_id.clone()))
        .collect();
    let recorded: HashMap<OrderId, PurchaseRecord> = state
        .core
        .store
        .purchases(&orders)
        .await
        .map_err(Problem::from)?
        .into_iter()
        .map(|record| (record.order_id.clone(), record))
        .collect();
    let mut missing = Vec::new();
    for row in batch {
        report.orders = report.orders.saturating_add(1);
        let order = match row.order {
            Ok(order) => order,
            Err(why) => {
                report.add(row.line, &row.order_id, RowStatus::Invalid, why);
                continue;
            }
        };
        let first = recorded.get(&order.purchase.order_id);
        match order.status(first.map(PurchaseRecord::terms).as_ref(), catalog) {
            Err(refusal) => report.add(
                row.line,
                &row.order_id,
                RowStatus::Invalid,
                refusal.to_string(),
            ),
            Ok(RowStatus::Missing) => missing.push((row.line, row.order_id, order)),
            Ok(status) => {
                let detail = first.map_or_else(String::new, |first| {
                    format!(
                        "recorded for {} with {} credits",
                        first.account_id, first.credits
                    )
                });
                report.add(row.line, &row.order_id, status, detail);
            }
        }
    }
    if apply {
        record_missing(state, missing, actor, report).await
    } else {
        for (line, order_id, order) in missing {
            let tried = state
                .core
                .try_in_memory(&order.account_id, AccountCommand::Purchase(order.purchase))
                .await
                .map_err(|e| Problem::from(&e))?;
            match tried {
                Ok(()) => report.add(line, &order_id, RowStatus::Missing, String::new()),
                Err(refusal) => {
                    report.add(line, &order_id, RowStatus::Invalid, refusal.to_string());
                }
            }
        }
        Ok(())
    }
}

/// Records the missing orders through the writer, all at once.
async fn record_missing(
    state: &AppState,
    missing: Vec<(u64, String, PaidOrder)>,
    actor: Option<&Actor>,
    report: &mut ReconciliationDto,
) -> Result<(), Problem> {
    let mut sent = JoinSet::new();
    for (line, order_id, order) in missing {
        let writer = state.writer.clone();
        let submission = Submission {
            command: Command::Account(order.account_id, AccountCommand::Purchase(order.purchase)),
            idempotency: None,
            background: false,
            actor: actor.cloned(),
        };
        sent.spawn(async move { (line, order_id, writer.submit(submission).await) });
    }
    let mut results = Vec::new();
    while let Some(done) = sent.join_next().await {
        results.push(done.map_err(|e| Problem::internal(&e))?);
    }
    results.sort_by_key(|(line, _, _)| *line);
    for (line, order_id, reply) in results {
        match reply {
            Reply::Done(Ok(Outcome::Purchased { new: true, .. })) => {
                report.applied = report.applied.saturating_add(1);
                report.add(
                    line,
                    &order_id,
                    RowStatus::Missing,
                    "recorded now".to_owned(),
                );
            }
            // Recorded by someone else since the lookup: the same purchase after all.
            Reply::Done(Ok(_)) => report.add(line, &order_id, RowStatus::Credited, String::new()),
            Reply::Done(Err(Refused::Rule(Refusal::OrderConflict(_)))) => report.add(
                line,
                &order_id,
                RowStatus::Conflicting,
                "recorded meanwhile on other terms".to_owned(),
            ),
            Reply::Done(Err(Refused::Rule(refusal))) => {
                report.add(line, &order_id, RowStatus::Invalid, refusal.to_string());
            }
            Reply::Done(Err(refused)) => return Err(Problem::from(&refused)),
            Reply::Answer(answer) => {
                return Err(Problem::internal(&format!(
                    "a purchase without an idempotency key answered {}",
                    answer.status
                )));
            }
        }
    }
    Ok(())
}

impl ReconciliationDto {
    /// Counts a row, and lists it unless it is `credited` (up to [`MAX_LISTED_ROWS`]).
    fn add(&mut self, line: u64, order_id: &str, status: RowStatus, detail: String) {
        let count = match status {
            RowStatus::Credited => &mut self.credited,
            RowStatus::Missing => &mut self.missing,
            RowStatus::Conflicting => &mut self.conflicting,
            RowStatus::Invalid => &mut self.invalid,
        };
        *count = count.saturating_add(1);
        if status == RowStatus::Credited {
            return;
        }
        if self.rows.len() < MAX_LISTED_ROWS {
            self.rows.push(ReconciliationRowDto {
                line,
                order_id: order_id.to_owned(),
                status: <&str>::from(status).into(),
                detail,
            });
        } else {
            self.rows_omitted = self.rows_omitted.saturating_add(1);
        }
    }
}
