//! The answers of SPEC §13's reads: pages of purchases, holds and generations, and the
//! balance history.

use creditd_ledger::{AccountId, Catalog, DayBalance, Hold};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AllocationDto, HoldDto, Name, PurchaseDto, hold_ref};

/// A page of purchases, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurchasePageDto {
    /// The purchases.
    pub purchases: Vec<PurchaseDto>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of holds, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoldPageDto {
    /// The holds.
    pub holds: Vec<HoldDto>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// Credits that came back to one bucket when a generation ended.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundDto {
    /// The bucket (the one they came from, or a new `refund_grace` bucket).
    pub bucket_id: String,
    /// Its kind.
    #[schema(value_type = String)]
    pub kind: Name,
    /// Credits.
    pub amount: u64,
}

/// One generation: a hold, or a charge (a hold captured at once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GenerationDto {
    /// The hold's id.
    pub hold_id: String,
    /// The feature used.
    pub feature: String,
    /// Its name in words, in the language asked for.
    pub name: String,
    /// The tier priced.
    #[schema(value_type = String)]
    pub tier: Name,
    /// The quantity reserved for.
    pub quantity: u32,
    /// The quantity charged for: null while pending, 0 when nothing was delivered.
    pub delivered: Option<u32>,
    /// Credits reserved.
    pub held: u64,
    /// Credits charged (0 while pending).
    pub charged: u64,
    /// Credits given back.
    pub refunded: u64,
    /// `pending`, `captured`, `released` or `expired`.
    #[schema(value_type = String)]
    pub status: Name,
    /// The caller's reference, such as a job id.
    pub reference: Option<String>,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it ended; null while pending.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub settled_at: Option<Timestamp>,
    /// The credits that paid, in consumption order.
    pub paid_by: Vec<AllocationDto>,
    /// The credits that came back.
    pub returned: Vec<RefundDto>,
}

impl GenerationDto {
    /// The hold of `account` as a generation, named in the first of `languages` the
    /// catalog has.
    pub fn new(
        account: &AccountId,
        hold: &Hold,
        catalog: &Catalog,
        languages: &[&str],
    ) -> GenerationDto {
        let settlement = hold.settlement();
        GenerationDto {
            hold_id: hold_ref(account, hold.id()),
            feature: hold.feature().to_owned(),
            name: catalog.feature(hold.feature()).map_or_else(
                |_| hold.feature().to_owned(),
                |feature| feature.display_name(languages).to_owned(),
            ),
            tier: hold.tier().as_str().into(),
            quantity: hold.quantity(),
            delivered: settlement.map(|s| s.captured_quantity),
            held: hold.amount(),
            charged: settlement.map_or(0, |s| s.captured_amount),
            refunded: settlement.map_or(0, |s| s.refunded_amount),
            status: hold.status().as_str().into(),
            reference: hold.reference().map(str::to_owned),
            created_at: hold.created_at(),
            settled_at: settlement.map(|s| s.at),
            paid_by: hold.allocations().iter().map(AllocationDto::from).collect(),
            returned: hold
                .refunds()
                .iter()
                .map(|refund| RefundDto {
                    bucket_id: refund.bucket_id.to_string(),
                    kind: refund.kind.as_str().into(),
                    amount: refund.amount,
                })
                .collect(),
        }
    }
}

/// A page of generations, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsagePageDto {
    /// The generations.
    pub generations: Vec<GenerationDto>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// Credits at the end of one local day.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DayDto {
    /// The day, in the account's time zone.
    #[schema(value_type = String, format = Date)]
    pub date: jiff::civil::Date,
    /// General credits (available and frozen).
    pub general: i64,
    /// Agent credits.
    pub agent: i64,
}

impl From<&DayBalance> for DayDto {
    fn from(day: &DayBalance) -> DayDto {
        DayDto {
            date: day.date,
            general: day.general,
            agent: day.agent,
        }
    }
}

/// `GET /v1/accounts/{id}/balance-history`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceHistoryDto {
    /// The account's time zone, in which the days are counted.
    pub time_zone: String,
    /// The days, oldest first.
    pub days: Vec<DayDto>,
}
