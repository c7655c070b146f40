//! What travels over HTTP (SPEC §6): request bodies as clients send them and answers as
//! they read them. The ledger core's types never cross the wire themselves; each answer
//! is built here from them, so the API can stay stable while the core changes.

use creditd_ledger::{
    Account, AccountId, Balance, Bucket, Catalog, Hold, HoldId, LedgerEntry, PurchaseReceipt,
};
use indexmap::IndexMap;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a hold is named over HTTP: `h{n}_{account}`, the account's own number and the
/// account id together, split at the first `_` (`h{n}` has none). `GET
/// /v1/holds/{hold_id}` finds the account without a global index, so holds need no
/// table across accounts.
pub fn hold_ref(account: &AccountId, hold: HoldId) -> String {
    format!("{hold}_{account}")
}

/// Reads a hold reference back; `None` if it is not one.
pub fn parse_hold_ref(text: &str) -> Option<(AccountId, HoldId)> {
    let (hold, account) = text.split_once('_')?;
    let number: u64 = hold.strip_prefix('h')?.parse().ok()?;
    if number == 0 || hold.starts_with("h0") || hold.starts_with("h+") {
        return None;
    }
    Some((AccountId::parse(account).ok()?, HoldId::new(number)))
}

// ---------------------------------------------------------------- requests

/// `PUT /v1/accounts/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAccountRequest {
    /// IANA time zone (default: the configured default, UTC).
    #[schema(example = "Asia/Shanghai")]
    pub timezone: Option<String>,
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
    pub period_end: Option<Timestamp>,
}

/// A request that takes no fields (`daily-login`, `release`): an empty body or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /v1/accounts/{id}/grants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// `general` or `agent`.
    pub kind: String,
    /// 1 … 1,000,000,000.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount: i64,
    /// `promotion` or `compensation`.
    pub source: String,
    /// When the credits end (future), or
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// how long they last (ISO 8601, e.g. `P7D`, `PT2H`); neither: never.
    pub valid_for: Option<String>,
    /// The campaign, for reports.
    pub campaign: Option<String>,
    /// A note for the ledger.
    pub note: Option<String>,
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
    #[schema(min_length = 1, max_length = 128)]
    pub order_id: String,
    /// A catalog package, or
    pub package: Option<String>,
    /// a number of credits.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub credits: Option<i64>,
    /// What was paid.
    pub paid: Option<PaidRequest>,
    /// When it was paid (default now; never in the future).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<Timestamp>,
}

/// `POST /v1/accounts/{id}/holds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// A feature of the catalog.
    #[schema(example = "agent.video_generation")]
    pub feature: String,
    /// Units (default: the feature's default quantity).
    #[schema(minimum = 1, maximum = 100_000)]
    pub quantity: Option<i64>,
    /// `general` (default) or `premium`.
    pub tier: Option<String>,
    /// How long the hold lasts unless captured or released (default 900).
    #[schema(minimum = 1, maximum = 86_400)]
    pub ttl_seconds: Option<i64>,
    /// The caller's reference, such as a job id.
    pub reference: Option<String>,
}

/// `POST /v1/accounts/{id}/charges`: a hold captured at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// A feature of the catalog.
    pub feature: String,
    /// Units (default: the feature's default quantity).
    #[schema(minimum = 1, maximum = 100_000)]
    pub quantity: Option<i64>,
    /// `general` (default) or `premium`.
    pub tier: Option<String>,
    /// The caller's reference, such as a job id.
    pub reference: Option<String>,
}

/// `POST /v1/holds/{hold_id}/capture`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// The quantity delivered, 0 … the held quantity (default: all of it).
    #[schema(minimum = 0, maximum = 100_000)]
    pub quantity: Option<i64>,
}

/// `POST /v1/accounts/{id}/adjustments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Signed credits: +n adds, −n takes (not 0).
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub amount: i64,
    /// `general` or `agent`.
    pub kind: String,
    /// Why; kept in the ledger.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// `POST /v1/accounts/{id}/tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// 1 … 2,592,000 (default 3,600).
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub ttl_seconds: Option<i64>,
}

/// `POST /v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// What the key is for.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `admin`, `service` or `viewer`.
    pub role: String,
}

/// `POST /v1/test-clock`: one of the two.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    /// Move to this instant.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub now: Option<Timestamp>,
    /// Move forward by this many seconds.
    #[schema(minimum = 0)]
    pub advance_seconds: Option<i64>,
}

// ---------------------------------------------------------------- answers

/// An account.
#[derive(Debug, Serialize, ToSchema)]
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
}

/// A membership.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipDto {
    /// `none`, `trial`, `active` or `lapsed`.
    pub status: &'static str,
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

impl From<&Account> for AccountDto {
    fn from(account: &Account) -> AccountDto {
        let membership = account.membership();
        AccountDto {
            id: account.id().to_string(),
            timezone: account.time_zone().iana_name().unwrap_or("UTC").to_owned(),
            created_at: account.created_at(),
            membership: MembershipDto {
                status: membership.status().as_str(),
                plan: membership.plan().map(str::to_owned),
                period_start: membership.period_start(),
                period_end: membership.period_end(),
                trial_end: membership.trial_end(),
            },
        }
    }
}

