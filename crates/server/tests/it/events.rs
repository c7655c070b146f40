//! Events and webhooks (SPEC §9) through the router, and end to end with a real local
//! receiver: every event type with its data and instant, paging, no event for a refused
//! request, signatures checked with the `standardwebhooks` crate (not the server's own
//! code), the retry schedule on the test clock, rotation, deletion, redelivery, and a
//! hanging receiver that slows no charge.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ADMIN, App, app};

/// A webhook request as the receiver got it.
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    /// Verifies the signature with the Standard Webhooks reference crate.
    fn verify(&self, secret: &str) -> bool {
        let mut headers = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            headers.insert(name, self.headers[name].to_str().unwrap().parse().unwrap());
        }
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(self.body.as_bytes(), &headers)
            .is_ok()
    }
}

/// A local receiver: records what it gets and answers `status` (0: never answers).
struct Receiver {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
    status: Arc<AtomicU16>,
}

async fn receiver() -> Receiver {
    let (sent, received) = mpsc::unbounded_channel();
    let status = Arc::new(AtomicU16::new(204));
    let answer = Arc::clone(&status);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (sent, answer) = (sent.clone(), Arc::clone(&answer));
            async move {
                let _ = sent.send(Received { headers, body });
                match answer.load(Ordering::SeqCst) {
                    0 => std::future::pending::<StatusCode>().await,
                    code => StatusCode::from_u16(code).unwrap(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver {
        url,
        received,
        status,
    }
}

impl Receiver {
    /// The next request, waiting for the worker (a hang guard, not a timing claim).
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(30), self.received.recv())
            .await
            .expect("a delivery within 30 s")
            .unwrap()
    }

    /// The next request of `event_type`, skipping others.
    async fn next_of(&mut self, event_type: &str) -> Received {
        loop {
            let got = self.next().await;
            if got.json()["type"] == event_type {
                return got;
            }
        }
    }
}

async fn endpoint(app: &App, url: &str, types: Option<&[&str]>) -> Value {
    let mut body = json!({"url": url, "description": "test receiver"});
    if let Some(types) = types {
        body["event_types"] = json!(types);
    }
    app.post("/v1/webhook-endpoints", body).await.expect(201)
}

async fn events(app: &App, query: &str) -> Value {
    app.get(&format!("/v1/events?{query}")).await.expect(200)
}

fn types(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_event_type_is_recorded_with_its_data_and_instant() {
    let app = app().await;
    app.put("/v1/accounts/ev", json!({"low_balance_threshold": 50}))
        .await
        .expect(201);
    let account = app.get("/v1/accounts/ev").await.expect(200);
    assert_eq!(account["low_balance_threshold"], 50);
    let now = app.now().await;
    let period_end = now + jiff::SignedDuration::from_hours(24 * 40);
    app.post(
        "/v1/accounts/ev/membership",
        json!({"action": "activate", "period_end": period_end.to_string()}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/accounts/ev/purchases",
        json!({"order_id": "ev-order-1", "package": "credits_100"}),
    )
    .await
    .expect(201);
    let page = events(&app, "account_id=ev").await;
    assert_eq!(
        types(&page),
        [
            "membership.changed",
            "credits.granted",
            "credits.granted",
            "membership.credits_distributed",
            "credits.granted",
            "purchase.recorded",
        ]
    );
    let first = &page["events"][0];
    assert_eq!(first["id"], "ev1_ev");
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["account_id"], "ev");
    assert_eq!(first["data"]["membership"]["status"], "active");
    assert_eq!(first["data"]["previous"]["status"], "none");
    assert_eq!(first["data"]["account_id"], "ev");
    // 700 available (600 general, 100 agent): spend down below 50, then to 0.
    let purchase = &page["events"][5]["data"];
    assert_eq!(
        (purchase["order_id"].clone(), purchase["credits"].clone()),
        (json!("ev-order-1"), json!(100))
    );

    for (amount, kind) in [(-600, "general"), (-60, "agent")] {
        app.post(
            "/v1/accounts/ev/adjustments",
            json!({"amount": amount, "kind": kind, "reason": "test"}),
        )
        .await
        .expect(201);
    }
    let low = events(&app, "account_id=ev&type=balance.low").await;
    assert_eq!(low["events"][0]["data"]["total"], 40);
    assert_eq!(low["events"][0]["data"]["threshold"], 50);
    app.post(
        "/v1/accounts/ev/adjustments",
        json!({"amount": -40, "kind": "agent", "reason": "test"}),
    )
    .await
    .expect(201);
    let depleted = events(&app, "account_id=ev&type=balance.depleted").await;
    assert_eq!(depleted["events"][0]["data"]["total"], 0);

    // A hold that never reports back expires at its expires_at.
    app.grant("ev", 10).await;
    let hold = app
        .post(
            "/v1/accounts/ev/holds",
            json!({"feature": "ai_model", "ttl_seconds": 60}),
        )
        .await
        .expect(201);
    app.advance(120).await;
    let expired = events(&app, "account_id=ev&type=hold.expired").await;
    assert_eq!(expired["events"][0]["data"]["id"], hold["id"]);
    assert_eq!(expired["events"][0]["created_at"], hold["expires_at"]);

    // A bucket of 30 days is noticed 7 days before its end, then expires.
    let expires_at = app.now().await + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/ev/grants",
        json!({"kind": "general", "amount": 5, "source": "promotion",
               "expires_at": expires_at.to_string()}),
    )
    .await
    .expect(201);
    app.advance(24 * 3600 * 31).await;
    let soon = events(&app, "account_id=ev&type=credits.expiring_soon").await;
    let notice = soon["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["expires_at"] == json!(expires_at.to_string()))
        .expect("a notice for the 30-day bucket");
    assert_eq!(notice["data"]["remaining"], 5);
    let noticed_at: jiff::Timestamp = notice["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        noticed_at,
        expires_at - jiff::SignedDuration::from_hours(24 * 7)
    );
    let gone = events(&app, "account_id=ev&type=credits.expired").await;
    assert!(
        gone["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["created_at"] == json!(expires_at.to_string()) && e["data"]["amount"] == 5)
    );

    // Sequences run from 1 without gaps.
    let all = events(&app, "account_id=ev&limit=500").await;
    let sequences: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn a_refused_request_records_no_event() {
    let app = app().await;
    app.grant("poor", 1).await;
    let before = events(&app, "account_id=poor").await;
    app.post(
        "/v1/accounts/poor/charges",
        json!({"feature": "private_model"}),
    )
    .await
    .problem(402, "insufficient_credits");
    app.post(
        "/v1/accounts/nobody/charges",
        json!({"feature": "ai_model"}),
    )
    .await
    .problem(402, "insufficient_credits");
    let after = events(&app, "account_id=poor").await;
    assert_eq!(types(&before), types(&after));
    assert!(types(&events(&app, "account_id=nobody").await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn events_page_oldest_first_and_the_cursor_says_where_to_poll_next() {
    let app = app().await;
    for account in ["p1", "p2", "p3"] {
        app.grant(account, 5).await;
    }
    let first = events(&app, "limit=2").await;
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    assert_eq!(first["events"][0]["account_id"], "p1");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let rest = events(&app, &format!("after={cursor}")).await;
    assert_eq!(rest["events"][0]["account_id"], "p3");
    // At the end the cursor still says where to poll; new events appear there.
    let end = rest["next_cursor"].as_str().unwrap().to_owned();
    let empty = events(&app, &format!("after={end}")).await;
    assert!(empty["events"].as_array().unwrap().is_empty());
    assert_eq!(empty["next_cursor"], json!(end));
    app.grant("p4", 5).await;
    let new = events(&app, &format!("after={end}")).await;
    assert_eq!(new["events"][0]["account_id"], "p4");
    // One event by id; unknown ones are 404; a cursor of another list is refused.
    let id = new["events"][0]["id"].as_str().unwrap();
    let one = app.get(&format!("/v1/events/{id}")).await.expect(200);
    assert_eq!(one["type"], "credits.granted");
    app.get("/v1/events/ev99_p4")
        .await
        .problem(404, "not_found");
    app.get("/v1/events/nonsense")
        .await
        .problem(404, "not_found");
    app.get("/v1/events?after=djE6NDI")
        .await
        .problem(422, "invalid_request");
    app.get("/v1/events?type=credits.lost")
        .await
        .problem(422, "invalid_request");
    // Viewers and account tokens may not read events.
    let viewer = app.key("viewer").await;
    app.call("GET", "/v1/events", &viewer, None)
        .await
        .problem(403, "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn endpoints_are_checked_listed_and_keep_their_secret_to_the_first_answer() {
    let app = app().await;
    for bad in [
        json!({"url": "ftp://example.com/x"}),
        json!({"url": "not a url"}),
        json!({"url": "http://example.com/x", "event_types": []}),
        json!({"url": "http://example.com/x", "event_types": ["credits.lost"]}),
    ] {
        app.post("/v1/webhook-endpoints", bad)
            .await
            .problem(422, "invalid_request");
    }
    let created = endpoint(&app, "http://127.0.0.1:9/x", Some(&["balance.low"])).await;
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["event_types"], json!(["balance.low"]));
    let id = created["id"].as_str().unwrap();
    let listed = app.get("/v1/webhook-endpoints").await.expect(200);
    assert_eq!(listed["endpoints"][0]["id"], json!(id));
    assert!(listed["endpoints"][0].get("secret").is_none());
    let one = app
        .get(&format!("/v1/webhook-endpoints/{id}"))
        .await
        .expect(200);
    assert!(one.get("secret").is_none());
    let service = app.key("service").await;
    app.call("GET", "/v1/webhook-endpoints", &service, None)
        .await
        .problem(403, "forbidden");
    app.call(
        "DELETE",
        &format!("/v1/webhook-endpoints/{id}"),
        ADMIN,
        None,
    )
    .await
    .expect(204);
    app.get(&format!("/v1/webhook-endpoints/{id}"))
        .await
        .problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn deliveries_are_signed_by_standard_webhooks_and_carry_the_event() {
    let app = app().await;
    let mut receiver = receiver().await;
    let created = endpoint(&app, &receiver.url, None).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    app.grant("hooked", 7).await;
    let got = receiver.next_of("credits.granted").await;
    assert!(got.verify(&secret), "the signature verifies");
    let body = got.json();
    assert_eq!(body["data"]["account_id"], "hooked");
    assert_eq!(body["data"]["sequence"], 1);
    assert_eq!(body["data"]["granted"], 7);
    let event = app
        .get(&format!("/v1/events/{}", got.id()))
        .await
        .expect(200);
    assert_eq!(body["timestamp"], event["created_at"]);
    assert_eq!(body["data"], event["data"]);

    // Rotation: the old secret stops signing at once.
    let rotated = app
        .post(
            &format!(
                "/v1/webhook-endpoints/{}/rotate-secret",
                created["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(200);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    app.grant("hooked", 1).await;
    let got = receiver.next_of("credits.granted").await;
    assert!(got.verify(new_secret));
    assert!(!got.verify(&secret));

    // Redelivery: a new round, the same webhook-id.
    let id = got.id().to_owned();
    let answer = app
        .post(&format!("/v1/events/{id}/redeliver"), json!({}))
        .await
        .expect(202);
    assert_eq!(answer["endpoint_ids"], json!([created["id"]]));
    let again = receiver.next().await;
    assert_eq!(again.id(), id);
    app.stop().await;
}

#[tokio::test]
async fn failed_deliveries_follow_the_retry_schedule_on_the_test_clock() {
    let app = app().await;
    let mut receiver = receiver().await;
    receiver.status.store(500, Ordering::SeqCst);
    let created = endpoint(&app, &receiver.url, Some(&["credits.granted"])).await;
    let endpoint_id = created["id"].as_str().unwrap().to_owned();
    app.grant("retried", 3).await;
    let first = receiver.next().await;
    let attempts = |count: usize| {
        let app = &app;
        let endpoint_id = endpoint_id.clone();
        async move {
            loop {
                let page = app
                    .get(&format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"))
                    .await
                    .expect(200);
                if page["deliveries"].as_array().unwrap().len() >= count {
                    return page;
                }
                tokio::task::yield_now().await;
            }
        }
    };
    let page = tokio::time::timeout(Duration::from_secs(30), attempts(1))
        .await
        .unwrap();
    let attempt = &page["deliveries"][0];
    assert_eq!(attempt["event_id"], json!(first.id()));
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["status_code"], 500);
    let at: jiff::Timestamp = attempt["at"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = attempt["next_attempt_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next.duration_since(at), jiff::SignedDuration::from_secs(5));
    // Nothing more until the service clock reaches the next attempt.
    app.advance(5).await;
    let second = receiver.next().await;
    assert_eq!(second.id(), first.id());
    let page = tokio::time::timeout(Duration::from_secs(30), attempts(2))
        .await
        .unwrap();
    let attempt = &page["deliveries"][0];
    assert_eq!(attempt["attempt"], 2);
    let at: jiff::Timestamp = attempt["at"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = attempt["next_attempt_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next.duration_since(at), jiff::SignedDuration::from_mins(5));
    // The receiver recovers: the third attempt delivers, and nothing more is due.
    receiver.status.store(200, Ordering::SeqCst);
    app.advance(300).await;
    receiver.next().await;
    let page = tokio::time::timeout(Duration::from_secs(30), attempts(3))
        .await
        .unwrap();
    assert_eq!(page["deliveries"][0]["status_code"], 200);
    assert_eq!(page["deliveries"][0]["next_attempt_at"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_endpoint_gets_no_delivery_and_a_hanging_one_slows_no_charge() {
    let app = app().await;
    let mut live = receiver().await;
    let mut hanging = receiver().await;
    hanging.status.store(0, Ordering::SeqCst);
    let mut deleted = receiver().await;
    endpoint(&app, &live.url, Some(&["credits.granted"])).await;
    endpoint(&app, &hanging.url, Some(&["credits.granted"])).await;
    let gone = endpoint(&app, &deleted.url, Some(&["credits.granted"])).await;
    app.call(
        "DELETE",
        &format!("/v1/webhook-endpoints/{}", gone["id"].as_str().unwrap()),
        ADMIN,
        None,
    )
    .await
    .expect(204);
    app.grant("busy", 1_000).await;
    live.next().await;
    hanging.next().await;
    // The hanging receiver holds its request; charges go on regardless.
    for _ in 0..20 {
        app.post("/v1/accounts/busy/charges", json!({"feature": "ai_model"}))
            .await
            .expect(201);
    }
    app.grant("busy", 1).await;
    live.next().await;
    assert!(
        deleted.received.try_recv().is_err(),
        "no delivery to a deleted endpoint"
    );
    app.stop().await;
}
