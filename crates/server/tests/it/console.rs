//! The support console through the router (SPEC §10): sign-in with a key, a server-side
//! session that ends on sign-out or with its key, CSRF on every form, search by account
//! id or prefix, order id and hold id, and an account's page by role.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::{App, Reply, app};

fn html(reply: &Reply) -> &str {
    reply.body.as_str().unwrap_or("")
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn form(app: &App, path: &str, body: &str, cookie: &str) -> Reply {
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.send(request).await
}

async fn page(app: &App, path: &str, cookie: &str) -> Reply {
    app.call_with("GET", path, "", None, &[("cookie", cookie)])
        .await
}

/// Signs in with `key`; the session cookie (`name=value`).
async fn sign_in(app: &App, key: &str) -> String {
    let reply = form(app, "/console/sign-in", &format!("key={key}"), "").await;
    assert_eq!(reply.status.as_u16(), 303, "{}", html(&reply));
    header(&reply, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The CSRF token of the session's pages.
fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_key_signs_in_to_a_session_that_ends_on_sign_out_and_with_its_key() {
    let app = app().await;
    let refused = form(&app, "/console/sign-in", "key=cdk_nope_nope", "").await;
    assert_eq!(refused.status.as_u16(), 200, "the form again, saying why");
    assert!(html(&refused).contains("unknown or revoked"));

    let reply = form(
        &app,
        "/console/sign-in",
        &format!("key={}", crate::ADMIN),
        "",
    )
    .await;
    let cookie = header(&reply, "set-cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let home = page(&app, "/console", &cookie).await;
    assert!(html(&home).contains("Signed in as CREDITD_ADMIN_KEY (admin)"));
    assert!(header(&home, "content-security-policy").contains("default-src 'none'"));

    // A form without the session's token is refused, and changes nothing.
    let forged = form(&app, "/console/sign-out", "csrf=forged", &cookie).await;
    assert_eq!(forged.status.as_u16(), 403);
    assert!(html(&page(&app, "/console", &cookie).await).contains("Signed in as"));
    let token = csrf(html(&home));
    let out = form(&app, "/console/sign-out", &format!("csrf={token}"), &cookie).await;
    assert_eq!(out.status.as_u16(), 303);
    let after = page(&app, "/console/search?q=x", &cookie).await;
    assert_eq!(
        after.status.as_u16(),
        401,
        "the session ended on every node"
    );

    // A revoked key's sessions end at once.
    let viewer = app
        .post("/v1/api-keys", json!({"name": "Dana", "role": "viewer"}))
        .await
        .expect(201);
    let session = sign_in(&app, viewer["key"].as_str().unwrap()).await;
    assert!(html(&page(&app, "/console", &session).await).contains("Signed in as Dana (viewer)"));
    app.call(
        "DELETE",
        &format!("/v1/api-keys/{}", viewer["id"].as_str().unwrap()),
        crate::ADMIN,
        None,
    )
    .await
    .expect(204);
    assert_eq!(
        page(&app, "/console/search?q=x", &session)
            .await
            .status
            .as_u16(),
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn support_finds_an_account_by_prefix_order_and_hold_and_sees_it_by_role() {
    let app = app().await;
    let end = app.now().await + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/zoe-1/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    app.post("/v1/accounts/zoe-1/purchases", json!({"order_id": "ord-77", "package": "credits_100", "paid": {"amount_minor": 499, "currency": "USD"}}))
        .await
        .expect(201);
    let hold = app
        .post(
            "/v1/accounts/zoe-1/holds",
            json!({"feature": "agent.poster"}),
        )
        .await
        .expect(201);
    app.post(
        "/v1/accounts/zoe-1/adjustments",
        json!({"amount": 5, "kind": "general", "reason": "goodwill <b>"}),
    )
    .await
    .expect(201);
    app.put("/v1/accounts/zoe-2", json!({})).await.expect(201);

    let admin = sign_in(&app, crate::ADMIN).await;
    let by_prefix = page(&app, "/console/search?q=zoe", &admin).await;
    assert!(
        html(&by_prefix).contains("/console/accounts/zoe-1")
            && html(&by_prefix).contains("/console/accounts/zoe-2")
    );
    let by_order = page(&app, "/console/search?q=ord-77", &admin).await;
    assert!(
        html(&by_order).contains("Order ord-77 → account zoe-1"),
        "{}",
        html(&by_order)
    );
    let hold_id = hold["id"].as_str().unwrap();
    let by_hold = page(&app, &format!("/console/search?q={hold_id}"), &admin).await;
    assert!(html(&by_hold).contains("→ account zoe-1"));
    let nothing = page(&app, "/console/search?q=nobody-here", &admin).await;
    assert!(html(&nothing).contains("Nothing matches"));

    let account = page(&app, "/console/accounts/zoe-1", &admin).await;
    let text = html(&account);
    for words in [
        "Membership active",
        "ord-77",
        "499 USD",
        hold_id,
        "Audit trail",
        "adjust",
        "goodwill &#60;b&#62;",
    ] {
        assert!(text.contains(words), "the account page lacks {words:?}");
    }
    let viewer = app.key("viewer").await;
    let viewer = sign_in(&app, &viewer).await;
    let seen = page(&app, "/console/accounts/zoe-1", &viewer).await;
    assert!(html(&seen).contains("Admins see the audit trail."));
    assert!(
        !html(&seen).contains("CREDITD_ADMIN_KEY (env-admin, api)"),
        "the audit is for admins"
    );
    assert_eq!(
        page(&app, "/console/accounts/nobody", &viewer)
            .await
            .status
            .as_u16(),
        404
    );
    app.stop().await;
}
