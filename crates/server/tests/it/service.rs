//! Service-wide endpoints: health, metrics, OpenAPI, the catalog and the test clock.

use creditd_server::clock::Clock;
use serde_json::json;

use crate::{ADMIN, app, app_with};

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_credits_by_fate() {
    let app = app().await;
    app.grant("a1", 10).await;
    app.post("/v1/accounts/a1/charges", json!({"feature": "ai_model"}))
        .await
        .expect(201);
    let text = app.get("/metrics").await;
    assert_eq!(text.status.as_u16(), 200);
    let text = text.body.as_str().unwrap().to_owned();
    for line in [
        r#"creditd_http_requests_total{route="/v1/accounts/{id}/grants",method="POST",status="201"} 1"#,
        r#"creditd_credits_granted_total{kind="general"} 10"#,
        r#"creditd_credits_debited_total{kind="general"} 4"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(text.contains("creditd_http_request_duration_seconds_bucket"));
    app.stop().await;
}

#[tokio::test]
async fn unknown_methods_add_no_series_and_both_formats_are_served() {
    let app = app().await;
    app.call("BREW", "/v1/accounts/a1", ADMIN, None).await;
    app.call("BREW", "/nowhere", ADMIN, None).await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    // The count of accounts adds its series once it has run; the service starts one at
    // once, in a task of its own: counted here first, so it cannot end between the two
    // readings.
    creditd_server::jobs::tally_accounts(&app.service.core).await;
    app.get("/metrics").await;
    let before = app.get("/metrics").await;
    assert_eq!(
        crate::header(&before, "content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let before = series(crate::html(&before));
    for length in 1..40 {
        let method = "X".repeat(length * 100);
        app.call(&method, &format!("/nowhere/{length}"), "", None)
            .await;
    }
    let after = app.get("/metrics").await;
    let text = crate::html(&after);
    assert_eq!(series(text), before, "{text}");
    assert!(text.lines().all(|line| line.len() < 300), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains("# TYPE creditd_http_requests_total counter"));
    assert!(!text.contains("# EOF"));
    let openmetrics = app
        .call_with(
            "GET",
            "/metrics",
            ADMIN,
            None,
            &[("accept", "application/openmetrics-text;version=1.0.0")],
        )
        .await;
    assert!(
        crate::header(&openmetrics, "content-type").starts_with("application/openmetrics-text")
    );
    assert!(crate::html(&openmetrics).ends_with("# EOF\n"));
    app.stop().await;
}

#[tokio::test]
async fn replayed_answers_are_counted() {
    let app = app().await;
    let grant = json!({"kind": "general", "amount": 1, "source": "promotion"});
    for _ in 0..2 {
        app.call_with(
            "POST",
            "/v1/accounts/r1/grants",
            ADMIN,
            Some(grant.clone()),
            &[("idempotency-key", "once")],
        )
        .await
        .expect(201);
    }
    let text = app.get("/metrics").await;
    assert!(
        crate::html(&text).contains("creditd_idempotent_replays_total 1\n"),
        "{}",
        crate::html(&text)
    );
    assert!(crate::html(&text).contains("creditd_http_server_errors_total 0\n"));
    app.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_route_of_the_router() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/accounts/{id}", "put"),
        ("/v1/accounts/{id}", "get"),
        ("/v1/accounts/{id}/membership", "post"),
        ("/v1/accounts/{id}/daily-login", "post"),
        ("/v1/accounts/{id}/grants", "post"),
        ("/v1/accounts/{id}/purchases", "post"),
        ("/v1/accounts/{id}/holds", "post"),
        ("/v1/holds/{hold_id}", "get"),
        ("/v1/holds/{hold_id}/capture", "post"),
        ("/v1/holds/{hold_id}/release", "post"),
        ("/v1/accounts/{id}/charges", "post"),
        ("/v1/accounts/{id}/adjustments", "post"),
        ("/v1/accounts/{id}/balance", "get"),
        ("/v1/accounts/{id}/ledger", "get"),
        ("/v1/catalog", "get"),
        ("/v1/accounts/{id}/tokens", "post"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{key_id}", "delete"),
        ("/v1/test-clock", "get"),
        ("/v1/test-clock", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn openapi_lists_the_names_a_field_accepts_and_links_to_what_a_post_made() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.expect(200);
    let property = |schema: &str, field: &str| {
        doc["components"]["schemas"][schema]["properties"][field]["enum"].clone()
    };
    assert_eq!(
        property("GrantRequest", "kind"),
        json!(["agent", "general"])
    );
    assert_eq!(
        property("GrantRequest", "source"),
        json!(["promotion", "compensation"])
    );
    assert_eq!(
        property("HoldRequest", "tier"),
        json!(["general", "premium", null])
    );
    assert_eq!(
        property("ApiKeyRequest", "role"),
        json!(["admin", "service", "viewer"])
    );
    // From the catalog the server was started with.
    let features = property("ChargeRequest", "feature");
    assert!(
        features
            .as_array()
            .is_some_and(|f| f.contains(&json!("agent.poster"))),
        "{features}"
    );
    let entry_type = doc["paths"]["/v1/accounts/{id}/ledger"]["get"]["parameters"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "type"))
        .map(|p| p["schema"]["enum"].clone());
    assert!(
        entry_type
            .as_ref()
            .and_then(|e| e.as_array())
            .is_some_and(|e| e.contains(&json!("debit"))),
        "{entry_type:?}"
    );
    let links = &doc["paths"]["/v1/accounts/{id}/holds"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["CaptureHold"]["operationId"], "capture");
    assert_eq!(
        links["CaptureHold"]["parameters"]["hold_id"],
        "$response.body#/id"
    );
    app.stop().await;
}

#[tokio::test]
async fn openapi_ranges_come_from_the_named_limits_and_the_catalog() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.expect(200);
    let range = |schema: &str, field: &str| {
        let property = &doc["components"]["schemas"][schema]["properties"][field];
        (property["minimum"].clone(), property["maximum"].clone())
    };
    assert_eq!(
        range("GrantRequest", "amount"),
        (json!(1), json!(1_000_000_000))
    );
    assert_eq!(
        range("AdjustmentRequest", "amount"),
        (json!(-1_000_000_000), json!(1_000_000_000))
    );
    assert_eq!(
        range("CaptureRequest", "quantity"),
        (json!(0), json!(100_000))
    );
    let policies = creditd_ledger::Catalog::default();
    let policies = policies.policies();
    assert_eq!(
        range("HoldRequest", "ttl_seconds"),
        (
            json!(policies.hold_ttl_min_seconds),
            json!(policies.hold_ttl_max_seconds)
        )
    );
    let reason = &doc["components"]["schemas"]["AdjustmentRequest"]["properties"]["reason"];
    assert_eq!(
        (&reason["minLength"], &reason["maxLength"]),
        (&json!(1), &json!(500))
    );
    let limit = doc["paths"]["/v1/accounts"]["get"]["parameters"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "limit"))
        .map(|p| p["schema"]["maximum"].clone());
    assert_eq!(limit, Some(json!(500)));
    app.stop().await;
}

#[tokio::test]
async fn the_catalog_shows_features_plans_packages_and_policies() {
    let app = app().await;
    let catalog = app.get("/v1/catalog").await.expect(200);
    assert_eq!(
        catalog["features"]["agent.poster"]["prices"],
        json!({"general": 10, "premium": 15})
    );
    assert_eq!(catalog["plans"]["pro"]["monthly_credits"], 500);
    assert_eq!(catalog["packages"]["credits_500"]["price_minor"], 1999);
    assert_eq!(catalog["policies"]["hold_ttl_default_seconds"], 900);
    app.stop().await;
}

#[tokio::test]
async fn the_test_clock_moves_forward_only() {
    let app = app().await;
    let now = app.now().await;
    let later = now + jiff::SignedDuration::from_hours(1);
    let body = app
        .post("/v1/test-clock", json!({"now": later.to_string()}))
        .await
        .expect(200);
    assert_eq!(body["now"], later.to_string());
    app.post("/v1/test-clock", json!({"now": now.to_string()}))
        .await
        .problem(409, "clock_backwards");
    app.post("/v1/test-clock", json!({"advance_seconds": -1}))
        .await
        .problem(409, "clock_backwards");
    app.post("/v1/test-clock", json!({}))
        .await
        .problem(422, "invalid_request");
    assert_eq!(app.now().await, later);
    app.stop().await;
}

#[tokio::test]
async fn without_the_test_clock_its_paths_are_404() {
    let app = app_with(Clock::System).await;
    app.get("/v1/test-clock").await.problem(404, "not_found");
    app.call(
        "POST",
        "/v1/test-clock",
        ADMIN,
        Some(json!({"advance_seconds": 5})),
    )
    .await
    .problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_sweeper_records_expiries_of_accounts_nobody_touches() {
    let app = app().await;
    app.post(
        "/v1/accounts/s1/grants",
        json!({"kind": "general", "amount": 9, "source": "promotion", "valid_for": "PT1H"}),
    )
    .await
    .expect(201);
    app.advance(3_600).await;
    creditd_server::jobs::sweep_due_accounts(&app.service.core, &app.service.writer).await;
    let metrics = app.get("/metrics").await.body;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(r#"creditd_credits_expired_total{kind="general"} 9"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn idempotency_records_are_forgotten_after_their_retention() {
    let app = app().await;
    let key = [("idempotency-key", "old")];
    let grant = json!({"kind": "general", "amount": 1, "source": "promotion"});
    app.call_with(
        "POST",
        "/v1/accounts/p1/grants",
        ADMIN,
        Some(grant.clone()),
        &key,
    )
    .await
    .expect(201);
    app.advance(47 * 3_600).await;
    creditd_server::jobs::purge_idempotency(&app.service.core).await;
    let kept = app
        .call_with(
            "POST",
            "/v1/accounts/p1/grants",
            ADMIN,
            Some(grant.clone()),
            &key,
        )
        .await;
    assert_eq!(kept.headers["idempotent-replayed"], "true", "kept for 47 h");
    app.advance(2 * 3_600).await;
    creditd_server::jobs::purge_idempotency(&app.service.core).await;
    let again = app
        .call_with("POST", "/v1/accounts/p1/grants", ADMIN, Some(grant), &key)
        .await;
    assert!(
        again.headers.get("idempotent-replayed").is_none(),
        "forgotten after 48 h"
    );
    again.expect(201);
    assert_eq!(app.balance("p1").await["total"], 2);
    app.stop().await;
}

#[tokio::test]
async fn a_long_jump_of_the_clock_is_caught_up_in_steps_and_answers_stay_bounded() {
    let app = app().await;
    app.put("/v1/accounts/m1", json!({})).await.expect(201);
    app.post(
        "/v1/accounts/m1/membership",
        json!({"action": "activate", "plan": "pro", "period_end": "2226-12-31T00:00:00Z"}),
    )
    .await
    .expect(200);
    // About 200 years: 2,399 monthly distributions are due, more than one request catches up.
    app.advance(200 * 365 * 86_400).await;
    let mut refused = 0;
    let balance = loop {
        let reply = app.get("/v1/accounts/m1/balance").await;
        if reply.status.as_u16() == 200 {
            break reply.body;
        }
        assert_eq!(crate::header(&reply, "retry-after"), "1");
        reply.problem(503, "catching_up");
        refused += 1;
        assert!(refused < 100, "catching up must progress");
        creditd_server::jobs::sweep_due_accounts(&app.service.core, &app.service.writer).await;
    };
    let listed = balance["buckets"].as_array().unwrap().len();
    assert_eq!(listed, 1_000);
    let not_listed = balance["buckets_not_listed"].as_u64().unwrap();
    assert!(not_listed >= 1_400, "{not_listed}");
    // Every distribution happened once: 500 subscription credits each, none spent.
    let general = balance["general"]["available"].as_u64().unwrap();
    assert_eq!(general % 500, 0);
    assert!(general >= 2_399 * 500, "{general}");
    app.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_problem_idempotency_and_healthz_without_a_key() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.expect(200);
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/healthz" {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["401", "403", "414", "503"] {
                let documented =
                    &responses[status]["content"]["application/problem+json"]["schema"];
                assert_eq!(documented, &problem, "{method} {path} {status}");
            }
            let takes_json = operation["requestBody"]["content"]["application/json"].is_object();
            let idempotent = operation["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "Idempotency-Key"));
            assert_eq!(takes_json, idempotent, "{method} {path}");
            if takes_json {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
    }
    let purchase = &doc["components"]["schemas"]["PurchaseRequest"];
    assert_eq!(purchase["oneOf"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused() {
    let app = app().await;
    app.call("PUT", "/v1/accounts/a1", ADMIN, Some(json!([null, null])))
        .await
        .problem(422, "invalid_request");
    app.get("/v1/accounts/a1").await.problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_count_of_every_account_sets_the_outstanding_credits_and_pending_holds() {
    let app = app().await;
    app.grant("t1", 30).await;
    app.grant("t2", 12).await;
    app.post("/v1/accounts/t1/holds", json!({"feature": "ai_model"}))
        .await
        .expect(201);
    creditd_server::jobs::tally_accounts(&app.service.core).await;
    let reply = app.get("/metrics").await;
    let text = crate::html(&reply);
    for line in [
        // Held credits are still the account's until captured.
        "creditd_outstanding_credits{kind=\"general\"} 42\n",
        "creditd_outstanding_credits{kind=\"agent\"} 0\n",
        "creditd_pending_holds 1\n",
        "creditd_accounts 2\n",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    app.stop().await;
}
