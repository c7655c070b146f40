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

/// An account with a purchase, a charge, a hold captured for part of its quantity, a
/// released hold and a pending one.
async fn account_with_generations(app: &crate::App) {
    let end = app.now().await + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/maker/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/accounts/maker/purchases",
        json!({"order_id": "ord-1", "package": "credits_100"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/accounts/maker/charges",
        json!({"feature": "ai_background", "reference": "job-1"}),
    )
    .await
    .expect(201);
    let video = app
        .post(
            "/v1/accounts/maker/holds",
            json!({"feature": "agent.video_generation", "quantity": 12}),
        )
        .await
        .expect(201);
    app.post(
        &format!("/v1/holds/{}/capture", video["id"].as_str().unwrap()),
        json!({"quantity": 7}),
    )
    .await
    .expect(200);
    let poster = app
        .post(
            "/v1/accounts/maker/holds",
            json!({"feature": "agent.poster"}),
        )
        .await
        .expect(201);
    app.post(
        &format!("/v1/holds/{}/release", poster["id"].as_str().unwrap()),
        json!({}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/accounts/maker/holds",
        json!({"feature": "ai_extender"}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn usage_shows_one_row_per_generation_with_what_paid_and_what_came_back() {
    let app = app().await;
    account_with_generations(&app).await;
    let usage = app.get("/v1/accounts/maker/usage").await.expect(200);
    let rows = usage["generations"].as_array().unwrap();
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["pending", "released", "captured", "captured"]);
    let video = &rows[2];
    assert_eq!(video["name"], "Video Generation");
    assert_eq!(
        (
            &video["quantity"],
            &video["delivered"],
            &video["held"],
            &video["charged"],
            &video["refunded"]
        ),
        (&json!(12), &json!(7), &json!(60), &json!(40), &json!(20))
    );
    assert_eq!(video["paid_by"][0]["source"], "membership_agent");
    assert_eq!(video["returned"][0]["amount"], 20);
    assert_eq!(
        video["returned"][0]["bucket_id"],
        video["paid_by"][0]["bucket_id"]
    );
    assert_eq!(rows[3]["reference"], "job-1");
    assert_eq!(rows[0]["delivered"], Value::Null);
    assert_eq!(rows[0]["settled_at"], Value::Null);

    // Names follow Accept-Language; pages continue from the cursor.
    let chinese = app
        .call_with(
            "GET",
            "/v1/accounts/maker/usage?limit=3",
            crate::ADMIN,
            None,
            &[("accept-language", "zh-CN,zh;q=0.9,en;q=0.5")],
        )
        .await
        .expect(200);
    assert_eq!(chinese["generations"][2]["name"], "视频生成");
    let cursor = chinese["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/v1/accounts/maker/usage?limit=3&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(rest["generations"][0]["feature"], "ai_background");
    assert_eq!(rest["next_cursor"], Value::Null);

    // A window on when the generation started.
    let later = (app.now().await + jiff::SignedDuration::from_secs(1)).to_string();
    let none = app
        .get(&format!("/v1/accounts/maker/usage?since={later}"))
        .await
        .expect(200);
    assert_eq!(none["generations"], json!([]));
    app.get("/v1/accounts/nobody/usage")
        .await
        .problem(404, "not_found");
    app.get("/v1/accounts/maker/usage?cursor=bogus")
        .await
        .problem(422, "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn holds_and_purchases_are_listed_newest_first_and_filtered_by_status() {
    let app = app().await;
    account_with_generations(&app).await;
    let pending = app
        .get("/v1/accounts/maker/holds?status=pending")
        .await
        .expect(200);
    assert_eq!(pending["holds"].as_array().unwrap().len(), 1);
    assert_eq!(pending["holds"][0]["feature"], "ai_extender");
    let captured = app
        .get("/v1/accounts/maker/holds?status=captured&limit=1")
        .await
        .expect(200);
    assert_eq!(captured["holds"][0]["feature"], "agent.video_generation");
    let cursor = captured["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!(
            "/v1/accounts/maker/holds?status=captured&limit=1&cursor={cursor}"
        ))
        .await
        .expect(200);
    assert_eq!(next["holds"][0]["feature"], "ai_background");
    app.get("/v1/accounts/maker/holds?status=lost")
        .await
        .problem(422, "invalid_request");

    app.post(
        "/v1/accounts/maker/purchases",
        json!({"order_id": "ord-2", "credits": 5, "paid": {"amount_minor": 99, "currency": "EUR"}}),
    )
    .await
    .expect(201);
    let purchases = app.get("/v1/accounts/maker/purchases").await.expect(200);
    let orders: Vec<&str> = purchases["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, ["ord-2", "ord-1"]);
    assert_eq!(purchases["purchases"][0]["paid"]["currency"], "EUR");
    let token = app
        .post("/v1/accounts/other/tokens", json!({}))
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call("GET", "/v1/accounts/maker/purchases", &token, None)
        .await
        .problem(403, "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn balance_history_gives_end_of_day_credits_in_the_accounts_zone() {
    let app = app().await;
    app.put("/v1/accounts/saver", json!({"timezone": "Asia/Shanghai"}))
        .await
        .expect(201);
    app.grant("saver", 30).await;
    app.advance(2 * 86_400).await;
    app.post(
        "/v1/accounts/saver/charges",
        json!({"feature": "private_model"}),
    )
    .await
    .expect(201);
    let history = app
        .get("/v1/accounts/saver/balance-history")
        .await
        .expect(200);
    assert_eq!(history["time_zone"], "Asia/Shanghai");
    let days = history["days"].as_array().unwrap();
    assert_eq!(days.len(), 90, "the last 90 local days by default");
    let figures: Vec<i64> = days[87..]
        .iter()
        .map(|d| d["general"].as_i64().unwrap())
        .collect();
    assert_eq!(
        figures,
        [30, 30, 10],
        "granted two days ago, charged 20 today"
    );
    assert_eq!(days[86]["general"], 0, "before the grant");
    let today = days[89]["date"].as_str().unwrap().to_owned();
    let one = app
        .get(&format!(
            "/v1/accounts/saver/balance-history?since={today}&until={today}"
        ))
        .await
        .expect(200);
    assert_eq!(
        one["days"],
        json!([{"date": today, "general": 10, "agent": 0}])
    );
    app.get("/v1/accounts/saver/balance-history?since=2020-01-01&until=2026-01-01")
        .await
        .problem(422, "invalid_request");
    app.get("/v1/accounts/saver/balance-history?since=yesterday")
        .await
        .problem(422, "invalid_request");
    app.stop().await;
}
