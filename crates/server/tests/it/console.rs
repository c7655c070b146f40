//! The support console through the router (SPEC §10): sign-in with a key, a server-side
//! session that ends on sign-out or with its key, CSRF on every form, search by account
//! id or prefix, order id and hold id, and an account's page by role.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::{App, Reply, app, header, html};

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
    // The ledger, filtered by type.
    let grants = page(&app, "/console/accounts/zoe-1?entry_type=adjust", &admin).await;
    assert!(html(&grants).contains("Adjustment: 5 credits"));
    assert!(
        !html(&grants).contains("<td>debit</td>"),
        "only adjustments are listed"
    );

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

/// Posts an action's form as the session `cookie` whose pages carry `token`.
async fn act(app: &App, cookie: &str, token: &str, action: &str, fields: &str) -> Reply {
    let nonce = format!("{action}-{}", fields.len());
    form(
        app,
        &format!("/console/accounts/zoe/{action}"),
        &format!("csrf={token}&nonce={nonce}&{fields}"),
        cookie,
    )
    .await
}

#[tokio::test]
async fn each_action_is_accepted_by_role_on_the_server_and_audited_as_the_consoles() {
    let app = app().await;
    let end = app.now().await + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/zoe/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    let hold = app
        .post("/v1/accounts/zoe/holds", json!({"feature": "agent.poster"}))
        .await
        .expect(201);

    // A viewer's session sees no forms, and a form posted by hand is refused.
    let viewer = app.key("viewer").await;
    let viewer = sign_in(&app, &viewer).await;
    let seen = page(&app, "/console/accounts/zoe", &viewer).await;
    assert!(!html(&seen).contains("/console/accounts/zoe/grant"));
    let token = csrf(html(&seen));
    let refused = act(&app, &viewer, &token, "grant", "amount=5&source=promotion").await;
    assert_eq!(refused.status.as_u16(), 403);
    // A service key acts on accounts, but adjusts nothing.
    let service = app.key("service").await;
    let service = sign_in(&app, &service).await;
    let token = csrf(html(&page(&app, "/console/accounts/zoe", &service).await));
    let adjust = act(
        &app,
        &service,
        &token,
        "adjust",
        "amount=5&kind=general&reason=x",
    )
    .await;
    assert_eq!(adjust.status.as_u16(), 403);
    let balance = app.balance("zoe").await;

    let admin = sign_in(&app, crate::ADMIN).await;
    let shown = page(&app, "/console/accounts/zoe", &admin).await;
    assert!(html(&shown).contains("/console/accounts/zoe/adjust"));
    let token = csrf(html(&shown));
    // Without the session's token, nothing happens.
    let forged = act(&app, &admin, "forged", "grant", "amount=5&source=promotion").await;
    assert_eq!(forged.status.as_u16(), 403);
    // Compensation needs a reason.
    let unexplained = act(
        &app,
        &admin,
        &token,
        "grant",
        "amount=5&source=compensation",
    )
    .await;
    assert!(header(&unexplained, "location").ends_with("error=invalid_request"));
    assert_eq!(app.balance("zoe").await, balance);

    let granted = act(
        &app,
        &admin,
        &token,
        "grant",
        "amount=7&source=compensation&reason=outage",
    )
    .await;
    assert!(
        header(&granted, "location").ends_with("done=grant"),
        "{}",
        header(&granted, "location")
    );
    // The same form sent again acts once.
    act(
        &app,
        &admin,
        &token,
        "grant",
        "amount=7&source=compensation&reason=outage",
    )
    .await;
    let adjusted = act(
        &app,
        &admin,
        &token,
        "adjust",
        "amount=-2&kind=general&reason=typo",
    )
    .await;
    assert!(header(&adjusted, "location").ends_with("done=adjust"));
    let hold_id = hold["id"].as_str().unwrap();
    let released = act(&app, &admin, &token, "release", &format!("hold={hold_id}")).await;
    assert!(header(&released, "location").ends_with("done=release"));
    let recorded = act(
        &app,
        &admin,
        &token,
        "purchase",
        "order_id=ord-lost&package=credits_100&reason=ticket%2042",
    )
    .await;
    assert!(header(&recorded, "location").ends_with("done=purchase"));
    let too_much = act(
        &app,
        &admin,
        &token,
        "adjust",
        "amount=-99999&kind=general&reason=x",
    )
    .await;
    assert!(header(&too_much, "location").ends_with("error=insufficient_credits"));
    let cancelled = act(&app, &admin, &token, "cancel", "reason=asked").await;
    assert!(header(&cancelled, "location").ends_with("done=cancel"));
    let notice = page(&app, "/console/accounts/zoe?done=cancel", &admin).await;
    assert!(html(&notice).contains("Membership cancelled."));
    let spoof = page(&app, "/console/accounts/zoe?done=call%20us", &admin).await;
    assert!(
        !html(&spoof).contains("call us"),
        "a link cannot put words on the page"
    );

    let viewing = act(&app, &admin, &token, "view-as-user", "").await;
    let location = header(&viewing, "location").to_owned();
    assert!(location.starts_with("/app?token=cdt_"), "{location}");
    let user = app.call("GET", &location, "", None).await;
    assert_eq!(user.status.as_u16(), 303, "the user's page opens");

    let trail = app.get("/v1/audit?account_id=zoe").await.expect(200);
    let records: Vec<(String, String, String)> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["via"] == "console")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
                r["key_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let actions: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "membership.cancel",
            "purchase",
            "hold.release",
            "adjust",
            "grant"
        ]
    );
    assert_eq!(records[2].1, "ticket 42");
    assert_eq!(records[5].2, "CREDITD_ADMIN_KEY");
    app.stop().await;
}