/// A bucket of credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketDto {
    /// Its id within the account.
    pub id: String,
    /// `general` or `agent`.
    pub kind: &'static str,
    /// Where the credits came from.
    pub source: &'static str,
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
            kind: bucket.kind().as_str(),
            source: bucket.source().as_str(),
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
#[derive(Debug, Serialize, ToSchema)]
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

/// A recorded purchase.
#[derive(Debug, Serialize, ToSchema)]
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
}

impl PurchaseDto {
    /// The answer for a receipt of `account`.
    pub fn new(account: &AccountId, receipt: &PurchaseReceipt) -> PurchaseDto {
        PurchaseDto {
            order_id: receipt.order_id.to_string(),
            account_id: account.to_string(),
            credits: receipt.credits,
            bucket_id: receipt.bucket_id.to_string(),
            paid_at: receipt.paid_at,
            expires_at: receipt.expires_at,
        }
    }
}

/// Credits a hold took from one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationDto {
    /// The bucket.
    pub bucket_id: String,
    /// Its kind.
    pub kind: &'static str,
    /// Its source.
    pub source: &'static str,
    /// Credits.
    pub amount: u64,
}

/// A hold (a charge is a hold captured at once).
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldDto {
    /// The hold's id (`h{n}_{account}`).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The feature paid for.
    pub feature: String,
    /// The tier priced.
    pub tier: &'static str,
    /// The quantity reserved for.
    pub quantity: u32,
    /// Credits reserved.
    pub amount: u64,
    /// `pending`, `captured`, `released` or `expired`.
    pub status: &'static str,
    /// When it was placed.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When a pending hold returns everything by itself.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// Where the credits came from, in consumption order.
    pub allocations: Vec<AllocationDto>,
    /// The caller's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Settled holds: the quantity charged for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_quantity: Option<u32>,
    /// Settled holds: credits charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_amount: Option<u64>,
    /// Settled holds: credits returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_amount: Option<u64>,
    /// Settled holds: when.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub settled_at: Option<Timestamp>,
}

impl HoldDto {
    /// The hold of `account` as shown.
    pub fn new(account: &AccountId, hold: &Hold) -> HoldDto {
        let settlement = hold.settlement();
        HoldDto {
            id: hold_ref(account, hold.id()),
            account_id: account.to_string(),
            feature: hold.feature().to_owned(),
            tier: hold.tier().as_str(),
            quantity: hold.quantity(),
            amount: hold.amount(),
            status: hold.status().as_str(),
            created_at: hold.created_at(),
            expires_at: hold.expires_at(),
            allocations: hold
                .allocations()
                .iter()
                .map(|a| AllocationDto {
                    bucket_id: a.bucket_id.to_string(),
                    kind: a.kind.as_str(),
                    source: a.source.as_str(),
                    amount: a.amount,
                })
                .collect(),
            reference: hold.reference().map(str::to_owned),
            captured_quantity: settlement.map(|s| s.captured_quantity),
            captured_amount: settlement.map(|s| s.captured_amount),
            refunded_amount: settlement.map(|s| s.refunded_amount),
            settled_at: settlement.map(|s| s.at),
        }
    }
}

/// General credits in a balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneralBalanceDto {
    /// Usable now.
    pub available: u64,
    /// Reserved by pending holds.
    pub held: u64,
    /// Kept while the membership is lapsed.
    pub frozen: u64,
}

/// Agent credits in a balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentBalanceDto {
    /// Usable now.
    pub available: u64,
    /// Reserved by pending holds.
    pub held: u64,
}

/// The next credits to expire.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextExpiryDto {
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// How many.
    pub amount: u64,
}

/// A balance.
#[derive(Debug, Serialize, ToSchema)]
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
    /// Unexpired non-empty buckets in consumption order for agent tasks.
    pub buckets: Vec<BucketDto>,
}

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
                .map(|b| BucketDto::new(&b.bucket, b.frozen))
                .collect(),
        }
    }
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryDto {
    /// Its id within the account (`e{n}`, numbered in recording order).
    pub id: String,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `grant`, `debit`, `refund`, `expire`, `adjust`, `freeze` or `unfreeze`.
    #[serde(rename = "type")]
    pub entry_type: &'static str,
    /// Signed credits (0 for freeze and unfreeze).
    pub amount: i64,
    /// Kind of credits.
    pub kind: &'static str,
    /// The bucket's source.
    pub source: &'static str,
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
            entry_type: entry.entry_type.as_str(),
            amount: entry.amount,
            kind: entry.kind.as_str(),
            source: entry.source.as_str(),
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

/// A page of the ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPageDto {
    /// Newest first.
    pub entries: Vec<EntryDto>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The answer to an adjustment: its ledger entry. A negative adjustment that takes from
/// several buckets makes one entry per bucket: the answer sums them (`amount`) and lists
/// them all in `entries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdjustmentDto {
    /// The first entry's fields, with `amount` the whole adjustment.
    #[serde(flatten)]
    pub entry: EntryDto,
    /// Every entry it made.
    pub entries: Vec<EntryDto>,
}

