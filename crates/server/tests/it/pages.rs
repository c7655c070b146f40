//! The credits page through the router (SPEC §10): the token exchange, the session, what
//! the page and its CSV say, escaping, and the headers that keep it safe. The browser
//! test (`scripts/browser-test.py`) reads the same page in Chromium.

use serde_json::json;

use crate::{App, app, header, html};

/// A member with a purchase, a charge and a promotion whose note holds markup; returns an
/// account token.
async fn member(app: &App) -> String {
    let end = app.now().await + jiff::SignedDuration::from_hours(24 * 40);
    app.post(
        "/v1/accounts/lin/membership",
        json!({"action": "activate", "period_end": end.to_string()}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/accounts/lin/purchases",
        json!({"order_id": "ord-9", "package": "credits_100"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/accounts/lin/charges",
        json!({"feature": "agent.poster", "reference": "<b>job</b>"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/accounts/lin/grants",
        json!({"kind": "general", "amount": 5, "source": "promotion", "valid_for": "P10D",
               "note": "<script>alert(1)</script>"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/accounts/lin/adjustments",
        json!({"amount": 3, "kind": "general", "reason": "internal: ticket 4411 goodwill"}),
    )
    .await
    .expect(201);
    app.post("/v1/accounts/lin/tokens", json!({}))
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The session cookie a token link sets (`name=value`).
async fn session(app: &App, token: &str) -> String {
    let reply = app
        .call("GET", &format!("/app?token={token}"), "", None)
        .await;
    header(&reply, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_token_link_becomes_an_httponly_session_and_leaves_the_address() {
    let app = app().await;
    let token = member(&app).await;
    let reply = app
        .call("GET", &format!("/app?token={token}&lang=zh"), "", None)
        .await;
    assert_eq!(reply.status.as_u16(), 303);
    assert_eq!(header(&reply, "location"), "/app?lang=zh");
    let cookie = header(&reply, "set-cookie");
    assert!(
        cookie.starts_with(&format!("creditd_session={token}")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/app"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(
        !cookie.contains("Secure"),
        "not asked for: creditd serves plain HTTP here"
    );

    let signed_out = app.call("GET", "/app", "", None).await;
    assert_eq!(signed_out.status.as_u16(), 401);
    assert!(html(&signed_out).contains("Please open this page again"));
    let bad = app.call("GET", "/app?token=cdt_forged", "", None).await;
    assert_eq!(bad.status.as_u16(), 401);
    // An API key is no account's session.
    let key = app
        .call("GET", &format!("/app?token={}", crate::ADMIN), "", None)
        .await;
    assert_eq!(key.status.as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_credits_page_shows_the_balance_and_usage_in_words_with_user_text_escaped() {
    let app = app().await;
    let token = member(&app).await;
    let cookie = session(&app, &token).await;
    let page = app
        .call_with("GET", "/app", "", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(page.status.as_u16(), 200);
    let text = html(&page);
    let balance = app.balance("lin").await;
    assert!(text.contains(&format!(
        "data-testid=\"total\">{}</span>",
        balance["total"]
    )));
    for words in [
        "Poster Generation",
        "Done",
        "Order ord-9",
        "Adjustment by support",
        "Credits over the last 90 days",
    ] {
        assert!(text.contains(words), "the page lacks {words:?}");
    }
    assert!(text.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(
        !text.contains("<script>"),
        "no script, and none from user text"
    );
    assert!(text.contains("&#60;b&#62;job&#60;/b&#62;"));
    assert!(
        !text.contains("ticket 4411"),
        "an adjustment's reason is for support, not for the user"
    );
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"));
    assert_eq!(header(&page, "cache-control"), "no-store");
    assert_eq!(header(&page, "x-frame-options"), "DENY");

    let chinese = app
        .call_with(
            "GET",
            "/app",
            "",
            None,
            &[("cookie", &cookie), ("accept-language", "zh-CN,zh;q=0.9")],
        )
        .await;
    assert!(html(&chinese).contains("海报生成"));
    assert!(html(&chinese).contains("lang=\"zh-Hans\""));
    app.stop().await;
}

#[tokio::test]
async fn the_csv_holds_the_rows_the_filters_select() {
    let app = app().await;
    let token = member(&app).await;
    let cookie = session(&app, &token).await;
    let reply = app
        .call_with(
            "GET",
            "/app/usage.csv?type=grants",
            "",
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(header(&reply, "content-type"), "text/csv; charset=utf-8");
    assert!(header(&reply, "content-disposition").starts_with("attachment"));
    let text = html(&reply).trim_start_matches('\u{feff}').to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("time,type,description"));
    let kinds: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(kinds, ["grant", "grant", "grant", "grant"], "{text}");
    let signed_out = app.call("GET", "/app/usage.csv", "", None).await;
    assert_eq!(signed_out.status.as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_badge_alone_may_be_framed_and_assets_are_cached() {
    let app = app().await;
    let token = member(&app).await;
    let cookie = session(&app, &token).await;
    let badge = app
        .call_with("GET", "/app/badge", "", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(badge.status.as_u16(), 200);
    assert!(header(&badge, "content-security-policy").contains("frame-ancestors 'self'"));
    assert!(header(&badge, "x-frame-options").is_empty());
    let total = app.balance("lin").await["total"].to_string();
    assert!(html(&badge).contains(&format!("<span class=\"badge-total\">{total}</span>")));

    let page = app
        .call_with("GET", "/app", "", None, &[("cookie", &cookie)])
        .await;
    let css = html(&page)
        .split("href=\"/assets/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let asset = app.call("GET", &format!("/assets/{css}"), "", None).await;
    assert_eq!(asset.status.as_u16(), 200);
    assert!(header(&asset, "cache-control").contains("immutable"));
    assert_eq!(
        app.call("GET", "/assets/other.css", "", None)
            .await
            .status
            .as_u16(),
        404
    );
    let icon = app.call("GET", "/favicon.ico", "", None).await;
    assert_eq!(header(&icon, "content-type"), "image/svg+xml");
    app.stop().await;
}

#[tokio::test]
async fn frozen_credits_are_explained_with_how_to_use_them_again() {
    let app = app().await;
    let token = member(&app).await;
    app.post("/v1/accounts/lin/membership", json!({"action": "cancel"}))
        .await
        .expect(200);
    let cookie = session(&app, &token).await;
    let page = app
        .call_with("GET", "/app", "", None, &[("cookie", &cookie)])
        .await;
    let text = html(&page);
    assert!(text.contains("Membership inactive"), "{text}");
    assert!(text.contains("data-testid=\"frozen\">"));
    assert!(text.contains("Reactivate your membership to use them again"));
    assert!(
        text.contains("Frozen while the membership is inactive"),
        "the freeze is a row"
    );
    let chinese = app
        .call_with("GET", "/app?lang=zh", "", None, &[("cookie", &cookie)])
        .await;
    assert!(html(&chinese).contains("重新开通会员即可再次使用"));
    let catalog = app.get("/v1/catalog").await.expect(200);
    assert_eq!(
        catalog["features"]["agent.poster"]["names"],
        json!({"en": "Poster Generation", "zh": "海报生成"})
    );
    app.stop().await;
}
