//! Requests the SPEC does not allow: each gets its problem and changes nothing.

use serde_json::json;

use crate::{ADMIN, app};

#[tokio::test]
async fn a_body_that_is_not_json_is_400_and_json_breaking_a_rule_is_422() {
    let app = app().await;
    let reply = app
        .call_with(
            "POST",
            "/v1/accounts/a1/grants",
            ADMIN,
            None,
            &[("content-type", "application/json")],
        )
        .await;
    // An empty body is `{}`: a grant without fields breaks a rule.
    reply.problem(422, "invalid_request");
    let unparsable = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/accounts/a1/grants")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"kind\":"))
        .unwrap();
    app.send(unparsable).await.problem(400, "invalid_request");
    for body in [
        json!({"kind": "general", "amount": "7", "source": "promotion"}),
        json!({"kind": "general", "amount": 7, "source": "promotion", "colour": "red"}),
        json!({"kind": "general", "amount": 0, "source": "promotion"}),
        json!({"kind": "general", "amount": 1_000_000_001_u64, "source": "promotion"}),
        json!({"kind": "silver", "amount": 7, "source": "promotion"}),
        json!({"kind": "general", "amount": 7, "source": "trial"}),
        json!({"kind": "general", "amount": 7, "source": "promotion", "valid_for": "PT0S"}),
        json!({"kind": "general", "amount": 7, "source": "promotion", "valid_for": "P1D",
               "expires_at": "2099-01-01T00:00:00Z"}),
        json!({"kind": "general", "amount": 7, "source": "promotion",
               "expires_at": "2000-01-01T00:00:00Z"}),
    ] {
        app.post("/v1/accounts/a1/grants", body)
            .await
            .problem(422, "invalid_request");
    }
    app.get("/v1/accounts/a1").await.problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_body_of_another_content_type_is_415() {
    let app = app().await;
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/accounts/a1/grants")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    app.send(request).await.problem(415, "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = app().await;
    let note = "x".repeat(70_000);
    let body = json!({"kind": "general", "amount": 1, "source": "promotion", "note": note});
    app.post("/v1/accounts/a1/grants", body)
        .await
        .problem(413, "payload_too_large");
    app.get("/v1/accounts/a1").await.problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn account_ids_outside_the_alphabet_are_422() {
    let app = app().await;
    for id in ["-lead", "has%20space", "a%2Fb", &"a".repeat(129)] {
        app.put(&format!("/v1/accounts/{id}"), json!({}))
            .await
            .problem(422, "invalid_request");
    }
    app.put("/v1/accounts/user_1.a:b@c-d", json!({}))
        .await
        .expect(201);
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_unknown_methods_405_as_problems() {
    let app = app().await;
    app.get("/v1/nothing").await.problem(404, "not_found");
    app.call("DELETE", "/v1/accounts/a1", ADMIN, None)
        .await
        .problem(405, "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn ledger_parameters_are_checked() {
    let app = app().await;
    app.grant("a1", 5).await;
    for query in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "type=gift",
        "since=yesterday",
        "cursor=not-a-cursor",
    ] {
        app.get(&format!("/v1/accounts/a1/ledger?{query}"))
            .await
            .problem(422, "invalid_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_problems_repeat_it() {
    let app = crate::app().await;
    let kept = app
        .call_with(
            "GET",
            "/v1/accounts/nobody",
            crate::ADMIN,
            None,
            &[("x-request-id", "support-42")],
        )
        .await;
    assert_eq!(crate::header(&kept, "x-request-id"), "support-42");
    let problem = kept.problem(404, "not_found");
    assert_eq!(problem["request_id"], "support-42");
    let made = app.call("GET", "/healthz", "", None).await;
    assert_eq!(crate::header(&made, "x-request-id").len(), 32);
    let odd = app
        .call_with(
            "GET",
            "/v1/accounts/nobody",
            "",
            None,
            &[("x-request-id", &"x".repeat(500))],
        )
        .await;
    let id = crate::header(&odd, "x-request-id").to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(odd.problem(401, "unauthorized")["request_id"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let closed = crate::app().await;
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        ),
    ];
    let answer = closed
        .call_with("OPTIONS", "/v1/accounts/a1/holds", "", None, &preflight)
        .await;
    assert_eq!(crate::header(&answer, "access-control-allow-origin"), "");
    closed.stop().await;

    let open = crate::app_configured(creditd_server::clock::Clock::test(), |core| {
        core.cors_origins =
            creditd_server::http::parse_cors_origins("https://app.example.com").unwrap();
    })
    .await;
    let answer = open
        .call_with("OPTIONS", "/v1/accounts/a1/holds", "", None, &preflight)
        .await;
    assert!(answer.status.is_success(), "{}", answer.status);
    assert_eq!(
        crate::header(&answer, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(crate::header(&answer, "access-control-allow-headers").contains("idempotency-key"));
    let elsewhere = [("origin", "https://evil.example.net")];
    let answer = open
        .call_with("GET", "/v1/catalog", crate::ADMIN, None, &elsewhere)
        .await;
    assert_eq!(crate::header(&answer, "access-control-allow-origin"), "");
    let answer = open
        .call_with(
            "GET",
            "/v1/catalog",
            crate::ADMIN,
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(
        crate::header(&answer, "access-control-allow-origin"),
        "https://app.example.com"
    );
    open.stop().await;
}

#[test]
fn cors_origins_must_be_written_as_browsers_send_them() {
    use creditd_server::http::parse_cors_origins;
    assert_eq!(parse_cors_origins("").unwrap().len(), 0);
    assert_eq!(
        parse_cors_origins("https://a.example, http://localhost:3000")
            .unwrap()
            .len(),
        2
    );
    for wrong in [
        "https://a.example/",
        "https://a.example/path",
        "ftp://a.example",
        "a.example",
    ] {
        assert!(parse_cors_origins(wrong).is_err(), "{wrong}");
    }
}

#[tokio::test]
async fn a_repeated_key_is_400_and_refusals_name_the_field_in_words() {
    let app = app().await;
    let raw = |body: &'static str| {
        axum::http::Request::builder()
            .method("POST")
            .uri("/v1/accounts/a1/grants")
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let twice = app
        .send(raw(
            r#"{"kind":"general","amount":1,"amount":500,"source":"promotion"}"#,
        ))
        .await
        .problem(400, "invalid_request");
    assert!(
        twice["detail"]
            .as_str()
            .unwrap()
            .contains("\"amount\" appears twice"),
        "{twice}"
    );
    app.get("/v1/accounts/a1").await.problem(404, "not_found");

    let half = app
        .send(raw(
            r#"{"kind":"general","amount":1.5,"source":"promotion"}"#,
        ))
        .await
        .problem(422, "invalid_request");
    assert_eq!(
        half["detail"],
        "amount must be a whole number from 1 to 1000000000, not 1.5"
    );
    let far = app
        .send(raw(r#"{"kind":"general","amount":5,"source":"promotion","expires_at":"9999-12-31T23:59:59Z"}"#))
        .await
        .problem(422, "invalid_request");
    let said = far["detail"].as_str().unwrap();
    assert!(
        said.starts_with("expires_at must be an RFC 3339 instant"),
        "{said}"
    );
    assert!(!said.contains("civil datetime"), "{said}");
    let whole = app
        .send(raw(
            r#"{"kind":"general","amount":3125.0,"source":"promotion"}"#,
        ))
        .await
        .expect(201);
    assert_eq!(whole["granted"], 3125);
    app.stop().await;
}
