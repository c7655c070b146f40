//! `/v1/accounts/{id}/…`: accounts, membership, credits in, and the views.

use creditd_ledger::{Account, AccountId, Balance, Bucket, Catalog, DailyLogin, LedgerEntry};
use creditd_store::{PurchaseRecord, StoredEntry};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Name, hold_ref};

/// `PUT /v1/accounts/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAccountRequest {
    /// IANA time zone (default: the configured default, UTC).
    #[schema(example = "Asia/Shanghai")]
    pub timezone: Option<String>,
    /// `balance.low` below this total (1 … 1,000,000,000); null: never for this
    /// account, whatever the policy; absent: unchanged (new accounts: the policy's).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub low_balance_threshold: Option<Option<i64>>,
}

/// A field that may be absent (`None`), null (`Some(None)`) or a value.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /v1/accounts/{id}/membership`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    /// `start_trial`, `activate` or `cancel`.
    #[schema(example = "activate")]
    pub action: String,
    /// The plan (default: the catalog's first).
    pub plan: Option<String>,
    /// For `activate`: when the paid period ends.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "super::instant_in_micros")]
    pub period_end: Option<Timestamp>,
}

/// `POST /v1/accounts/{id}/grants`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// `general` or `agent`.
    pub kind: String,
    /// 1 … 1,000,000,000.
    pub amount: i64,
    /// `promotion` or `compensation`.
    pub source: String,
    /// When the credits end (future), or
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "super::instant_in_micros")]
    pub expires_at: Option<Timestamp>,
    /// how long they last (ISO 8601, e.g. `P7D`, `PT2H`); neither: never.
    pub valid_for: Option<String>,
    /// The campaign, for reports.
    pub campaign: Option<String>,
    /// A note for the ledger.
    pub note: Option<String>,
    /// Why, for the audit trail when a person grants (support's words; never shown to
    /// the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the platform was paid.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaidRequest {
    /// In the currency's minor unit.
    #[schema(minimum = 0)]
    pub amount_minor: i64,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

/// `POST /v1/accounts/{id}/purchases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    /// The platform's order id: a purchase is recorded once per order id.
    pub order_id: String,
    /// A catalog package, or
    pub package: Option<String>,
    /// a number of credits.
    pub credits: Option<i64>,
    /// What was paid.
    pub paid: Option<PaidRequest>,
    /// When it was paid (default now; never in the future).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "super::instant_in_micros")]
    pub paid_at: Option<Timestamp>,
    /// Why, for the audit trail when a person records it (a missing purchase reissued).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/accounts/{id}/adjustments`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Signed credits: +n adds, −n takes (not 0).
    pub amount: i64,
    /// `general` or `agent`.
    pub kind: String,
    /// Why; kept in the ledger.
    pub reason: String,
}

/// `POST /v1/accounts/{id}/tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// 1 … 2,592,000 (default 3,600).
    pub ttl_seconds: Option<i64>,
}

/// An account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountDto {
    /// The platform's id.
    pub id: String,
    /// IANA time zone.
    pub timezone: String,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Its membership.
    pub membership: MembershipDto,
    /// `balance.low` is told when the total falls below this: the account's own
    /// threshold, else the policy's; null: none.
    pub low_balance_threshold: Option<u64>,
}

/// A membership.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MembershipDto {
    /// `none`, `trial`, `active` or `lapsed`.
    #[schema(value_type = String)]
    pub status: Name,
    /// The plan of the current or last membership.
    pub plan: Option<String>,
    /// Start of the current or last period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_start: Option<Timestamp>,
    /// End of the current or last period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_end: Option<Timestamp>,
    /// End of the trial, if there was one.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub trial_end: Option<Timestamp>,
}

impl AccountDto {
    /// The account as shown, with the low-balance threshold in force under `catalog`.
    pub fn new(account: &Account, catalog: &Catalog) -> AccountDto {
        AccountDto::with_threshold(account, account.low_balance_threshold(catalog))
    }

    /// The account as shown, with the low-balance threshold in force.
    pub fn with_threshold(account: &Account, low_balance_threshold: Option<u64>) -> AccountDto {
        AccountDto {
            id: account.id().to_string(),
            timezone: account.time_zone().iana_name().unwrap_or("UTC").to_owned(),
            created_at: account.created_at(),
            membership: MembershipDto::from(account.membership()),
            low_balance_threshold,
        }
    }
}

