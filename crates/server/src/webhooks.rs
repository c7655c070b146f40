//! Webhook delivery (SPEC §9): every node sends the deliveries it claims; the node that
//! runs the jobs hands new events out to the endpoints first.
//!
//! A delivery is claimed from the store with a lease, sent by a task of its own, and
//! its attempt recorded with what became of it: delivered on any 2xx answer within
//! [`ATTEMPT_TIMEOUT`], else retried after each step of [`RETRY_SCHEDULE`] on the
//! service clock (so the test clock moves retries too), then failed. Each endpoint
//! has at most [`SENDS_PER_ENDPOINT`] attempts in flight and is claimed for only as many,
//! so a slow or dead endpoint holds up only its own deliveries, never a request or
//! another endpoint. A node that dies mid-delivery loses nothing: its lease runs out
//! and another node (or the same one, restarted) claims the delivery again. Delivery is
//! at least once: a receiver drops repeats by `webhook-id`.
//!
//! Requests are signed as Standard Webhooks says: HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded secret
//! after `whsec_`; `webhook-timestamp` is the wall clock, even on a test clock, since
//! receivers refuse stale ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use creditd_store::{
    AttemptRecord, ClaimedDelivery, DELIVERY_LEASE_SECONDS, DeliveryState, WebhookEndpoint,
};
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use serde_json::value::RawValue;
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::command::SECRET_PREFIX;
use crate::core::Core;
use crate::dto::{WebhookBody, event_ref};

/// When a failed delivery is tried again, after each failed attempt in turn (SPEC §9);
/// after the last, the delivery has failed.
pub const RETRY_SCHEDULE: [SignedDuration; 7] = [
    SignedDuration::from_secs(5),
    SignedDuration::from_mins(5),
    SignedDuration::from_mins(30),
    SignedDuration::from_hours(2),
    SignedDuration::from_hours(5),
    SignedDuration::from_hours(10),
    SignedDuration::from_hours(10),
];
/// How long an attempt may take, connecting included: SPEC §9's 15 s.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts in flight to one endpoint at once: enough to keep up with a receiver that
/// answers in 100 ms at hundreds of events a second, few enough not to flood one.
pub const SENDS_PER_ENDPOINT: usize = 16;
/// How often the worker looks for due deliveries when nothing woke it earlier.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The least time between two rounds when commits wake the worker: under a stream of
/// events (a sweep distributing to a million members) a round per group commit would
/// add a transaction to each; this bounds it to ten a second.
const MIN_ROUND_GAP: Duration = Duration::from_millis(100);
/// How often the dispatcher moves past events while there is no endpoint.
const IDLE_DISPATCH_INTERVAL: Duration = Duration::from_secs(60);
/// Events handed out to endpoints per store call.
const DISPATCH_BATCH: u32 = 1_000;
/// The longest error text kept for an attempt.
const MAX_ERROR_LEN: usize = 300;

/// The running delivery worker.
pub struct Deliveries {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Deliveries {
    /// Starts the worker on `core`.
    pub fn start(core: Arc<Core>) -> Deliveries {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(core, stopped));
        Deliveries { stop, task }
    }

    /// Stops claiming; attempts in flight end with the process (their leases run out
    /// and another node, or this one restarted, sends them again).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The HTTP client deliveries are sent with: no redirects (a 3xx is not a delivery),
/// the timeouts of SPEC §9.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(ATTEMPT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("creditd/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

async fn run(core: Arc<Core>, mut stopped: watch::Receiver<bool>) {
    let holder = format!("node_{}", hex::encode(rand::random::<[u8; 8]>()));
    let client = client();
    let (done, mut finished) = mpsc::channel::<AttemptRecord>(1_024);
    let mut lanes: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut results = Vec::new();
    let mut last_round = tokio::time::Instant::now();
    let mut last_skip = last_round;
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = core.events_recorded.notified() => {
                let next = last_round.checked_add(MIN_ROUND_GAP).unwrap_or(last_round);
                tokio::time::sleep_until(next).await;
            }
            count = finished.recv_many(&mut results, 256) => {
                if count == 0 {
                    break;
                }
                record(&core, &holder, &mut results).await;
                continue;
            }
            _ = stopped.changed() => break,
        }
        last_round = tokio::time::Instant::now();
        let endpoints = match core.store.webhook_endpoints().await {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::warn!(%error, "webhooks: could not list the endpoints");
                continue;
            }
        };
        // With no endpoint, handing out only moves the dispatcher past the newest event:
        // a write the service need not make on every round (on SQLite, an fsync), so
        // it is made once a minute.
        let due = !endpoints.is_empty() || last_skip.elapsed() >= IDLE_DISPATCH_INTERVAL;
        if due && matches!(core.store.leads_jobs().await, Ok(true)) {
            dispatch(&core).await;
            if endpoints.is_empty() {
                last_skip = tokio::time::Instant::now();
            }
        }
        lanes.retain(|id, _| endpoints.iter().any(|e| &e.id == id));
        for endpoint in endpoints {
            let lane = lanes
                .entry(endpoint.id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(SENDS_PER_ENDPOINT)));
            send_due(&core, &client, &holder, &endpoint, lane, &done).await;
        }
    }
}

