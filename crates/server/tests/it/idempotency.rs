//! `Idempotency-Key`: the first answer replays, a different request conflicts, and
//! concurrent duplicates have one effect.

use serde_json::json;

use crate::{ADMIN, app};

#[tokio::test]
async fn the_same_key_and_request_replays_the_first_answer_refusals_included() {
    let app = app().await;
    let key = [("idempotency-key", "charge-1")];
    let charge = json!({"feature": "private_model"});
    let first = app
        .call_with(
            "POST",
            "/v1/accounts/a1/charges",
            ADMIN,
            Some(charge.clone()),
            &key,
        )
        .await;
    assert!(first.headers.get("idempotent-replayed").is_none());
    let refused = first.problem(402, "insufficient_credits");
    assert_eq!(
        (&refused["required"], &refused["available"]),
        (&json!(20), &json!(0))
    );

    app.grant("a1", 100).await;
    let replay = app
        .call_with("POST", "/v1/accounts/a1/charges", ADMIN, Some(charge), &key)
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.problem(402, "insufficient_credits"), refused);
    assert_eq!(
        app.balance("a1").await["total"],
        100,
        "the replay charged nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_conflict_and_changes_nothing() {
    let app = app().await;
    let key = [("idempotency-key", "grant-1")];
    let grant = |amount: u64| json!({"kind": "general", "amount": amount, "source": "promotion"});
    app.call_with(
        "POST",
        "/v1/accounts/a1/grants",
        ADMIN,
        Some(grant(7)),
        &key,
    )
    .await
    .expect(201);
    app.call_with(
        "POST",
        "/v1/accounts/a1/grants",
        ADMIN,
        Some(grant(8)),
        &key,
    )
    .await
    .problem(409, "idempotency_conflict");
    app.call_with(
        "POST",
        "/v1/accounts/a2/grants",
        ADMIN,
        Some(grant(7)),
        &key,
    )
    .await
    .problem(409, "idempotency_conflict");
    assert_eq!(app.balance("a1").await["total"], 7);
    app.get("/v1/accounts/a2").await.problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn keys_are_scoped_to_the_api_key_that_sent_them() {
    let app = app().await;
    let other = app.key("service").await;
    let key = [("idempotency-key", "shared")];
    let grant = json!({"kind": "general", "amount": 5, "source": "promotion"});
    app.call_with(
        "POST",
        "/v1/accounts/a1/grants",
        ADMIN,
        Some(grant.clone()),
        &key,
    )
    .await
    .expect(201);
    let second = app
        .call_with("POST", "/v1/accounts/a1/grants", &other, Some(grant), &key)
        .await;
    assert!(second.headers.get("idempotent-replayed").is_none());
    second.expect(201);
    assert_eq!(app.balance("a1").await["total"], 10);
    app.stop().await;
}

#[tokio::test]
async fn key_order_and_spacing_of_the_body_do_not_make_another_request() {
    let app = app().await;
    let first = r#"{"kind":"general","amount":3,"source":"promotion"}"#;
    let again = r#"{ "source": "promotion", "amount": 3, "kind": "general" }"#;
    for (body, replayed) in [(first, false), (again, true)] {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/accounts/a1/grants")
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .header("idempotency-key", "k")
            .body(axum::body::Body::from(body))
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.headers.get("idempotent-replayed").is_some(), replayed);
        reply.expect(201);
    }
    assert_eq!(app.balance("a1").await["total"], 3);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_identical_requests_have_one_effect() {
    let app = app().await;
    app.grant("a1", 1_000).await;
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let router = app.router.clone();
        answers.spawn(async move {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri("/v1/accounts/a1/charges")
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "once")
                .body(axum::body::Body::from(r#"{"feature":"private_model"}"#))
                .unwrap();
            tower::ServiceExt::oneshot(router, request)
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = answers.join_next().await {
        assert_eq!(status.unwrap().as_u16(), 201);
    }
    assert_eq!(app.balance("a1").await["total"], 980, "charged once");
    app.stop().await;
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = app().await;
    let long = "k".repeat(256);
    let grant = json!({"kind": "general", "amount": 5, "source": "promotion"});
    app.call_with(
        "POST",
        "/v1/accounts/a1/grants",
        ADMIN,
        Some(grant),
        &[("idempotency-key", &long)],
    )
    .await
    .problem(422, "invalid_request");
    app.stop().await;
}
