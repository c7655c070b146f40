//! The reads of SPEC §13 that support and the CLI use: accounts by prefix, a purchase
//! by order id.

use serde_json::{Value, json};

use crate::app;

fn ids(page: &Value) -> Vec<&str> {
    page["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn accounts_are_found_by_prefix_in_id_order_page_after_page() {
    let app = app().await;
    for id in ["team-b", "team-a", "team-c", "other"] {
        app.put(&format!("/v1/accounts/{id}"), json!({}))
            .await
            .expect(201);
    }
    let first = app
        .get("/v1/accounts?prefix=team-&limit=2")
        .await
        .expect(200);
    assert_eq!(ids(&first), ["team-a", "team-b"]);
    assert_eq!(first["accounts"][0]["membership"]["status"], "none");
    let cursor = first["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!(
            "/v1/accounts?prefix=team-&limit=2&cursor={cursor}"
        ))
        .await
        .expect(200);
    assert_eq!(ids(&next), ["team-c"]);
    assert_eq!(next["next_cursor"], Value::Null);
    let everyone = app.get("/v1/accounts").await.expect(200);
    assert_eq!(ids(&everyone), ["other", "team-a", "team-b", "team-c"]);

    app.get("/v1/accounts?limit=0")
        .await
        .problem(422, "invalid_request");
    app.get("/v1/accounts?cursor=bogus")
        .await
        .problem(422, "invalid_request");
    let token = app
        .post("/v1/accounts/team-a/tokens", json!({}))
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call("GET", "/v1/accounts", &token, None)
        .await
        .problem(403, "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn a_purchase_is_found_by_order_id_with_what_was_paid() {
    let app = app().await;
    let end = app.now().await + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/buyer/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    let recorded = app
        .post(
            "/v1/accounts/buyer/purchases",
            json!({"order_id": "ord-77", "package": "credits_100",
                   "paid": {"amount_minor": 999, "currency": "USD"}}),
        )
        .await
        .expect(201);
    let found = app.get("/v1/purchases/ord-77").await.expect(200);
    assert_eq!(found, recorded);
    assert_eq!(found["account_id"], "buyer");
    assert_eq!(
        found["paid"],
        json!({"amount_minor": 999, "currency": "USD"})
    );
    app.get("/v1/purchases/ord-78")
        .await
        .problem(404, "not_found");
    app.get("/v1/purchases/has%20space")
        .await
        .problem(422, "invalid_request");

    let own = app
        .post("/v1/accounts/buyer/tokens", json!({}))
        .await
        .expect(201);
    let other = app
        .post("/v1/accounts/someone/tokens", json!({}))
        .await
        .expect(201);
    app.call(
        "GET",
        "/v1/purchases/ord-77",
        own["token"].as_str().unwrap(),
        None,
    )
    .await
    .expect(200);
    app.call(
        "GET",
        "/v1/purchases/ord-77",
        other["token"].as_str().unwrap(),
        None,
    )
    .await
    .problem(404, "not_found");
    app.stop().await;
}
