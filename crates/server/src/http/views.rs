//! The reads of SPEC §13 that the credits page is built on: an account's purchases, its
//! holds, its usage (one row per generation) and its balance history. Each read is one
//! function on [`AppState`], which the API's handlers here and the pages
//! (`crate::pages`) both call, so a page never shows what the API would not.

use std::str::FromStr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use creditd_ledger::{
    AccountId, DayBalance, DayWindow, Hold, HoldId, HoldStatus, LedgerQuery, RunningSums,
    page_limit,
};
use creditd_store::{PurchasePosition, PurchaseRecord, StoredEntry};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::accounts::{instant, limit_number};
use super::cursor::Cursor;
use super::extract::{AccountPath, Caller, Languages};
use crate::answer::{Answer, Problem};
use crate::dto::{
    BalanceHistoryDto, DayDto, GenerationDto, HoldDto, HoldPageDto, PurchaseDto, PurchasePageDto,
    UsagePageDto,
};

/// Days a balance history covers when the request names none: the credits page's chart.
pub const DEFAULT_HISTORY_DAYS: i64 = 90;

/// Ledger entries per read of a balance history: a day or two of a busy account's.
const HISTORY_READ_ROWS: u32 = 200;

/// Which of an account's holds to list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HoldFilter {
    /// Only holds in this status.
    pub status: Option<HoldStatus>,
    /// Only holds placed at or after this instant.
    pub since: Option<Timestamp>,
    /// Only holds placed before this instant.
    pub until: Option<Timestamp>,
}

/// A page of an account's holds, newest first.
#[derive(Debug)]
pub(crate) struct HoldsPage {
    /// The holds.
    pub holds: Vec<Hold>,
    /// Where the next page starts, when this one is full.
    pub next: Option<HoldId>,
}

