//! The account endpoints of SPEC §6 with their answers and refusals.

use serde_json::{Value, json};

use crate::app;

fn ids(allocations: &Value) -> Vec<(String, u64)> {
    allocations
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["bucket_id"].as_str().unwrap().to_owned(),
                a["amount"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn accounts_are_created_updated_shown_and_unknown_ones_not_found() {
    let app = app().await;
    app.get("/v1/accounts/a1").await.problem(404, "not_found");
    app.get("/v1/accounts/a1/balance")
        .await
        .problem(404, "not_found");
    app.get("/v1/accounts/a1/ledger")
        .await
        .problem(404, "not_found");
    let created = app
        .put("/v1/accounts/a1", json!({"timezone": "Asia/Shanghai"}))
        .await
        .expect(201);
    assert_eq!(
        (&created["id"], &created["timezone"]),
        (&json!("a1"), &json!("Asia/Shanghai"))
    );
    assert_eq!(created["membership"]["status"], "none");
    let same = app.put("/v1/accounts/a1", json!({})).await.expect(200);
    assert_eq!(same["timezone"], "Asia/Shanghai");
    app.put("/v1/accounts/a1", json!({"timezone": "Mars/Base"}))
        .await
        .problem(422, "invalid_request");
    // A write on an unknown account creates it in the default zone.
    app.grant("a2", 1).await;
    assert_eq!(
        app.get("/v1/accounts/a2").await.expect(200)["timezone"],
        "UTC"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_write_does_not_create_the_account() {
    let app = app().await;
    app.post("/v1/accounts/new/charges", json!({"feature": "ai_model"}))
        .await
        .problem(402, "insufficient_credits");
    app.get("/v1/accounts/new").await.problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn membership_trial_activate_cancel_and_their_refusals() {
    let app = app().await;
    let path = "/v1/accounts/m1/membership";
    app.post(path, json!({"action": "cancel"}))
        .await
        .problem(422, "invalid_request");
    app.post(path, json!({"action": "dance"}))
        .await
        .problem(422, "invalid_request");
    let trial = app
        .post(path, json!({"action": "start_trial"}))
        .await
        .expect(200);
    assert_eq!(
        (&trial["membership"]["status"], &trial["membership"]["plan"]),
        (&json!("trial"), &json!("pro"))
    );
    app.post(path, json!({"action": "start_trial"}))
        .await
        .problem(422, "invalid_request");
    app.post(
        path,
        json!({"action": "activate", "plan": "gold", "period_end": "2099-01-01T00:00:00Z"}),
    )
    .await
    .problem(422, "invalid_request");
    app.post(path, json!({"action": "activate"}))
        .await
        .problem(422, "invalid_request");
    app.post(
        path,
        json!({"action": "activate", "period_end": "2000-01-01T00:00:00Z"}),
    )
    .await
    .problem(422, "invalid_request");
    let end = (app.now().await + jiff::SignedDuration::from_hours(24 * 40)).to_string();
    let active = app
        .post(path, json!({"action": "activate", "period_end": end}))
        .await
        .expect(200);
    assert_eq!(active["membership"]["status"], "active");
    assert_eq!(app.balance("m1").await["total"], 50 + 500 + 100);
    let lapsed = app
        .post(path, json!({"action": "cancel"}))
        .await
        .expect(200);
    assert_eq!(lapsed["membership"]["status"], "lapsed");
    assert_eq!(app.balance("m1").await["general"]["frozen"], 500);
    app.stop().await;
}

#[tokio::test]
async fn daily_login_grants_once_per_local_day() {
    let app = app().await;
    let first = app
        .post("/v1/accounts/d1/daily-login", json!({}))
        .await
        .expect(200);
    assert_eq!(first["granted"], 10);
    assert!(first["bucket_id"].is_string());
    let second = app
        .post("/v1/accounts/d1/daily-login", json!({}))
        .await
        .expect(200);
    assert_eq!(
        (&second["granted"], &second["local_date"]),
        (&json!(0), &first["local_date"])
    );
    assert!(second.get("bucket_id").is_none());
    app.post("/v1/accounts/d1/daily-login", json!({"extra": 1}))
        .await
        .problem(422, "invalid_request");
    assert_eq!(app.balance("d1").await["agent"]["available"], 10);
    app.stop().await;
}

#[tokio::test]
async fn purchases_are_for_members_once_per_order() {
    let app = app().await;
    let path = "/v1/accounts/p1/purchases";
    app.post(path, json!({"order_id": "o1", "credits": 100}))
        .await
        .problem(403, "members_only");
    let end = (app.now().await + jiff::SignedDuration::from_hours(24 * 40)).to_string();
    app.post(
        "/v1/accounts/p1/membership",
        json!({"action": "activate", "period_end": end}),
    )
    .await
    .expect(200);
    let body = json!({"order_id": "o1", "package": "credits_100", "paid": {"amount_minor": 499, "currency": "USD"}});
    let first = app.post(path, body.clone()).await.expect(201);
    assert_eq!(
        (&first["credits"], &first["account_id"]),
        (&json!(100), &json!("p1"))
    );
    assert_eq!(app.post(path, body).await.expect(200), first);
    // A package counts as its credits.
    assert_eq!(
        app.post(path, json!({"order_id": "o1", "credits": 100}))
            .await
            .expect(200),
        first
    );
    app.post(path, json!({"order_id": "o1", "credits": 101}))
        .await
        .problem(409, "idempotency_conflict");
    app.post(
        "/v1/accounts/p2/purchases",
        json!({"order_id": "o1", "credits": 100}),
    )
    .await
    .problem(409, "idempotency_conflict");
    for bad in [
        json!({"order_id": "o2", "credits": 100, "package": "credits_100"}),
        json!({"order_id": "o2"}),
        json!({"order_id": "o2", "package": "credits_7"}),
        json!({"order_id": "o2", "credits": 100, "paid_at": "2099-01-01T00:00:00Z"}),
        json!({"order_id": "o 2", "credits": 100}),
        json!({"order_id": "o2", "credits": 100, "paid": {"amount_minor": -1, "currency": "USD"}}),
    ] {
        app.post(path, bad).await.problem(422, "invalid_request");
    }
    assert_eq!(app.balance("p1").await["general"]["available"], 600);
    app.stop().await;
}

#[tokio::test]
async fn a_hold_reserves_then_captures_for_the_delivered_quantity() {
    let app = app().await;
    let bucket = app.grant("h1", 20).await;
    let hold = app
        .post(
            "/v1/accounts/h1/holds",
            json!({"feature": "agent.image_generation", "quantity": 4, "reference": "job-9"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (&hold["amount"], &hold["status"], &hold["reference"]),
        (&json!(8), &json!("pending"), &json!("job-9"))
    );
    assert_eq!(
        ids(&hold["allocations"]),
        [(bucket["id"].as_str().unwrap().to_owned(), 8)]
    );
    let path = format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(app.get(&path).await.expect(200)["status"], "pending");
    let balance = app.balance("h1").await;
    assert_eq!(
        (
            &balance["general"]["available"],
            &balance["general"]["held"]
        ),
        (&json!(12), &json!(8))
    );
    app.post(&format!("{path}/capture"), json!({"quantity": 5}))
        .await
        .problem(422, "invalid_request");
    let captured = app
        .post(&format!("{path}/capture"), json!({"quantity": 1}))
        .await
        .expect(200);
    assert_eq!(
        (&captured["captured_amount"], &captured["refunded_amount"]),
        (&json!(2), &json!(6))
    );
    app.post(&format!("{path}/capture"), json!({}))
        .await
        .problem(409, "hold_not_pending");
    app.post(&format!("{path}/release"), json!({}))
        .await
        .problem(409, "hold_not_pending");
    assert_eq!(app.get(&path).await.expect(200)["status"], "captured");
    assert_eq!(app.balance("h1").await["total"], 18);
    app.stop().await;
}

#[tokio::test]
async fn release_returns_everything_and_a_pending_hold_expires_at_its_ttl() {
    let app = app().await;
    app.grant("h2", 10).await;
    let hold = app
        .post(
            "/v1/accounts/h2/holds",
            json!({"feature": "ai_model", "ttl_seconds": 60}),
        )
        .await
        .expect(201);
    let released = app
        .post(
            &format!("/v1/holds/{}/release", hold["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(
        (&released["status"], &released["refunded_amount"]),
        (&json!("released"), &json!(4))
    );
    let hold = app
        .post(
            "/v1/accounts/h2/holds",
            json!({"feature": "ai_model", "ttl_seconds": 60}),
        )
        .await
        .expect(201);
    app.advance(60).await;
    let path = format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(app.get(&path).await.expect(200)["status"], "expired");
    assert_eq!(app.balance("h2").await["total"], 10);
    for ttl in [0, 86_401] {
        app.post(
            "/v1/accounts/h2/holds",
            json!({"feature": "ai_model", "ttl_seconds": ttl}),
        )
        .await
        .problem(422, "invalid_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn uses_are_refused_for_unknown_features_missing_tiers_and_short_balances() {
    let app = app().await;
    app.grant("u1", 5).await;
    app.post("/v1/accounts/u1/charges", json!({"feature": "teleport"}))
        .await
        .problem(422, "unknown_feature");
    app.post(
        "/v1/accounts/u1/charges",
        json!({"feature": "ai_model", "tier": "premium"}),
    )
    .await
    .problem(422, "tier_not_available");
    app.post(
        "/v1/accounts/u1/charges",
        json!({"feature": "ai_model", "quantity": 0}),
    )
    .await
    .problem(422, "invalid_request");
    app.post(
        "/v1/accounts/u1/charges",
        json!({"feature": "ai_model", "ttl_seconds": 5}),
    )
    .await
    .problem(422, "invalid_request");
    let refused = app
        .post("/v1/accounts/u1/holds", json!({"feature": "private_model"}))
        .await
        .problem(402, "insufficient_credits");
    assert_eq!(
        (&refused["required"], &refused["available"]),
        (&json!(20), &json!(5))
    );
    for missing in [
        "/v1/holds/h1_u1",
        "/v1/holds/h9_nobody",
        "/v1/holds/garbage",
    ] {
        app.get(missing).await.problem(404, "not_found");
    }
    app.post("/v1/holds/h7_u1/capture", json!({}))
        .await
        .problem(404, "not_found");
    assert_eq!(app.balance("u1").await["total"], 5);
    app.stop().await;
}

#[tokio::test]
async fn adjustments_add_compensation_or_take_in_consumption_order() {
    let app = app().await;
    let path = "/v1/accounts/j1/adjustments";
    let added = app
        .post(
            path,
            json!({"amount": 30, "kind": "general", "reason": "outage"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (&added["type"], &added["amount"], &added["source"]),
        (&json!("adjust"), &json!(30), &json!("compensation"))
    );
    let taken = app
        .post(
            path,
            json!({"amount": -10, "kind": "general", "reason": "double grant"}),
        )
        .await
        .expect(201);
    assert_eq!(taken["amount"], -10);
    app.post(
        path,
        json!({"amount": -100, "kind": "general", "reason": "too much"}),
    )
    .await
    .problem(402, "insufficient_credits");
    for bad in [
        json!({"amount": 0, "kind": "general", "reason": "zero"}),
        json!({"amount": 5, "kind": "general", "reason": ""}),
        json!({"amount": 5, "kind": "gold", "reason": "x"}),
    ] {
        app.post(path, bad).await.problem(422, "invalid_request");
    }
    assert_eq!(app.balance("j1").await["total"], 20);
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_pages_newest_first_with_an_opaque_cursor_and_filters() {
    let app = app().await;
    for amount in 1..=5 {
        app.grant("l1", amount).await;
    }
    app.post("/v1/accounts/l1/charges", json!({"feature": "ai_extender"}))
        .await
        .expect(201);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map_or("limit=2".to_owned(), |c| format!("limit=2&cursor={c}"));
        let page = app
            .get(&format!("/v1/accounts/l1/ledger?{query}"))
            .await
            .expect(200);
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        seen.extend(entries.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["e6", "e5", "e4", "e3", "e2", "e1"]);
    let debits = app
        .get("/v1/accounts/l1/ledger?type=debit")
        .await
        .expect(200);
    let entries = debits["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (&entries[0]["amount"], &entries[0]["feature"]),
        (&json!(-1), &json!("ai_extender"))
    );
    assert!(entries[0]["hold_id"].is_string() && entries[0]["description"].is_string());
    let now = app.now().await;
    let until_now = app
        .get(&format!("/v1/accounts/l1/ledger?until={now}"))
        .await
        .expect(200);
    assert!(
        until_now["entries"].as_array().unwrap().is_empty(),
        "until is exclusive"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_records_time_effects_before_it_is_read() {
    let app = app().await;
    app.post(
        "/v1/accounts/x1/grants",
        json!({"kind": "agent", "amount": 9, "source": "promotion", "valid_for": "PT1H"}),
    )
    .await
    .expect(201);
    app.advance(3_600).await;
    let page = app.get("/v1/accounts/x1/ledger").await.expect(200);
    let newest = &page["entries"][0];
    assert_eq!(
        (&newest["type"], &newest["amount"]),
        (&json!("expire"), &json!(-9))
    );
    assert_eq!(app.balance("x1").await["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_command_still_records_the_time_effects_it_caught_up_on() {
    let app = app().await;
    app.post(
        "/v1/accounts/late/grants",
        json!({"kind": "general", "amount": 10, "source": "promotion", "valid_for": "PT1H"}),
    )
    .await
    .expect(201);
    app.advance(2 * 3600).await;
    // The promotion expired an hour ago; the charge finds nothing to pay with.
    app.post("/v1/accounts/late/charges", json!({"feature": "ai_model"}))
        .await
        .problem(402, "insufficient_credits");
    // The store has the expiry already: the refusal's catch-up was kept, not redone by
    // whoever writes next.
    let id = creditd_ledger::AccountId::parse("late").unwrap();
    let stored = app.service.core.store.account(&id).await.unwrap().unwrap();
    assert!(stored.account.buckets().is_empty(), "{:?}", stored.account);
    assert_eq!(stored.entry_seq, 2, "the grant and its expiry");
    app.stop().await;
}

#[tokio::test]
async fn an_instant_finer_than_a_microsecond_names_the_same_purchase_on_a_retry() {
    let app = app().await;
    let end = app.now().await + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/fine/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    // Seven fractional digits, as .NET writes them; the store keeps microseconds.
    let now = app.now().await.as_microsecond();
    let seconds = jiff::Timestamp::from_second(now.div_euclid(1_000_000)).unwrap();
    let micros = now.rem_euclid(1_000_000);
    let paid_at = format!(
        "{}.{micros:06}1Z",
        seconds.to_string().trim_end_matches('Z')
    );
    let body = json!({"order_id": "o-fine", "credits": 5, "paid_at": paid_at});
    let first = app
        .post("/v1/accounts/fine/purchases", body.clone())
        .await
        .expect(201);
    app.advance(1).await;
    // Folded or not, the retry is the same purchase and answers the first body.
    let again = app
        .post("/v1/accounts/fine/purchases", body)
        .await
        .expect(200);
    assert_eq!(first, again);
    app.stop().await;
}
