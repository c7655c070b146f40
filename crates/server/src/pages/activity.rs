//! "Usage details": what the credits page lists, one row per generation (a hold or a
//! charge, with what paid and what came back) and one per grant, expiry, adjustment or
//! freeze, newest first, merged from two reads of the API (`usage` and `ledger`) so the
//! page shows what those show. The CSV download is the same rows.

use std::str::FromStr;

use creditd_ledger::{
    AccountId, CreditKind, EntryType, Hold, HoldId, HoldStatus, LedgerQuery, MAX_PAGE, Source,
};
use creditd_store::StoredEntry;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::i18n::Lang;
use crate::answer::Problem;
use crate::http::{AppState, HoldFilter};

/// Rows per page of usage details.
pub const ROWS_PER_PAGE: u32 = 20;

/// Which rows to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RowType {
    /// Everything.
    #[default]
    All,
    /// Generations only.
    Usage,
    /// Credits received.
    Grants,
    /// Credits that expired.
    Expiries,
    /// Adjustments by support.
    Adjustments,
}

impl RowType {
    /// Every choice, in the order the filter offers them.
    pub const ALL: [RowType; 5] = [
        RowType::All,
        RowType::Usage,
        RowType::Grants,
        RowType::Expiries,
        RowType::Adjustments,
    ];

    /// The query's value.
    pub fn code(self) -> &'static str {
        match self {
            RowType::All => "all",
            RowType::Usage => "usage",
            RowType::Grants => "grants",
            RowType::Expiries => "expiries",
            RowType::Adjustments => "adjustments",
        }
    }

    /// The choice a query names; anything else shows everything.
    pub fn parse(text: Option<&str>) -> RowType {
        RowType::ALL
            .into_iter()
            .find(|t| Some(t.code()) == text)
            .unwrap_or_default()
    }

    /// The message naming it.
    pub fn message(self) -> &'static str {
        match self {
            RowType::All => "type-all",
            RowType::Usage => "type-usage",
            RowType::Grants => "type-grants",
            RowType::Expiries => "type-expiries",
            RowType::Adjustments => "type-adjustments",
        }
    }

    fn generations(self) -> bool {
        matches!(self, RowType::All | RowType::Usage)
    }

    /// The ledger entries it lists as rows of their own. Debits and refunds belong to
    /// their generation's row.
    fn shows(self, entry_type: EntryType) -> bool {
        match self {
            RowType::All => !matches!(entry_type, EntryType::Debit | EntryType::Refund),
            RowType::Usage => false,
            RowType::Grants => entry_type == EntryType::Grant,
            RowType::Expiries => entry_type == EntryType::Expire,
            RowType::Adjustments => entry_type == EntryType::Adjust,
        }
    }

    /// The one entry type the store can filter on, when there is one.
    fn entry_type(self) -> Option<EntryType> {
        match self {
            RowType::Grants => Some(EntryType::Grant),
            RowType::Expiries => Some(EntryType::Expire),
            RowType::Adjustments => Some(EntryType::Adjust),
            RowType::All | RowType::Usage => None,
        }
    }
}

/// Where a page of rows stopped in each of its two sources: the last generation (hold)
/// and the last ledger entry shown. Written `h12.e40` in the page's links (`-` for a
/// source not reached yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCursor {
    hold: Option<HoldId>,
    entry: Option<u64>,
}

impl RowCursor {
    /// The cursor a link carries; anything unreadable starts from the newest row.
    pub fn parse(text: Option<&str>) -> RowCursor {
        let Some((hold, entry)) = text.and_then(|t| t.split_once('.')) else {
            return RowCursor::default();
        };
        RowCursor {
            hold: hold
                .strip_prefix('h')
                .and_then(|n| n.parse().ok())
                .map(HoldId::new),
            entry: entry.strip_prefix('e').and_then(|n| n.parse().ok()),
        }
    }

    /// As a link writes it.
    pub fn code(self) -> String {
        let hold = self.hold.map_or("-".to_owned(), |h| h.get().to_string());
        let entry = self.entry.map_or("-".to_owned(), |e| e.to_string());
        format!("h{hold}.e{entry}")
    }
}

