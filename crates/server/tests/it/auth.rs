//! Keys, roles and account tokens: each role's allowed and refused calls.

use serde_json::json;

use crate::{ADMIN, app};

#[tokio::test]
async fn requests_without_a_valid_key_are_401_but_health_needs_none() {
    let app = app().await;
    app.call("GET", "/healthz", "", None).await.expect(200);
    for key in ["", "nope", "cdk_0000_secret", "cdt_a.1.b"] {
        app.call("GET", "/v1/catalog", key, None)
            .await
            .problem(401, "unauthorized");
    }
    app.call("POST", "/v1/accounts/a1/daily-login", "", None)
        .await
        .problem(401, "unauthorized");
    app.stop().await;
}

#[tokio::test]
async fn the_service_role_runs_account_operations_but_not_keys_adjustments_or_the_clock() {
    let app = app().await;
    let service = app.key("service").await;
    let grant = json!({"kind": "general", "amount": 10, "source": "promotion"});
    app.call("POST", "/v1/accounts/a1/grants", &service, Some(grant))
        .await
        .expect(201);
    app.call("GET", "/v1/accounts/a1/balance", &service, None)
        .await
        .expect(200);
    let adjustment = json!({"amount": 5, "kind": "general", "reason": "goodwill"});
    app.call(
        "POST",
        "/v1/accounts/a1/adjustments",
        &service,
        Some(adjustment),
    )
    .await
    .problem(403, "forbidden");
    let key = json!({"name": "x", "role": "admin"});
    app.call("POST", "/v1/api-keys", &service, Some(key))
        .await
        .problem(403, "forbidden");
    app.call("GET", "/v1/api-keys", &service, None)
        .await
        .problem(403, "forbidden");
    app.call(
        "POST",
        "/v1/test-clock",
        &service,
        Some(json!({"advance_seconds": 1})),
    )
    .await
    .problem(403, "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn the_viewer_role_reads_and_changes_nothing() {
    let app = app().await;
    app.grant("a1", 10).await;
    let viewer = app.key("viewer").await;
    for path in [
        "/v1/accounts/a1",
        "/v1/accounts/a1/balance",
        "/v1/accounts/a1/ledger",
        "/v1/catalog",
    ] {
        app.call("GET", path, &viewer, None).await.expect(200);
    }
    let grant = json!({"kind": "general", "amount": 10, "source": "promotion"});
    app.call("POST", "/v1/accounts/a1/grants", &viewer, Some(grant))
        .await
        .problem(403, "forbidden");
    app.call("PUT", "/v1/accounts/a2", &viewer, Some(json!({})))
        .await
        .problem(403, "forbidden");
    app.call("POST", "/v1/accounts/a1/tokens", &viewer, Some(json!({})))
        .await
        .problem(403, "forbidden");
    assert_eq!(app.balance("a1").await["total"], 10);
    app.stop().await;
}

#[tokio::test]
async fn an_account_token_reads_its_own_account_and_the_catalog_only_until_it_expires() {
    let app = app().await;
    app.grant("mine", 5).await;
    app.grant("other", 5).await;
    let body = app
        .post("/v1/accounts/mine/tokens", json!({"ttl_seconds": 60}))
        .await
        .expect(201);
    let token = body["token"].as_str().unwrap().to_owned();
    let hold = app
        .post("/v1/accounts/mine/holds", json!({"feature": "ai_extender"}))
        .await
        .expect(201);
    let hold_path = format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    for path in [
        "/v1/accounts/mine",
        "/v1/accounts/mine/balance",
        "/v1/accounts/mine/ledger",
        "/v1/catalog",
        &hold_path,
    ] {
        app.call("GET", path, &token, None).await.expect(200);
    }
    for path in [
        "/v1/accounts/other/balance",
        "/v1/accounts/other",
        "/metrics",
        "/v1/test-clock",
    ] {
        app.call("GET", path, &token, None)
            .await
            .problem(403, "forbidden");
    }
    app.call("POST", "/v1/accounts/mine/daily-login", &token, None)
        .await
        .problem(403, "forbidden");
    app.advance(60).await;
    app.call("GET", "/v1/accounts/mine", &token, None)
        .await
        .problem(401, "unauthorized");
    app.stop().await;
}

#[tokio::test]
async fn token_lifetimes_are_checked() {
    let app = app().await;
    for ttl in [0, 2_592_001, -5] {
        app.post("/v1/accounts/a1/tokens", json!({"ttl_seconds": ttl}))
            .await
            .problem(422, "invalid_request");
    }
    let body = app
        .post("/v1/accounts/a1/tokens", json!({}))
        .await
        .expect(201);
    let expires: jiff::Timestamp = body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires.duration_since(app.now().await).as_secs(), 3_600);
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_created_listed_without_secrets_and_revoked_at_once() {
    let app = app().await;
    let created = app
        .post(
            "/v1/api-keys",
            json!({"name": "backend", "role": "service"}),
        )
        .await
        .expect(201);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    app.call("GET", "/v1/catalog", &key, None).await.expect(200);
    let list = app.get("/v1/api-keys").await.expect(200);
    let listed = &list["keys"].as_array().unwrap()[0];
    assert_eq!(
        (&listed["id"], &listed["role"]),
        (&created["id"], &created["role"])
    );
    assert!(
        listed.get("key").is_none(),
        "no secret in the list: {listed}"
    );
    for bad in [
        json!({"name": "", "role": "service"}),
        json!({"name": "x", "role": "root"}),
    ] {
        app.post("/v1/api-keys", bad)
            .await
            .problem(422, "invalid_request");
    }
    app.call("DELETE", &format!("/v1/api-keys/{id}"), ADMIN, None)
        .await
        .expect(204);
    app.call("GET", "/v1/catalog", &key, None)
        .await
        .problem(401, "unauthorized");
    app.call("DELETE", "/v1/api-keys/nope", ADMIN, None)
        .await
        .problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn account_tokens_end_with_their_key_and_when_the_accounts_tokens_are_revoked() {
    let app = app().await;
    app.put("/v1/accounts/tess", json!({})).await.expect(201);
    let backend = app
        .post(
            "/v1/api-keys",
            json!({"name": "backend", "role": "service"}),
        )
        .await
        .expect(201);
    let service = backend["key"].as_str().unwrap().to_owned();
    let token = |key: String| {
        let app = &app;
        async move {
            app.call("POST", "/v1/accounts/tess/tokens", &key, Some(json!({})))
                .await
                .expect(201)["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let by_service = token(service.clone()).await;
    let by_admin = token(crate::ADMIN.to_owned()).await;
    app.call("GET", "/v1/accounts/tess/balance", &by_service, None)
        .await
        .expect(200);
    app.call(
        "DELETE",
        &format!("/v1/api-keys/{}", backend["id"].as_str().unwrap()),
        crate::ADMIN,
        None,
    )
    .await
    .expect(204);
    app.call("GET", "/v1/accounts/tess/balance", &by_service, None)
        .await
        .problem(401, "unauthorized");
    app.call("GET", "/v1/accounts/tess/balance", &by_admin, None)
        .await
        .expect(200);

    app.call("DELETE", "/v1/accounts/tess/tokens", crate::ADMIN, None)
        .await
        .expect(204);
    app.call("GET", "/v1/accounts/tess/balance", &by_admin, None)
        .await
        .problem(401, "unauthorized");
    app.advance(1).await;
    let fresh = token(crate::ADMIN.to_owned()).await;
    app.call("GET", "/v1/accounts/tess/balance", &fresh, None)
        .await
        .expect(200);
    app.call("DELETE", "/v1/accounts/nobody/tokens", crate::ADMIN, None)
        .await
        .problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_401_names_the_bearer_scheme_and_a_long_target_is_a_414_problem() {
    let app = app().await;
    let refused = app.call("GET", "/v1/accounts/a1", "", None).await;
    assert_eq!(
        crate::header(&refused, "www-authenticate"),
        "Bearer realm=\"creditd\""
    );
    refused.problem(401, "unauthorized");
    let long = format!("/v1/accounts/a1?{}", "q".repeat(10_000));
    app.call("GET", &long, ADMIN, None)
        .await
        .problem(414, "uri_too_long");
    app.stop().await;
}