/// A multipart form as a browser sends it: the fields, then the file.
fn multipart(fields: &[(&str, &str)], file: &str) -> (String, String) {
    let boundary = "----creditd-test-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"paid.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn an_admin_uploads_paid_orders_and_the_missing_one_is_recorded_once() {
    let app = app().await;
    let now = app.now().await;
    let end = now + jiff::SignedDuration::from_hours(24 * 30);
    app.post(
        "/v1/accounts/mia/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    let file = format!(
        "order_id,account_id,credits,package,paid_at\nord-9,mia,,credits_100,{now}\nord-10,nobody,5,,{now}\n"
    );
    let admin = sign_in(&app, crate::ADMIN).await;
    let shown = page(&app, "/console/reconciliations", &admin).await;
    let token = csrf(html(&shown));
    let upload = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        let admin = admin.clone();
        let file = file.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let (content_type, body) = multipart(&fields, &file);
            let request = Request::builder()
                .method("POST")
                .uri("/console/reconciliations")
                .header("content-type", content_type)
                .header("cookie", admin)
                .body(Body::from(body))
                .unwrap();
            app.send(request).await
        }
    };
    let forged = upload(vec![("csrf", "forged".into()), ("apply", "true".into())]).await;
    assert_eq!(forged.status.as_u16(), 403);
    assert!(app.get("/v1/purchases/ord-9").await.status.as_u16() == 404);
    let applied = upload(vec![
        ("csrf", token.clone()),
        ("reason", "provider export".into()),
        ("apply", "true".into()),
    ])
    .await;
    let text = html(&applied);
    assert!(text.contains("Recorded now</dt><dd>1</dd>"), "{text}");
    assert!(text.contains("ord-10") && text.contains("Invalid"));
    app.get("/v1/purchases/ord-9").await.expect(200);
    let again = upload(vec![("csrf", token), ("apply", "true".into())]).await;
    assert!(html(&again).contains("Credited</dt><dd>1</dd>"));
    assert!(html(&again).contains("Recorded now</dt><dd>0</dd>"));

    let viewer = app.key("viewer").await;
    let viewer = sign_in(&app, &viewer).await;
    assert_eq!(
        page(&app, "/console/reconciliations", &viewer)
            .await
            .status
            .as_u16(),
        403
    );
    app.stop().await;
}
