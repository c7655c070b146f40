//! The audit trail (SPEC §10): every change a person makes is recorded with its effect,
//! and only those.

use serde_json::{Value, json};

use crate::app;

fn actions(page: &Value) -> Vec<&str> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_persons_changes_are_audited_with_who_when_what_and_why() {
    let app = app().await;
    app.grant("ana", 10).await;
    app.post(
        "/v1/accounts/ana/adjustments",
        json!({"amount": -4, "kind": "general", "reason": "double grant, ticket 88"}),
    )
    .await
    .expect(201);
    // A refusal changed nothing: nothing to audit.
    app.post(
        "/v1/accounts/ana/adjustments",
        json!({"amount": -400, "kind": "general", "reason": "too much"}),
    )
    .await
    .problem(402, "insufficient_credits");
    // A replay is the first change, audited once.
    for _ in 0..2 {
        app.call_with(
            "POST",
            "/v1/accounts/ana/grants",
            crate::ADMIN,
            Some(
                json!({"kind": "agent", "amount": 2, "source": "compensation",
                        "reason": "render farm outage 12-01"}),
            ),
            &[("idempotency-key", "grant-once")],
        )
        .await;
    }
    let created = app
        .post(
            "/v1/api-keys",
            json!({"name": "backend", "role": "service"}),
        )
        .await
        .expect(201);

    // The platform's backend acts with a service key: not a person, not audited.
    let service = created["key"].as_str().unwrap().to_owned();
    app.call(
        "POST",
        "/v1/accounts/ana/charges",
        &service,
        Some(json!({"feature": "ai_extender"})),
    )
    .await
    .expect(201);

    let trail = app.get("/v1/audit").await.expect(200);
    assert_eq!(actions(&trail), ["key.create", "grant", "adjust", "grant"]);
    let adjust = &trail["records"][2];
    assert_eq!(adjust["key_id"], "env-admin");
    assert_eq!(adjust["key_name"], "CREDITD_ADMIN_KEY");
    assert_eq!(adjust["via"], "api");
    assert_eq!(adjust["account_id"], "ana");
    assert_eq!(adjust["reason"], "double grant, ticket 88");
    assert_eq!(adjust["detail"]["amount"], -4);
    assert_eq!(trail["records"][1]["reason"], "render farm outage 12-01");
    let key = &trail["records"][0];
    assert_eq!(key["account_id"], Value::Null);
    assert_eq!(key["detail"]["name"], "backend");
    assert!(
        key["detail"].get("key").is_none(),
        "a secret is never kept in the audit: {key}"
    );

    let ana = app
        .get("/v1/audit?account_id=ana&limit=2")
        .await
        .expect(200);
    assert_eq!(actions(&ana), ["grant", "adjust"]);
    let cursor = ana["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/v1/audit?account_id=ana&limit=2&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(actions(&rest), ["grant"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    app.call("GET", "/v1/audit", &service, None)
        .await
        .problem(403, "forbidden");
    app.get("/v1/audit?account_id=not%20an%20id")
        .await
        .problem(422, "invalid_request");
    app.stop().await;
}