/// A bucket of credits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BucketDto {
    /// Its id within the account.
    pub id: String,
    /// `general` or `agent`.
    #[schema(value_type = String)]
    pub kind: Name,
    /// Where the credits came from.
    #[schema(value_type = String)]
    pub source: Name,
    /// Credits granted.
    pub granted: u64,
    /// Credits left.
    pub remaining: u64,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: Timestamp,
    /// When its credits end; null: never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Whether it is frozen (the membership lapsed).
    pub frozen: bool,
    /// The campaign of a promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

impl BucketDto {
    /// The bucket as shown, frozen or not.
    pub fn new(bucket: &Bucket, frozen: bool) -> BucketDto {
        BucketDto {
            id: bucket.id().to_string(),
            kind: bucket.kind().as_str().into(),
            source: bucket.source().as_str().into(),
            granted: bucket.granted(),
            remaining: bucket.remaining(),
            granted_at: bucket.granted_at(),
            expires_at: bucket.expires_at(),
            frozen,
            campaign: bucket.campaign().map(str::to_owned),
        }
    }
}

/// The answer to a daily login.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DailyLoginDto {
    /// Credits granted: 0 after the first login of a local day.
    pub granted: u64,
    /// The local date in the account's zone.
    #[schema(value_type = String, format = Date)]
    pub local_date: Date,
    /// When the day's credits end: the next local midnight.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// The new bucket, if credits were granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_id: Option<String>,
}

impl From<&DailyLogin> for DailyLoginDto {
    fn from(login: &DailyLogin) -> DailyLoginDto {
        DailyLoginDto {
            granted: login.granted,
            local_date: login.local_date,
            expires_at: login.expires_at,
            bucket_id: login.bucket_id.map(|b| b.to_string()),
        }
    }
}

/// A recorded purchase.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurchaseDto {
    /// The platform's order id.
    pub order_id: String,
    /// The account credited.
    pub account_id: String,
    /// Credits granted.
    pub credits: u64,
    /// Their bucket.
    pub bucket_id: String,
    /// When it was paid.
    #[schema(value_type = String, format = DateTime)]
    pub paid_at: Timestamp,
    /// When the credits expire.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// When creditd recorded it (its credits were granted then).
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// What was paid, when the platform said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid: Option<PaidDto>,
}

/// What the platform was paid for a purchase.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaidDto {
    /// In the currency's minor unit.
    pub amount_minor: u64,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<&PurchaseRecord> for PurchaseDto {
    fn from(record: &PurchaseRecord) -> PurchaseDto {
        PurchaseDto {
            order_id: record.order_id.to_string(),
            account_id: record.account_id.to_string(),
            credits: record.credits,
            bucket_id: record.bucket_id.to_string(),
            paid_at: record.paid_at,
            expires_at: record.expires_at,
            recorded_at: record.recorded_at,
            paid: record.paid.as_ref().map(|paid| PaidDto {
                amount_minor: paid.amount_minor,
                currency: paid.currency.to_string(),
            }),
        }
    }
}

/// General credits in a balance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GeneralBalanceDto {
    /// Usable now.
    pub available: u64,
    /// Reserved by pending holds.
    pub held: u64,
    /// Kept while the membership is lapsed.
    pub frozen: u64,
}

/// Agent credits in a balance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentBalanceDto {
    /// Usable now.
    pub available: u64,
    /// Reserved by pending holds.
    pub held: u64,
}

/// The next credits to expire.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NextExpiryDto {
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// How many.
    pub amount: u64,
}

/// A balance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceDto {
    /// The account.
    pub account_id: String,
    /// The instant it describes.
    #[schema(value_type = String, format = DateTime)]
    pub as_of: Timestamp,
    /// general available + agent available.
    pub total: u64,
    /// General credits.
    pub general: GeneralBalanceDto,
    /// Agent credits.
    pub agent: AgentBalanceDto,
    /// The next expiry, frozen buckets included.
    pub next_expiry: Option<NextExpiryDto>,
    /// Unexpired non-empty buckets in consumption order for agent tasks: the first
    /// [`MAX_BALANCE_BUCKETS`] (the totals count every bucket).
    pub buckets: Vec<BucketDto>,
    /// Buckets beyond the first [`MAX_BALANCE_BUCKETS`], not listed (0 almost always).
    pub buckets_not_listed: u64,
}

