//! `/v1/events` and `/v1/webhook-endpoints` (SPEC §9): events as the API and webhooks
//! show them, and the endpoints.
//!
//! An event's `data` is written once, when the event is recorded ([`event_data`]), from
//! the same answers the rest of the API gives (a bucket, a hold, a purchase, a
//! membership), with the event's `account_id` and `sequence` beside them: the stored
//! text is what every later read and webhook sends, so it never changes under a
//! consumer.

use creditd_ledger::{AccountId, Event, EventKind, Membership};
use creditd_store::{AttemptRecord, EventRecord, PurchaseRecord, WebhookEndpoint};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{BucketDto, HoldDto, MembershipDto, Name, PurchaseDto};

/// An event's `data`: what the event tells, with its account and number.
#[derive(Serialize)]
struct Data<T: Serialize> {
    account_id: String,
    sequence: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct ExpiringSoon {
    bucket: BucketDto,
    remaining: u64,
    expires_at: Option<Timestamp>,
    frozen: bool,
}

#[derive(Serialize)]
struct Expired {
    bucket_id: String,
    kind: Name,
    source: Name,
    amount: u64,
}

#[derive(Serialize)]
struct Low {
    total: u64,
    threshold: u64,
}

#[derive(Serialize)]
struct Depleted {
    total: u64,
}

#[derive(Serialize)]
struct MembershipChange {
    membership: MembershipDto,
    previous: MembershipDto,
}

#[derive(Serialize)]
struct Distributed {
    index: u32,
    subscription_bucket: Option<BucketDto>,
    agent_bucket: Option<BucketDto>,
}

/// The `data` of `event` of `account`, as JSON; `purchase` is the record of a
/// `purchase.recorded` event's purchase (the API's purchase carries what the platform
/// paid and when it was recorded, which the ledger does not know).
pub fn event_data(
    account: &AccountId,
    event: &Event,
    purchase: Option<&PurchaseRecord>,
) -> serde_json::Result<String> {
    fn data<T: Serialize>(
        account: &AccountId,
        event: &Event,
        body: T,
    ) -> serde_json::Result<String> {
        serde_json::to_string(&Data {
            account_id: account.to_string(),
            sequence: event.sequence,
            body,
        })
    }
    match &event.kind {
        EventKind::CreditsGranted { bucket, frozen } => {
            data(account, event, BucketDto::new(bucket, *frozen))
        }
        EventKind::CreditsExpiringSoon { bucket, frozen } => data(
            account,
            event,
            ExpiringSoon {
                bucket: BucketDto::new(bucket, *frozen),
                remaining: bucket.remaining(),
                expires_at: bucket.expires_at(),
                frozen: *frozen,
            },
        ),
        EventKind::CreditsExpired {
            bucket_id,
            kind,
            source,
            amount,
        } => data(
            account,
            event,
            Expired {
                bucket_id: bucket_id.to_string(),
                kind: kind.as_str().into(),
                source: source.as_str().into(),
                amount: *amount,
            },
        ),
        EventKind::BalanceLow { total, threshold } => data(
            account,
            event,
            Low {
                total: *total,
                threshold: *threshold,
            },
        ),
        EventKind::BalanceDepleted => data(account, event, Depleted { total: 0 }),
        EventKind::HoldExpired(hold) => data(account, event, HoldDto::new(account, hold)),
        EventKind::PurchaseRecorded(receipt) => match purchase {
            Some(record) => data(account, event, PurchaseDto::from(record)),
            None => data(
                account,
                event,
                PurchaseDto {
                    order_id: receipt.order_id.to_string(),
                    account_id: account.to_string(),
                    credits: receipt.credits,
                    bucket_id: receipt.bucket_id.to_string(),
                    paid_at: receipt.paid_at,
                    expires_at: receipt.expires_at,
                    recorded_at: event.at,
                    paid: None,
                },
            ),
        },
        EventKind::MembershipChanged {
            membership,
            previous,
        } => data(
            account,
            event,
            MembershipChange {
                membership: MembershipDto::from(&**membership),
                previous: MembershipDto::from(&**previous),
            },
        ),
        EventKind::CreditsDistributed {
            index,
            subscription_bucket,
            agent_bucket,
        } => data(
            account,
            event,
            Distributed {
                index: *index,
                subscription_bucket: subscription_bucket
                    .as_ref()
                    .map(|b| BucketDto::new(b, false)),
                agent_bucket: agent_bucket.as_ref().map(|b| BucketDto::new(b, false)),
            },
        ),
    }
}

impl From<&Membership> for MembershipDto {
    fn from(membership: &Membership) -> MembershipDto {
        MembershipDto {
            status: membership.status().as_str().into(),
            plan: membership.plan().map(str::to_owned),
            period_start: membership.period_start(),
            period_end: membership.period_end(),
            trial_end: membership.trial_end(),
        }
    }
}

/// How an event is named over HTTP: `ev{n}_{account}`, its number and its account, as
/// hold ids are (`dto::hold_ref`): `GET /v1/events/{id}` finds it by its account.
pub fn event_ref(account: &AccountId, sequence: u64) -> String {
    format!("ev{sequence}_{account}")
}

/// Reads an event reference back; `None` if it is not one.
pub fn parse_event_ref(text: &str) -> Option<(AccountId, u64)> {
    let (number, account) = text.split_once('_')?;
    let digits = number.strip_prefix("ev")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((AccountId::parse(account).ok()?, digits.parse().ok()?))
}

/// An event (SPEC §9).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventDto {
    /// `ev{n}_{account}`; also the webhook's `webhook-id`.
    pub id: String,
    /// `credits.granted`, `balance.low`, …
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub event_type: Name,
    /// The instant of the effect.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The account.
    pub account_id: String,
    /// Its number within the account, from 1 without gaps.
    pub sequence: u64,
    /// What the event tells (see the event catalog in docs/INTEGRATION.md).
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl EventDto {
    /// The event as shown.
    pub fn new(event: &EventRecord) -> serde_json::Result<EventDto> {
        Ok(EventDto {
            id: event_ref(&event.account_id, event.sequence),
            event_type: event.event_type.as_str().into(),
            created_at: event.created_at,
            account_id: event.account_id.to_string(),
            sequence: event.sequence,
            data: RawValue::from_string(event.data.clone())?,
        })
    }
}

/// The body of a webhook delivery (Standard Webhooks): the type, the event's
/// `created_at`, and its data (which carries `account_id` and `sequence`).
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The event's `created_at`.
    pub timestamp: Timestamp,
    /// Its data, as stored.
    pub data: &'a RawValue,
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPageDto {
    /// The events.
    pub events: Vec<EventDto>,
    /// Where to poll next; never null (at the end, it is where new events will appear).
    pub next_cursor: String,
}

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// Where to POST deliveries: an http or https URL.
    #[schema(example = "http://localhost:9000/hooks/credits")]
    pub url: String,
    /// The types to receive (default: all).
    pub event_types: Option<Vec<String>>,
    /// What it is for.
    pub description: Option<String>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointDto {
    /// `we_…`.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The types it receives.
    #[schema(value_type = Vec<String>)]
    pub event_types: Vec<Name>,
    /// What it is for.
    pub description: Option<String>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Whether deliveries are stopped (a deleted endpoint).
    pub disabled: bool,
    /// `whsec_…`: only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointDto {
    /// The endpoint as shown, with its secret only when `secret` is given.
    pub fn new(endpoint: &WebhookEndpoint, secret: Option<String>) -> EndpointDto {
        let event_types = match &endpoint.event_types {
            Some(types) => types.iter().map(|t| t.as_str().into()).collect(),
            None => creditd_ledger::EventType::ALL
                .iter()
                .map(|t| t.as_str().into())
                .collect(),
        };
        EndpointDto {
            id: endpoint.id.clone(),
            url: endpoint.url.clone(),
            event_types,
            description: endpoint.description.clone(),
            created_at: endpoint.created_at,
            disabled: endpoint.deleted_at.is_some(),
            secret,
        }
    }
}

/// The webhook endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointListDto {
    /// Oldest first.
    pub endpoints: Vec<EndpointDto>,
}

