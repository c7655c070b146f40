//! Service-wide answers and requests: the catalog, API keys, the test clock, health.

use creditd_ledger::Catalog;
use creditd_store::ApiKeyRecord;
use indexmap::IndexMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Name;

/// `POST /v1/api-keys`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// What the key is for.
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
    #[serde(default, deserialize_with = "super::instant_in_micros")]
    pub now: Option<Timestamp>,
    /// Move forward by this many seconds.
    #[schema(minimum = 0)]
    pub advance_seconds: Option<i64>,
}

/// An API key (its secret only in the answer that created it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

impl ApiKeyDto {
    /// A key as shown, with its secret only in the answer that created it.
    pub fn new(record: &ApiKeyRecord, key: Option<String>) -> ApiKeyDto {
        ApiKeyDto {
            id: record.id.clone(),
            name: record.name.clone(),
            role: record.role.clone(),
            created_at: record.created_at,
            revoked_at: record.revoked_at,
            key,
        }
    }
}

/// The keys.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyListDto {
    /// Every key, oldest first, without secrets.
    pub keys: Vec<ApiKeyDto>,
}

/// The test clock.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClockDto {
    /// Its time.
    #[schema(value_type = String, format = DateTime)]
    pub now: Timestamp,
}

/// Health.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthDto {
    /// `ok`.
    #[schema(value_type = String)]
    pub status: Name,
}

/// A feature of the catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeatureDto {
    /// Its name.
    pub name: String,
    /// `tool` or `agent`.
    #[schema(value_type = String)]
    pub category: Name,
    /// What one unit is.
    pub unit: String,
    /// Units per priced block.
    pub block: u32,
    /// Quantity of a use that names none.
    pub default_quantity: u32,
    /// Price per block by tier; a tier without a price is absent.
    pub prices: IndexMap<String, u64>,
    /// Its name in words, by language tag (`en`, `zh`).
    #[serde(default)]
    pub names: IndexMap<String, String>,
}

/// A plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    /// How long before a bucket's end `credits.expiring_soon` is told (ISO 8601).
    pub expiry_notice: String,
    /// `balance.low` below this total for accounts without a threshold of their own.
    pub low_balance_threshold: Option<u64>,
}

/// The catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
                    category: f.category.as_str().into(),
                    unit: f.unit.clone(),
                    block: f.block,
                    default_quantity: f.default_quantity,
                    prices,
                    names: f.names.clone(),
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
                    currency: p.currency.to_string(),
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
                expiry_notice: policies.expiry_notice.to_string(),
                low_balance_threshold: policies.low_balance_threshold,
            },
        }
    }
}

/// One change a person made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditDto {
    /// When (the service clock).
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// The API key they acted with.
    pub key_id: String,
    /// Its name then.
    pub key_name: String,
    /// `api` or `console`.
    pub via: String,
    /// What was done: `grant`, `adjust`, `purchase`, `hold.release`, `membership.cancel`,
    /// `key.create`, `key.revoke`, `webhook.create`, …
    pub action: String,
    /// The account it was about, if one.
    pub account_id: Option<String>,
    /// Why, as they gave it.
    pub reason: Option<String>,
    /// The answer the change got, without secrets.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<&creditd_store::StoredAudit> for AuditDto {
    fn from(stored: &creditd_store::StoredAudit) -> AuditDto {
        let record = &stored.record;
        AuditDto {
            at: record.at,
            key_id: record.key_id.clone(),
            key_name: record.key_name.clone(),
            via: record.via.clone(),
            action: record.action.clone(),
            account_id: record.account_id.as_ref().map(ToString::to_string),
            reason: record.reason.clone(),
            detail: serde_json::from_str(&record.detail).unwrap_or_default(),
        }
    }
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPageDto {
    /// The records.
    pub records: Vec<AuditDto>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// A row of a reconciliation that is not `credited`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationRowDto {
    /// Its line in the file (the header is line 1).
    pub line: u64,
    /// Its order id, as written.
    pub order_id: String,
    /// `missing`, `conflicting` or `invalid`.
    #[schema(value_type = String)]
    pub status: Name,
    /// Why, or what was done: "recorded now", the terms recorded, the rule it breaks.
    pub detail: String,
}

/// What a reconciliation found (SPEC §11).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationDto {
    /// Rows read (the header aside).
    pub orders: u64,
    /// Recorded on the same terms.
    pub credited: u64,
    /// Not recorded (with `apply`, recorded now: see `applied`).
    pub missing: u64,
    /// Recorded on other terms; never applied.
    pub conflicting: u64,
    /// Unreadable rows and rows that break a rule.
    pub invalid: u64,
    /// Missing orders recorded by this request.
    pub applied: u64,
    /// Every row that is not `credited`, in file order, up to 100,000.
    pub rows: Vec<ReconciliationRowDto>,
    /// Rows not listed past that many.
    pub rows_omitted: u64,
}
