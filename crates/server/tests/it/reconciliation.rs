//! Reconciliation (SPEC §11) through the router: every status, dry run and apply, and
//! exactly once by order id whoever records the order.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::{ADMIN, App, Reply, app};

async fn reconcile(app: &App, csv: &str, query: &str, key: &str) -> Reply {
    let request = Request::builder()
        .method("POST")
        .uri(format!("/v1/reconciliations{query}"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/csv")
        .body(Body::from(csv.to_owned()))
        .unwrap();
    app.send(request).await
}

fn statuses(report: &Value) -> Vec<(u64, String)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Two members; `ord-1` recorded, `ord-2` recorded on other terms.
async fn members(app: &App) -> String {
    let now = app.now().await;
    let end = now + jiff::SignedDuration::from_hours(24 * 30);
    for id in ["m1", "m2"] {
        app.post(
            &format!("/v1/accounts/{id}/membership"),
            json!({"action": "activate", "period_end": end.to_string()}),
        )
        .await
        .expect(200);
    }
    app.post(
        "/v1/accounts/m1/purchases",
        json!({"order_id": "ord-1", "package": "credits_100"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/accounts/m1/purchases",
        json!({"order_id": "ord-2", "credits": 50}),
    )
    .await
    .expect(201);
    app.put("/v1/accounts/visitor", json!({})).await.expect(201);
    let paid = now.to_string();
    [
        "order_id,account_id,credits,package,paid_at".to_owned(),
        format!("ord-1,m1,,credits_100,{paid}"),
        format!("ord-2,m1,70,,{paid}"),
        format!("ord-3,m2,,credits_500,{paid}"),
        format!("ord-4,visitor,10,,{paid}"),
        format!("ord-5,m2,10,credits_100,{paid}"),
        "ord-6,m2,10,,not a time".to_owned(),
    ]
    .join("\n")
}

#[tokio::test]
async fn each_paid_order_is_credited_missing_conflicting_or_invalid_and_a_dry_run_changes_nothing()
{
    let app = app().await;
    let csv = members(&app).await;
    let before = app.balance("m2").await;
    let report = reconcile(&app, &csv, "", ADMIN).await.expect(200);
    assert_eq!(
        (
            &report["orders"],
            &report["credited"],
            &report["missing"],
            &report["conflicting"],
            &report["invalid"],
            &report["applied"]
        ),
        (
            &json!(6),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(3),
            &json!(0)
        )
    );
    let mut rows = statuses(&report);
    rows.sort();
    assert_eq!(
        rows,
        [
            (3, "conflicting".to_owned()),
            (4, "missing".to_owned()),
            (5, "invalid".to_owned()),
            (6, "invalid".to_owned()),
            (7, "invalid".to_owned()),
        ]
    );
    let members_only = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["line"] == 5)
        .unwrap();
    assert!(
        members_only["detail"].as_str().unwrap().contains("member"),
        "{members_only}"
    );
    assert_eq!(app.balance("m2").await, before, "a dry run records nothing");
    app.stop().await;
}

#[tokio::test]
async fn applying_records_missing_orders_once_and_a_late_confirmation_grants_nothing() {
    let app = app().await;
    let csv = members(&app).await;
    let first = reconcile(&app, &csv, "?apply=true&reason=ticket%2077", ADMIN)
        .await
        .expect(200);
    assert_eq!(
        (&first["missing"], &first["applied"]),
        (&json!(1), &json!(1))
    );
    let purchase = app.get("/v1/purchases/ord-3").await.expect(200);
    assert_eq!(purchase["credits"], 500);
    let paid_at = purchase["paid_at"].as_str().unwrap().to_owned();
    assert!(
        csv.contains(&paid_at[..19]),
        "validity runs from the payment: {paid_at}"
    );
    let balance = app.balance("m2").await;

    let again = reconcile(&app, &csv, "?apply=true", ADMIN)
        .await
        .expect(200);
    assert_eq!(
        (&again["credited"], &again["missing"], &again["applied"]),
        (&json!(2), &json!(0), &json!(0))
    );
    // The platform's own confirmation of the same order, late: the same purchase, 200.
    app.post(
        "/v1/accounts/m2/purchases",
        json!({"order_id": "ord-3", "package": "credits_500", "paid_at": paid_at}),
    )
    .await
    .expect(200);
    assert_eq!(app.balance("m2").await, balance, "granted once");

    let audit = app.get("/v1/audit?account_id=m2").await.expect(200);
    let reasons: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "purchase")
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["ticket 77"]);
    app.stop().await;
}

#[tokio::test]
async fn a_reconciliation_is_an_admins_csv() {
    let app = app().await;
    let service = app.key("service").await;
    let csv = "order_id,account_id,credits,package,paid_at\n";
    reconcile(&app, csv, "", &service)
        .await
        .problem(403, "forbidden");
    reconcile(&app, "order_id,who\nx,y\n", "", ADMIN)
        .await
        .problem(422, "invalid_request");
    reconcile(&app, csv, "?apply=maybe", ADMIN)
        .await
        .problem(422, "invalid_request");
    let empty = reconcile(&app, csv, "", ADMIN).await.expect(200);
    assert_eq!(empty["orders"], 0);
    let json_body = app
        .call("POST", "/v1/reconciliations", ADMIN, Some(json!({})))
        .await;
    assert_eq!(json_body.status.as_u16(), 415);
    let request = Request::builder()
        .method("POST")
        .uri("/v1/reconciliations")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "text/csv")
        .header("content-length", "300000000")
        .body(Body::from(csv))
        .unwrap();
    app.send(request).await.problem(413, "payload_too_large");
    app.stop().await;
}