impl AppState {
    /// A page of the account's holds, pending and settled, newest (highest id) first,
    /// those below `before` if given. Hold ids grow with their placing time, so a window
    /// on `created_at` is read from its newest end and ends at its first older hold: the
    /// cost is the holds placed since `filter.since`, never the account's whole history.
    pub(crate) async fn holds_page(
        &self,
        id: &AccountId,
        filter: HoldFilter,
        before: Option<HoldId>,
        limit: u32,
    ) -> Result<HoldsPage, Problem> {
        // Holds that expired by now are settled first, so each hold is in one place.
        let account = self
            .record_due(id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("account {id} does not exist")))?;
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut pending: Vec<Hold> = account
            .pending_holds()
            .iter()
            .filter(|_| filter.status.is_none_or(|s| s == HoldStatus::Pending))
            .filter(|hold| before.is_none_or(|b| hold.id() < b))
            .cloned()
            .collect();
        pending.sort_by_key(|hold| std::cmp::Reverse(hold.id()));
        let settled_wanted = filter.status != Some(HoldStatus::Pending);
        let mut pending = pending.into_iter().peekable();
        let mut holds = Vec::new();
        let mut cursor = before;
        loop {
            let settled = if settled_wanted {
                self.core
                    .store
                    .settled_holds_page(id, filter.status, cursor, limit)
                    .await
                    .map_err(Problem::from)?
            } else {
                Vec::new()
            };
            let exhausted = settled.len() < wanted;
            let floor = settled.last().filter(|_| !exhausted).map(Hold::id);
            // A hold settled between the two reads is in both: the store's copy stands.
            let settled_ids: Vec<HoldId> = settled.iter().map(Hold::id).collect();
            let mut batch = settled;
            while let Some(hold) = pending.next_if(|h| floor.is_none_or(|floor| h.id() > floor)) {
                if !settled_ids.contains(&hold.id()) {
                    batch.push(hold);
                }
            }
            batch.sort_by_key(|hold| std::cmp::Reverse(hold.id()));
            for hold in batch {
                if filter.since.is_some_and(|since| hold.created_at() < since) {
                    return Ok(HoldsPage { holds, next: None });
                }
                if filter.until.is_some_and(|until| hold.created_at() >= until) {
                    continue;
                }
                holds.push(hold);
                if holds.len() == wanted {
                    let next = holds.last().map(Hold::id);
                    return Ok(HoldsPage { holds, next });
                }
            }
            match floor {
                Some(floor) => cursor = Some(floor),
                None => {
                    return Ok(HoldsPage { holds, next: None });
                }
            }
        }
    }

    /// The account's end-of-day credits from `since` to `until` (local days, both
    /// included; default: the [`DEFAULT_HISTORY_DAYS`] days that end today in its time
    /// zone). Reads the ledger from the window's first day on, page by page, summing per
    /// day as it goes.
    pub(crate) async fn balance_history(
        &self,
        id: &AccountId,
        since: Option<Date>,
        until: Option<Date>,
    ) -> Result<(TimeZone, Vec<DayBalance>), Problem> {
        if self.record_due(id).await?.is_none() {
            return Err(Problem::not_found(format!("account {id} does not exist")));
        }
        // Today's sums and the entries they were summed from come from one snapshot:
        // entries committed after it are passed over.
        let stored = self
            .core
            .store
            .account(id)
            .await
            .map_err(Problem::from)?
            .ok_or_else(|| Problem::not_found(format!("account {id} does not exist")))?;
        let entries_seen = stored.entry_seq;
        let (account, _) = self.core.brought_to_now(stored.account)?;
        let zone = account.time_zone().clone();
        let today = self.core.clock.now().to_zoned(zone.clone()).date();
        let until = until.unwrap_or(today);
        let window = match since {
            Some(since) => DayWindow::new(since, until)?,
            None => DayWindow::last_days(until, DEFAULT_HISTORY_DAYS)?,
        };
        let from = window.entries_from(&zone)?;
        let query = LedgerQuery::new(Some(HISTORY_READ_ROWS), None, None, None)?;
        let mut tally = window.tally(&zone);
        self.walk_ledger(id, &query, Some(from), None, |stored| {
            if stored.seq <= entries_seen {
                tally.add(&stored.entry);
            }
            true
        })
        .await?;
        let days = tally.days(today, RunningSums::of(&account.balance()));
        Ok((zone, days))
    }

    /// Reads the account's ledger newest first (before entry `before` if given), a page of
    /// `query`'s size and type at a time, handing each entry to `visit` until it answers
    /// `false`, an entry older than `since` comes, or the ledger ends. An account's entries
    /// are in time order (each command catches up first), so the walk ends at the window's
    /// start: a filter on `at` in SQL would go on looking through the whole older history.
    pub(crate) async fn walk_ledger(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        since: Option<Timestamp>,
        before: Option<u64>,
        mut visit: impl FnMut(StoredEntry) -> bool,
    ) -> Result<(), Problem> {
        debug_assert!(query.since().is_none(), "the walk itself ends at `since`");
        let page_size = usize::try_from(query.limit()).unwrap_or(usize::MAX);
        let mut before = before;
        loop {
            let page = self
                .core
                .store
                .ledger_page(id, query, before)
                .await
                .map_err(Problem::from)?;
            let full = page.len() == page_size;
            before = page.last().map(|last| last.seq);
            for stored in page {
                if since.is_some_and(|since| stored.entry.at < since) || !visit(stored) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// A page of the account's purchases, newest recorded first.
    pub(crate) async fn purchases_page(
        &self,
        id: &AccountId,
        before: Option<&PurchasePosition>,
        limit: u32,
    ) -> Result<Vec<PurchaseRecord>, Problem> {
        self.account_now(id).await?;
        self.core
            .store
            .purchases_page(id, before, limit)
            .await
            .map_err(Problem::from)
    }
}

/// A page of rows: how many, and where the last page stopped.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
}

/// An account's purchases, newest first (SPEC §13).
#[utoipa::path(get, path = "/v1/accounts/{id}/purchases", tag = "views",
    params(("id" = String, Path, description = "The platform's account id"), PageParams),
    responses((status = 200, description = "A page of purchases", body = PurchasePageDto)))]
pub async fn list_purchases(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let before = params
        .cursor
        .as_deref()
        .map(purchase_position)
        .transpose()?;
    let page = state.purchases_page(&id, before.as_ref(), limit).await?;
    let full = page.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = page.last().filter(|_| full).map(|last| {
        Cursor::Purchases.encode(&format!(
            "{}:{}",
            last.recorded_at.as_microsecond(),
            last.order_id
        ))
    });
    Ok(Answer::json(
        StatusCode::OK,
        &PurchasePageDto {
            purchases: page.iter().map(PurchaseDto::from).collect(),
            next_cursor,
        },
    ))
}

fn purchase_position(text: &str) -> Result<PurchasePosition, Problem> {
    let position = Cursor::Purchases.decode(text)?;
    let refused = || Problem::invalid("cursor is not one this service gave");
    let (micros, order) = position.split_once(':').ok_or_else(refused)?;
    Ok(PurchasePosition {
        recorded_at: micros
            .parse()
            .ok()
            .and_then(|m| Timestamp::from_microsecond(m).ok())
            .ok_or_else(refused)?,
        order_id: creditd_ledger::OrderId::parse(order).map_err(|_| refused())?,
    })
}