/// Hands every event not yet handed out to the endpoints that receive it.
async fn dispatch(core: &Core) {
    loop {
        match core
            .store
            .dispatch_events(core.clock.now(), DISPATCH_BATCH)
            .await
        {
            Ok(count) if count == DISPATCH_BATCH => continue,
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%error, "webhooks: could not hand events out");
                break;
            }
        }
    }
}

/// Claims as many due deliveries of `endpoint` as its lane has room for and sends each.
async fn send_due(
    core: &Arc<Core>,
    client: &reqwest::Client,
    holder: &str,
    endpoint: &WebhookEndpoint,
    lane: &Arc<Semaphore>,
    done: &mpsc::Sender<AttemptRecord>,
) {
    let room = lane.available_permits();
    if room == 0 {
        return;
    }
    let lease_until = Timestamp::now()
        .as_microsecond()
        .saturating_add(DELIVERY_LEASE_SECONDS.saturating_mul(1_000_000));
    let claimed = match core
        .store
        .claim_deliveries(
            &endpoint.id,
            core.clock.now(),
            holder,
            lease_until,
            u32::try_from(room).unwrap_or(u32::MAX),
        )
        .await
    {
        Ok(claimed) => claimed,
        Err(error) => {
            tracing::warn!(%error, endpoint = %endpoint.id, "webhooks: could not claim deliveries");
            return;
        }
    };
    for delivery in claimed {
        let Ok(permit) = Arc::clone(lane).try_acquire_owned() else {
            break;
        };
        let (core, client, done) = (Arc::clone(core), client.clone(), done.clone());
        tokio::spawn(async move {
            let attempt = attempt(&core, &client, &delivery).await;
            drop(permit);
            let _ = done.send(attempt).await;
        });
    }
}

/// Records finished attempts, counting them by outcome.
async fn record(core: &Core, holder: &str, results: &mut Vec<AttemptRecord>) {
    for attempt in results.iter() {
        core.metrics
            .webhook_attempt(attempt.state, attempt.status_code);
    }
    if let Err(error) = core.store.record_attempts(holder, results).await {
        // The leases run out and the deliveries are sent again: at least once.
        tracing::warn!(%error, attempts = results.len(), "webhooks: could not record attempts");
    }
    results.clear();
}

/// One attempt to deliver, and what became of the delivery.
async fn attempt(
    core: &Core,
    client: &reqwest::Client,
    delivery: &ClaimedDelivery,
) -> AttemptRecord {
    let event = &delivery.event;
    let number = delivery.attempts.saturating_add(1);
    let outcome = send(client, delivery).await;
    let at = core.clock.now();
    let (status_code, error) = match &outcome {
        Ok(status) => (Some(*status), None),
        Err(error) => (None, Some(error.clone())),
    };
    let delivered = status_code.is_some_and(|code| (200..300).contains(&code));
    let retry_after = usize::try_from(delivery.attempts)
        .ok()
        .and_then(|done| RETRY_SCHEDULE.get(done));
    let (state, next_attempt_at) = match (delivered, retry_after) {
        (true, _) => (DeliveryState::Delivered, None),
        (false, Some(wait)) => (DeliveryState::Pending, at.checked_add(*wait).ok()),
        (false, None) => (DeliveryState::Failed, None),
    };
    let error = error.or_else(|| {
        (!delivered).then(|| format!("the endpoint answered {}", status_code.unwrap_or(0)))
    });
    AttemptRecord {
        number: 0,
        endpoint_id: delivery.endpoint_id.clone(),
        account_id: event.account_id.clone(),
        sequence: event.sequence,
        attempt: number,
        at,
        status_code,
        error,
        next_attempt_at,
        state,
    }
}

/// POSTs the event, signed; the status code, or why there is none.
async fn send(client: &reqwest::Client, delivery: &ClaimedDelivery) -> Result<u16, String> {
    let event = &delivery.event;
    let data = RawValue::from_string(event.data.clone()).map_err(|e| e.to_string())?;
    let body = serde_json::to_string(&WebhookBody {
        event_type: event.event_type.as_str(),
        timestamp: event.created_at,
        data: &data,
    })
    .map_err(|e| e.to_string())?;
    let id = event_ref(&event.account_id, event.sequence);
    let timestamp = Timestamp::now().as_second();
    let signature = sign(&delivery.secret, &id, timestamp, &body)?;
    let response = client
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|error| describe(&error))?;
    Ok(response.status().as_u16())
}

/// The `webhook-signature` header: `v1,` + base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed with the secret's bytes.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| "the endpoint's secret is not base64".to_owned())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// An error in a few plain words, bounded.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut text = format!("{what}: {error}");
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(
            signature.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn a_failed_delivery_is_retried_on_the_schedule_then_fails() {
        let total: SignedDuration = RETRY_SCHEDULE
            .iter()
            .fold(SignedDuration::ZERO, |sum, wait| sum.saturating_add(*wait));
        // 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h.
        assert_eq!(
            total,
            SignedDuration::from_secs(5 + 300 + 1_800 + 7_200 + 18_000 + 72_000)
        );
    }
}