/// A new secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretDto {
    /// `whsec_…`: shown only here.
    pub secret: String,
}

/// One delivery attempt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptDto {
    /// The event.
    pub event_id: String,
    /// 1 for the first attempt of a round.
    pub attempt: u32,
    /// When it was made (the service clock).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The receiver's status code, if it answered.
    pub status_code: Option<u16>,
    /// What went wrong, if anything did.
    pub error: Option<String>,
    /// When the next attempt is due; null: none (delivered, or failed for good).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
}

impl From<&AttemptRecord> for AttemptDto {
    fn from(a: &AttemptRecord) -> AttemptDto {
        AttemptDto {
            event_id: event_ref(&a.account_id, a.sequence),
            attempt: a.attempt,
            at: a.at,
            status_code: a.status_code,
            error: a.error.clone(),
            next_attempt_at: a.next_attempt_at,
        }
    }
}

/// A page of attempts, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptPageDto {
    /// The attempts.
    pub deliveries: Vec<AttemptDto>,
    /// The next page; null at the end.
    pub next_cursor: Option<String>,
}

/// `POST /v1/events/{id}/redeliver`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// Only to this endpoint (default: every endpoint that receives the event).
    pub endpoint_id: Option<String>,
}

/// A redelivery scheduled.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RedeliveryDto {
    /// The event.
    pub event_id: String,
    /// The endpoints a new round of attempts starts for.
    pub endpoint_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_references_carry_the_account_and_read_back() {
        let account = AccountId::parse("user_1.a").expect("id");
        let text = event_ref(&account, 12);
        assert_eq!(text, "ev12_user_1.a");
        assert_eq!(parse_event_ref(&text), Some((account, 12)));
        for bad in ["ev0_a", "ev01_a", "ev+1_a", "e1_a", "ev1", "ev1_", "ev_a"] {
            assert_eq!(parse_event_ref(bad), None, "{bad}");
        }
    }
}