/// Which holds to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoldListParams {
    /// `pending`, `captured`, `released` or `expired` (default: every status).
    status: Option<String>,
    /// Holds per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
}

/// An account's holds and charges, newest first (SPEC §13).
#[utoipa::path(get, path = "/v1/accounts/{id}/holds", tag = "views",
    params(("id" = String, Path, description = "The platform's account id"), HoldListParams),
    responses((status = 200, description = "A page of holds", body = HoldPageDto)))]
pub async fn list_holds(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    params: Result<Query<HoldListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let status = params
        .status
        .as_deref()
        .map(|text| {
            HoldStatus::from_str(text).map_err(|_| {
                Problem::invalid(format!(
                    "status {text:?} is none of pending, captured, released, expired"
                ))
            })
        })
        .transpose()?;
    let before = params.cursor.as_deref().map(hold_position).transpose()?;
    let filter = HoldFilter {
        status,
        ..HoldFilter::default()
    };
    let page = state.holds_page(&id, filter, before, limit).await?;
    Ok(Answer::json(
        StatusCode::OK,
        &HoldPageDto {
            holds: page.holds.iter().map(|h| HoldDto::new(&id, h)).collect(),
            next_cursor: page.next.map(hold_cursor),
        },
    ))
}

/// The cursor of a page of holds that ends with `last`.
pub(crate) fn hold_cursor(last: HoldId) -> String {
    Cursor::Holds.encode(&last.get().to_string())
}

/// The hold a cursor of [`hold_cursor`] names.
pub(crate) fn hold_position(text: &str) -> Result<HoldId, Problem> {
    Cursor::Holds
        .decode(text)?
        .parse()
        .map(HoldId::new)
        .map_err(|_| Problem::invalid("cursor is not one this service gave"))
}

/// Which generations to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Generations per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
    /// Generations started at or after this instant.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Generations started before this instant.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// An account's usage: one row per generation (hold or charge), newest first, with what
/// paid for it and what came back (SPEC §13). `name` is in the language of
/// `Accept-Language`.
#[utoipa::path(get, path = "/v1/accounts/{id}/usage", tag = "views",
    params(("id" = String, Path, description = "The platform's account id"), UsageParams),
    responses((status = 200, description = "A page of generations", body = UsagePageDto)))]
pub async fn usage(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    languages: Languages,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let before = params.cursor.as_deref().map(hold_position).transpose()?;
    let filter = HoldFilter {
        status: None,
        since: params.since.as_deref().map(instant).transpose()?,
        until: params.until.as_deref().map(instant).transpose()?,
    };
    let page = state.holds_page(&id, filter, before, limit).await?;
    let tags = languages.tags();
    Ok(Answer::json(
        StatusCode::OK,
        &UsagePageDto {
            generations: page
                .holds
                .iter()
                .map(|hold| GenerationDto::new(&id, hold, &state.core.catalog, &tags))
                .collect(),
            next_cursor: page.next.map(hold_cursor),
        },
    ))
}

/// Which days a balance history covers.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalanceHistoryParams {
    /// The first local day (`YYYY-MM-DD`); default: 89 days before `until`.
    #[param(format = Date)]
    since: Option<String>,
    /// The last local day, included (default: today in the account's zone); at most 400
    /// days after `since`.
    #[param(format = Date)]
    until: Option<String>,
}

/// Credits of each kind at the end of each local day (SPEC §13): the ledger's running
/// sum, frozen credits counted, held ones not.
#[utoipa::path(get, path = "/v1/accounts/{id}/balance-history", tag = "views",
    params(("id" = String, Path, description = "The platform's account id"), BalanceHistoryParams),
    responses((status = 200, description = "End-of-day credits", body = BalanceHistoryDto)))]
pub async fn balance_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    params: Result<Query<BalanceHistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let date = |text: &str| {
        Date::from_str(text)
            .map_err(|_| Problem::invalid(format!("{text:?} is not a date (YYYY-MM-DD)")))
    };
    let since = params.since.as_deref().map(date).transpose()?;
    let until = params.until.as_deref().map(date).transpose()?;
    let (zone, days) = state.balance_history(&id, since, until).await?;
    Ok(Answer::json(
        StatusCode::OK,
        &BalanceHistoryDto {
            time_zone: zone.iana_name().unwrap_or("UTC").to_owned(),
            days: days.iter().map(DayDto::from).collect(),
        },
    ))
}
