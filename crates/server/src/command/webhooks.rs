//! Webhook endpoints and redeliveries as commands: they touch no account, so no ledger
//! rule is involved, but they go through the writer like every change, so an endpoint
//! created, rotated or deleted is durable when answered and replays under its
//! Idempotency-Key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use creditd_ledger::{AccountId, EventType};
use creditd_store::{Redelivery, WebhookEndpoint};
use jiff::Timestamp;

use super::{Batch, Outcome};

/// How a webhook secret begins (Standard Webhooks): the rest is the base64 of the key.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: 32 random bytes, `whsec_` + base64.
pub fn new_secret() -> String {
    format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// A new endpoint to record.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    /// An http or https URL, checked.
    pub url: String,
    /// The types it receives; `None`: all.
    pub event_types: Option<Vec<EventType>>,
    /// What it is for.
    pub description: Option<String>,
}

impl Batch<'_> {
    pub(super) fn create_endpoint(&mut self, new: &NewEndpoint, now: Timestamp) -> Outcome {
        let endpoint = WebhookEndpoint {
            id: format!("we_{}", hex::encode(rand::random::<[u8; 8]>())),
            url: new.url.clone(),
            event_types: new.event_types.clone(),
            description: new.description.clone(),
            secret: new_secret(),
            created_at: now,
            deleted_at: None,
        };
        self.changes.webhook_endpoints.push(endpoint.clone());
        Outcome::EndpointCreated(endpoint)
    }

    pub(super) fn rotate_secret(&mut self, endpoint: &WebhookEndpoint) -> Outcome {
        let mut rotated = endpoint.clone();
        rotated.secret = new_secret();
        self.changes.webhook_endpoints.push(rotated.clone());
        Outcome::SecretRotated(rotated.secret)
    }

    pub(super) fn delete_endpoint(
        &mut self,
        endpoint: &WebhookEndpoint,
        now: Timestamp,
    ) -> Outcome {
        let mut deleted = endpoint.clone();
        deleted.deleted_at = Some(now);
        self.changes.webhook_endpoints.push(deleted);
        Outcome::EndpointDeleted
    }

    pub(super) fn redeliver(
        &mut self,
        account: &AccountId,
        sequence: u64,
        endpoints: &[String],
        now: Timestamp,
    ) -> Outcome {
        for endpoint_id in endpoints {
            self.changes.redeliveries.push(Redelivery {
                endpoint_id: endpoint_id.clone(),
                account_id: account.clone(),
                sequence,
                at: now,
            });
        }
        Outcome::Redelivering {
            account: account.clone(),
            sequence,
            endpoints: endpoints.to_vec(),
        }
    }
}
