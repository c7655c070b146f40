//! `/v1/holds/…` and the holds and charges of `/v1/accounts/{id}/…`.

use creditd_ledger::{AccountId, Allocation, Hold};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Name, hold_ref};

/// `POST /v1/accounts/{id}/holds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// A feature of the catalog.
    #[schema(example = "agent.video_generation")]
    pub feature: String,
    /// Units (default: the feature's default quantity).
    pub quantity: Option<i64>,
    /// `general` (default) or `premium`.
    pub tier: Option<String>,
    /// How long the hold lasts unless captured or released (default 900).
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
    pub quantity: Option<i64>,
}

/// Credits a hold took from one bucket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AllocationDto {
    /// The bucket.
    pub bucket_id: String,
    /// Its kind.
    #[schema(value_type = String)]
    pub kind: Name,
    /// Its source.
    #[schema(value_type = String)]
    pub source: Name,
    /// Credits.
    pub amount: u64,
}

impl From<&Allocation> for AllocationDto {
    fn from(allocation: &Allocation) -> AllocationDto {
        AllocationDto {
            bucket_id: allocation.bucket_id.to_string(),
            kind: allocation.kind.as_str().into(),
            source: allocation.source.as_str().into(),
            amount: allocation.amount,
        }
    }
}

/// A hold (a charge is a hold captured at once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoldDto {
    /// The hold's id (`h{n}_{account}`).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The feature paid for.
    pub feature: String,
    /// The tier priced.
    #[schema(value_type = String)]
    pub tier: Name,
    /// The quantity reserved for.
    pub quantity: u32,
    /// Credits reserved.
    pub amount: u64,
    /// `pending`, `captured`, `released` or `expired`.
    #[schema(value_type = String)]
    pub status: Name,
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
            tier: hold.tier().as_str().into(),
            quantity: hold.quantity(),
            amount: hold.amount(),
            status: hold.status().as_str().into(),
            created_at: hold.created_at(),
            expires_at: hold.expires_at(),
            allocations: hold.allocations().iter().map(AllocationDto::from).collect(),
            reference: hold.reference().map(str::to_owned),
            captured_quantity: settlement.map(|s| s.captured_quantity),
            captured_amount: settlement.map(|s| s.captured_amount),
            refunded_amount: settlement.map(|s| s.refunded_amount),
            settled_at: settlement.map(|s| s.at),
        }
    }
}