/// Most buckets a balance lists, so that an answer stays under a few hundred kilobytes
/// whatever an account holds (carried-over monthly credits of decades add up); the
/// buckets listed are those spent first.
pub const MAX_BALANCE_BUCKETS: usize = 1_000;

impl BalanceDto {
    /// The balance of `account` as shown.
    pub fn new(account: &AccountId, balance: &Balance) -> BalanceDto {
        BalanceDto {
            account_id: account.to_string(),
            as_of: balance.as_of,
            total: balance.total(),
            general: GeneralBalanceDto {
                available: balance.general.available,
                held: balance.general.held,
                frozen: balance.general.frozen,
            },
            agent: AgentBalanceDto {
                available: balance.agent.available,
                held: balance.agent.held,
            },
            next_expiry: balance.next_expiry.map(|n| NextExpiryDto {
                at: n.at,
                amount: n.amount,
            }),
            buckets: balance
                .buckets
                .iter()
                .take(MAX_BALANCE_BUCKETS)
                .map(|b| BucketDto::new(&b.bucket, b.frozen))
                .collect(),
            buckets_not_listed: u64::try_from(
                balance.buckets.len().saturating_sub(MAX_BALANCE_BUCKETS),
            )
            .unwrap_or(u64::MAX),
        }
    }
}

/// One ledger entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryDto {
    /// Its id within the account (`e{n}`, numbered in recording order).
    pub id: String,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `grant`, `debit`, `refund`, `expire`, `adjust`, `freeze` or `unfreeze`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub entry_type: Name,
    /// Signed credits (0 for freeze and unfreeze).
    pub amount: i64,
    /// Kind of credits.
    #[schema(value_type = String)]
    pub kind: Name,
    /// The bucket's source.
    #[schema(value_type = String)]
    pub source: Name,
    /// The bucket.
    pub bucket_id: String,
    /// The hold, for debits and refunds.
    pub hold_id: Option<String>,
    /// The feature, for debits and refunds.
    pub feature: Option<String>,
    /// The quantity, for debits and refunds.
    pub quantity: Option<u32>,
    /// The order, for purchases.
    pub order_id: Option<String>,
    /// Credits frozen or unfrozen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<u64>,
    /// A note (grant note, adjustment reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What happened, for people.
    pub description: String,
}

impl EntryDto {
    /// Entry number `seq` of `account` as shown.
    pub fn new(account: &AccountId, seq: u64, entry: &LedgerEntry) -> EntryDto {
        EntryDto {
            id: format!("e{seq}"),
            at: entry.at,
            entry_type: entry.entry_type.as_str().into(),
            amount: entry.amount,
            kind: entry.kind.as_str().into(),
            source: entry.source.as_str().into(),
            bucket_id: entry.bucket_id.to_string(),
            hold_id: entry.hold_id.map(|h| hold_ref(account, h)),
            feature: entry.feature.as_deref().map(str::to_owned),
            quantity: entry.quantity,
            order_id: entry.order_id.as_ref().map(ToString::to_string),
            frozen: entry.frozen,
            note: entry.note.as_deref().map(str::to_owned),
            description: entry.description(),
        }
    }
}

/// A page of accounts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountPageDto {
    /// In id order.
    pub accounts: Vec<AccountDto>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A page of the ledger.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerPageDto {
    /// Newest first.
    pub entries: Vec<EntryDto>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The answer to an adjustment: its ledger entry. A negative adjustment that takes from
/// several buckets makes one entry per bucket: the answer sums them (`amount`) and lists
/// them all in `entries`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdjustmentDto {
    /// The first entry's fields, with `amount` the whole adjustment.
    #[serde(flatten)]
    pub entry: EntryDto,
    /// Every entry it made.
    pub entries: Vec<EntryDto>,
}

impl AdjustmentDto {
    /// The answer for an adjustment's numbered entries; `None` if it made none.
    pub fn new(account: &AccountId, entries: &[StoredEntry]) -> Option<AdjustmentDto> {
        let first = entries.first()?;
        let mut summary = EntryDto::new(account, first.seq, &first.entry);
        summary.amount = entries
            .iter()
            .map(|stored| stored.entry.amount)
            .fold(0, i64::saturating_add);
        Some(AdjustmentDto {
            entry: summary,
            entries: entries
                .iter()
                .map(|stored| EntryDto::new(account, stored.seq, &stored.entry))
                .collect(),
        })
    }
}

/// A read-only account token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenDto {
    /// The bearer token.
    pub token: String,
    /// When it stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}