/// A read-only account token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDto {
    /// The bearer token.
    pub token: String,
    /// When it stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// An API key (its secret only in the answer that created it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyDto {
    /// Public id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its role.
    pub role: String,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// The secret, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyListDto {
    /// Every key, oldest first, without secrets.
    pub keys: Vec<ApiKeyDto>,
}

/// The test clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockDto {
    /// Its time.
    #[schema(value_type = String, format = DateTime)]
    pub now: Timestamp,
}

/// Health.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDto {
    /// `ok`.
    pub status: &'static str,
}

/// A feature of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureDto {
    /// Its name.
    pub name: String,
    /// `tool` or `agent`.
    pub category: &'static str,
    /// What one unit is.
    pub unit: String,
    /// Units per priced block.
    pub block: u32,
    /// Quantity of a use that names none.
    pub default_quantity: u32,
    /// Price per block by tier; a tier without a price is absent.
    pub prices: IndexMap<String, u64>,
}

/// A plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanDto {
    /// Its name.
    pub name: String,
    /// Length of the trial in calendar days.
    pub trial_days: u32,
    /// Credits of the trial.
    pub trial_credits: u64,
    /// Subscription credits per month.
    pub monthly_credits: u64,
    /// Agent credits per month.
    pub monthly_agent_credits: u64,
}

/// A package of credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageDto {
    /// Its name.
    pub name: String,
    /// Credits.
    pub credits: u64,
    /// Price in the currency's minor unit.
    pub price_minor: u64,
    /// ISO 4217 code.
    pub currency: String,
}

/// Service-wide policies.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesDto {
    /// Agent credits of a daily login.
    pub daily_login_credits: u64,
    /// Validity of purchased credits (ISO 8601).
    pub purchase_validity: String,
    /// Validity of credits returned into an expired bucket (ISO 8601).
    pub refund_grace: String,
    /// Default hold TTL.
    pub hold_ttl_default_seconds: u32,
    /// Shortest hold TTL.
    pub hold_ttl_min_seconds: u32,
    /// Longest hold TTL.
    pub hold_ttl_max_seconds: u32,
    /// Zone of accounts created without one.
    pub default_timezone: String,
}

/// The catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogDto {
    /// Features by name.
    pub features: IndexMap<String, FeatureDto>,
    /// Plans by name.
    pub plans: IndexMap<String, PlanDto>,
    /// Packages by name.
    pub packages: IndexMap<String, PackageDto>,
    /// Policies.
    pub policies: PoliciesDto,
}

impl From<&Catalog> for CatalogDto {
    fn from(catalog: &Catalog) -> CatalogDto {
        let features = catalog
            .features()
            .map(|f| {
                let prices = [("general", f.general), ("premium", f.premium)]
                    .into_iter()
                    .filter_map(|(tier, price)| Some((tier.to_owned(), price?)))
                    .collect();
                let dto = FeatureDto {
                    name: f.name.to_string(),
                    category: f.category.as_str(),
                    unit: f.unit.clone(),
                    block: f.block,
                    default_quantity: f.default_quantity,
                    prices,
                };
                (f.name.to_string(), dto)
            })
            .collect();
        let plans = catalog
            .plans()
            .map(|p| {
                let dto = PlanDto {
                    name: p.name.to_string(),
                    trial_days: p.trial_days,
                    trial_credits: p.trial_credits,
                    monthly_credits: p.monthly_credits,
                    monthly_agent_credits: p.monthly_agent_credits,
                };
                (p.name.to_string(), dto)
            })
            .collect();
        let packages = catalog
            .packages()
            .map(|p| {
                let dto = PackageDto {
                    name: p.name.to_string(),
                    credits: p.credits,
                    price_minor: p.price_minor,
                    currency: p.currency.clone(),
                };
                (p.name.to_string(), dto)
            })
            .collect();
        let policies = catalog.policies();
        CatalogDto {
            features,
            plans,
            packages,
            policies: PoliciesDto {
                daily_login_credits: policies.daily_login_credits,
                purchase_validity: policies.purchase_validity.to_string(),
                refund_grace: policies.refund_grace.to_string(),
                hold_ttl_default_seconds: policies.hold_ttl_default_seconds,
                hold_ttl_min_seconds: policies.hold_ttl_min_seconds,
                hold_ttl_max_seconds: policies.hold_ttl_max_seconds,
                default_timezone: policies
                    .default_time_zone
                    .iana_name()
                    .unwrap_or("UTC")
                    .to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_references_carry_the_account_and_read_back() {
        let account = AccountId::parse("user_1.a:x@y-z").unwrap();
        let text = hold_ref(&account, HoldId::new(12));
        assert_eq!(text, "h12_user_1.a:x@y-z");
        assert_eq!(parse_hold_ref(&text), Some((account, HoldId::new(12))));
        for bad in [
            "h0_a", "h01_a", "h+1_a", "x1_a", "h1", "h1_", "h1_-a", "h_a",
        ] {
            assert_eq!(parse_hold_ref(bad), None, "{bad}");
        }
    }
}