/// One thing that happened to the account's credits.
#[derive(Debug)]
pub enum Activity {
    /// A generation.
    Generation(Hold),
    /// A grant, expiry, adjustment, freeze or unfreeze.
    Entry(StoredEntry),
}

impl Activity {
    fn at(&self) -> Timestamp {
        match self {
            Activity::Generation(hold) => hold.created_at(),
            Activity::Entry(stored) => stored.entry.at,
        }
    }
}

/// A page of rows and where the next one starts.
#[derive(Debug)]
pub struct ActivityPage {
    /// The rows, newest first.
    pub rows: Vec<Activity>,
    /// The next page, when there may be one.
    pub next: Option<RowCursor>,
}

/// The local month `month` (`2026-12`) as a window of instants in `zone`.
pub fn month_window(month: &str, zone: &TimeZone) -> Option<(Date, Timestamp, Timestamp)> {
    let first = Date::from_str(&format!("{month}-01")).ok()?;
    let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
    let start = first.to_zoned(zone.clone()).ok()?.timestamp();
    let end = next.to_zoned(zone.clone()).ok()?.timestamp();
    Some((first, start, end))
}

impl AppState {
    /// A page of `limit` rows of `row_type` within `window`, from `cursor` on. Each source
    /// gives at most `limit` rows newest first; the page takes the newest of both and
    /// each source's cursor moves past what was shown.
    pub(crate) async fn activity_page(
        &self,
        id: &AccountId,
        row_type: RowType,
        window: Option<(Timestamp, Timestamp)>,
        cursor: RowCursor,
        limit: u32,
    ) -> Result<ActivityPage, Problem> {
        // Time effects due by now are recorded first, so the ledger's rows hold them
        // (`holds_page` does it when generations are read).
        if !row_type.generations() && self.record_due(id).await?.is_none() {
            return Err(Problem::not_found(format!("account {id} does not exist")));
        }
        let (since, until) = (window.map(|w| w.0), window.map(|w| w.1));
        let holds = if row_type.generations() {
            let filter = HoldFilter {
                status: None,
                since,
                until,
            };
            self.holds_page(id, filter, cursor.hold, limit).await?.holds
        } else {
            Vec::new()
        };
        let entries = if row_type == RowType::Usage {
            Vec::new()
        } else {
            self.entries_for_rows(id, row_type, since, until, cursor.entry, limit)
                .await?
        };
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = holds.len() == wanted || entries.len() == wanted;
        let mut holds = holds.into_iter().peekable();
        let mut entries = entries.into_iter().peekable();
        let mut next = cursor;
        let mut rows = Vec::new();
        while rows.len() < wanted {
            let take_hold = match (holds.peek(), entries.peek()) {
                (Some(hold), Some(entry)) => hold.created_at() > entry.entry.at,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let row = if take_hold {
                holds.next().map(Activity::Generation)
            } else {
                entries.next().map(Activity::Entry)
            };
            match &row {
                Some(Activity::Generation(hold)) => next.hold = Some(hold.id()),
                Some(Activity::Entry(stored)) => next.entry = Some(stored.seq),
                None => {}
            }
            rows.extend(row);
        }
        let left = holds.peek().is_some() || entries.peek().is_some();
        debug_assert!(rows.windows(2).all(|w| w[0].at() >= w[1].at()));
        Ok(ActivityPage {
            rows,
            next: (more || left).then_some(next),
        })
    }

    /// Up to `limit` ledger entries that are rows of their own under `row_type`, newest
    /// first, numbered below `before`. With no one type to ask the store for, pages of
    /// the ledger are read and the generations' debits and refunds passed over.
    async fn entries_for_rows(
        &self,
        id: &AccountId,
        row_type: RowType,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, Problem> {
        let page_size = match row_type.entry_type() {
            Some(_) => limit,
            None => MAX_PAGE,
        };
        let query = LedgerQuery::new(Some(page_size), row_type.entry_type(), None, until)?;
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        self.walk_ledger(id, &query, since, before, |stored| {
            if row_type.shows(stored.entry.entry_type) {
                rows.push(stored);
            }
            rows.len() < wanted
        })
        .await?;
        Ok(rows)
    }
}

/// A row as the page and the CSV show it, in one language.
#[derive(Debug)]
pub struct Row {
    /// When, in the account's zone.
    pub when: String,
    /// The same, for the CSV (`2026-12-03 14:05`).
    pub when_plain: String,
    /// `usage`, `grant`, `expire`, `adjust`, `freeze` or `unfreeze`.
    pub kind: &'static str,
    /// What it was: a feature's name, or what brought or took credits.
    pub title: String,
    /// Quantity, unit and tier, an order, a campaign or a note.
    pub detail: Option<String>,
    /// A generation's status in words, with its CSS class.
    pub status: Option<(String, &'static str)>,
    /// The change to the balance, signed; for freezes, how many credits.
    pub amount: String,
    /// The change as a number, for the CSV.
    pub amount_plain: i64,
    /// Credits given back, for a generation that gave any.
    pub returned: Option<String>,
    /// Which credits paid (`kind · source`, amount).
    pub paid_by: Vec<(String, String)>,
    /// Which credits came back.
    pub came_back: Vec<(String, String)>,
    /// The caller's job reference.
    pub reference: Option<String>,
    /// The same, in words.
    pub reference_text: Option<String>,
    /// Whether it added credits (for its colour).
    pub positive: bool,
    /// Credits charged (generations), for the CSV.
    pub charged_plain: u64,
    /// Credits returned (generations), for the CSV.
    pub returned_plain: u64,
}

impl Row {
    /// `activity` as `lang` reads it, times in `zone`.
    pub fn new(
        activity: &Activity,
        lang: Lang,
        zone: &TimeZone,
        catalog: &creditd_ledger::Catalog,
    ) -> Row {
        let local = activity.at().to_zoned(zone.clone());
        let when = lang.date_time(&local);
        let when_plain = local.strftime("%Y-%m-%d %H:%M").to_string();
        match activity {
            Activity::Generation(hold) => generation_row(hold, lang, catalog, when, when_plain),
            Activity::Entry(stored) => entry_row(&stored.entry, lang, when, when_plain),
        }
    }
}

fn kind_name(lang: Lang, kind: CreditKind) -> String {
    lang.t(match kind {
        CreditKind::General => "kind-general",
        CreditKind::Agent => "kind-agent",
    })
}

fn source_name(lang: Lang, source: Source) -> String {
    lang.t(&format!("source-{}", source.as_str()))
}

fn generation_row(
    hold: &Hold,
    lang: Lang,
    catalog: &creditd_ledger::Catalog,
    when: String,
    when_plain: String,
) -> Row {
    let feature = catalog.feature(hold.feature()).ok();
    let title = feature.map_or_else(
        || hold.feature().to_owned(),
        |f| f.display_name(lang.tags()).to_owned(),
    );
    let unit = feature.map_or("item", |f| f.unit.as_str()).to_owned();
    let quantity = lang.t_with(
        "unit-count",
        &[("unit", unit.into()), ("count", hold.quantity().into())],
    );
    let settlement = hold.settlement();
    let mut detail = vec![quantity];
    if let Some(s) = settlement
        .filter(|s| hold.status() == HoldStatus::Captured && s.captured_quantity != hold.quantity())
    {
        detail.push(lang.t_with(
            "delivered-of",
            &[
                ("delivered", s.captured_quantity.into()),
                ("quantity", hold.quantity().into()),
            ],
        ));
    }
    detail.push(lang.t(&format!("tier-{}", hold.tier().as_str())));
    let status_class = match hold.status() {
        HoldStatus::Pending => "pending",
        HoldStatus::Captured => "done",
        HoldStatus::Released => "refunded",
        HoldStatus::Expired => "expired",
    };
    let status = lang.t(&format!("status-{}", hold.status().as_str()));
    let charged = settlement.map_or(hold.amount(), |s| s.captured_amount);
    let change = i64::try_from(charged).map_or(i64::MIN, i64::saturating_neg);
    let refunded = settlement.map_or(0, |s| s.refunded_amount);
    let amount = match hold.status() {
        HoldStatus::Pending => {
            lang.t_with("held-now", &[("amount", lang.number(hold.amount()).into())])
        }
        _ => lang.signed(change),
    };
    let line = |kind: CreditKind, source: Option<Source>, amount: u64| {
        let name = match source {
            Some(source) => format!("{} · {}", kind_name(lang, kind), source_name(lang, source)),
            None => kind_name(lang, kind),
        };
        (name, lang.number(amount))
    };
    Row {
        when,
        when_plain,
        kind: "usage",
        title,
        detail: Some(detail.join(" · ")),
        status: Some((status, status_class)),
        amount,
        amount_plain: change,
        returned: (refunded > 0).then(|| lang.number(refunded)),
        paid_by: hold
            .allocations()
            .iter()
            .map(|a| line(a.kind, Some(a.source), a.amount))
            .collect(),
        came_back: hold
            .refunds()
            .iter()
            .map(|r| line(r.kind, None, r.amount))
            .collect(),
        reference: hold.reference().map(str::to_owned),
        reference_text: hold
            .reference()
            .map(|r| lang.t_with("reference", &[("reference", r.to_owned().into())])),
        positive: false,
        charged_plain: if hold.status() == HoldStatus::Pending {
            0
        } else {
            charged
        },
        returned_plain: refunded,
    }
}

fn entry_row(
    entry: &creditd_ledger::LedgerEntry,
    lang: Lang,
    when: String,
    when_plain: String,
) -> Row {
    let source = source_name(lang, entry.source);
    let (kind, title, detail) = match entry.entry_type {
        EntryType::Grant => {
            let detail = match (&entry.order_id, &entry.note) {
                (Some(order), _) => {
                    Some(lang.t_with("order", &[("order", order.to_string().into())]))
                }
                // A grant's campaign or note is written for the user.
                (None, Some(note)) => Some(note.to_string()),
                (None, None) => None,
            };
            ("grant", source, detail)
        }
        EntryType::Expire => (
            "expire",
            lang.t_with("entry-expire", &[("source", source.into())]),
            None,
        ),
        // An adjustment's reason is for support, not for the user: never shown here.
        EntryType::Adjust => ("adjust", lang.t("entry-adjust"), None),
        EntryType::Freeze => ("freeze", lang.t("entry-freeze"), Some(source)),
        EntryType::Unfreeze => ("unfreeze", lang.t("entry-unfreeze"), Some(source)),
        EntryType::Debit | EntryType::Refund => ("usage", source, None),
    };
    let change = match entry.entry_type {
        EntryType::Freeze | EntryType::Unfreeze => {
            i64::try_from(entry.frozen.unwrap_or(0)).unwrap_or(i64::MAX)
        }
        _ => entry.amount,
    };
    let amount = match entry.entry_type {
        EntryType::Freeze | EntryType::Unfreeze => lang.number(change.unsigned_abs()),
        _ => lang.signed(change),
    };
    Row {
        when,
        when_plain,
        kind,
        title,
        detail: Some(match detail {
            Some(detail) => format!("{} · {detail}", kind_name(lang, entry.kind)),
            None => kind_name(lang, entry.kind),
        }),
        status: None,
        amount,
        amount_plain: entry.amount,
        returned: None,
        paid_by: Vec::new(),
        came_back: Vec::new(),
        reference: None,
        reference_text: None,
        positive: entry.amount > 0,
        charged_plain: 0,
        returned_plain: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_cursor_reads_back_and_anything_else_starts_from_the_newest() {
        let cursor = RowCursor {
            hold: Some(HoldId::new(12)),
            entry: None,
        };
        assert_eq!(cursor.code(), "h12.e-");
        assert_eq!(RowCursor::parse(Some("h12.e-")), cursor);
        assert_eq!(RowCursor::parse(Some("junk")), RowCursor::default());
    }

    #[test]
    fn a_month_is_its_local_days() {
        let zone = TimeZone::get("Asia/Shanghai").expect("zone");
        let (_, start, end) = month_window("2026-12", &zone).expect("month");
        assert_eq!(start.to_string(), "2026-11-30T16:00:00Z");
        assert_eq!(end.to_string(), "2026-12-31T16:00:00Z");
        assert!(month_window("2026-13", &zone).is_none());
    }
}
