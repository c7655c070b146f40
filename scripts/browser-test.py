#!/usr/bin/env python3
"""The credits page and the support console in a real browser (SPEC §10): headless Chromium driven over
WebDriver (Selenium), against a creditd started here on a test clock.

A user with a history (membership, purchase, daily login, a tool charge, a partly
delivered video, a released hold, a pending generation, a promotion expiring within 30
days, a note holding <script>) opens the page from a token link, and the test reads the
page as that person would: what it says, that the token left the address bar, no error
in the browser's console, no sideways scrolling at 360 px, the Chinese page, the badge,
the CSV, and axe-core's accessibility rules (no serious or critical violation). Then
support signs in to the console (a wrong key first), finds the account by its order id,
reads it, and signs out.

    scripts/browser-test.py target/release/creditd [--axe PATH/axe.min.js] [--screenshots DIR]

Prints one line per check and ends with "N passed, M failed".
"""

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ADMIN = "browser-test-admin-key-0123456789"
ACCOUNT = "alice@example.com"
SCRIPT_NOTE = "<script>alert('owned')</script>"

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, key=ADMIN, headers=None, body_text=None):
        data = None if body is None else json.dumps(body).encode()
        if body_text is not None:
            data = body_text.encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw = answer.read()
                return answer.status, answer.headers, raw
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def json(self, method, path, body=None, expect=(200, 201)):
        status, _, raw = self.call(method, path, body)
        if status not in expect:
            raise SystemExit(f"{method} {path}: {status} {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def advance(self, seconds):
        self.json("POST", "/v1/test-clock", {"advance_seconds": seconds})


def seed(api):
    """The history of the issue, spread over a few days so the chart has a shape."""
    a = f"/v1/accounts/{ACCOUNT}"
    api.json("PUT", a, {"timezone": "Asia/Shanghai"})
    now = api.json("GET", "/v1/test-clock")["now"]
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(iso_seconds(now) + 40 * 86400))
    api.json("POST", f"{a}/membership", {"action": "activate", "plan": "pro", "period_end": end})
    api.advance(3 * 86400)
    api.json("POST", f"{a}/purchases", {"order_id": "ord-1001", "package": "credits_500",
                                        "paid": {"amount_minor": 1999, "currency": "USD"}})
    api.json("POST", f"{a}/charges", {"feature": "ai_background", "reference": "job-bg-1"})
    api.advance(2 * 86400)
    video = api.json("POST", f"{a}/holds", {"feature": "agent.video_generation",
                                            "quantity": 12, "reference": "job-video-7"})
    api.json("POST", f"/v1/holds/{video['id']}/capture", {"quantity": 7})
    poster = api.json("POST", f"{a}/holds", {"feature": "agent.poster", "tier": "premium"})
    api.json("POST", f"/v1/holds/{poster['id']}/release", {})
    api.advance(86400)
    api.json("POST", f"{a}/grants", {"kind": "general", "amount": 30, "source": "promotion",
                                     "valid_for": "P10D", "campaign": "Winter boost",
                                     "note": SCRIPT_NOTE})
    api.json("POST", f"{a}/daily-login")
    api.json("POST", f"{a}/holds", {"feature": "ai_extender", "ttl_seconds": 3600})
    return api.json("POST", f"{a}/tokens", {"ttl_seconds": 3600})["token"]


def iso_seconds(text):
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone


def browser(width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 f"--window-size={width},{height}",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='creditd-chromium-')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(
        executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for_text(driver, words):
    """Waits until the page (after a navigation) says `words`; False if it never does.

    While Chromium swaps documents, reading the body can fail with any WebDriverException
    ("cannot find context", a stale element, no body yet): that is a page still loading,
    so the wait goes on instead of failing the check on its first read."""
    def says(d):
        try:
            return words in text(d)
        except WebDriverException:
            return False

    try:
        WebDriverWait(driver, 20).until(says)
        return True
    except TimeoutException:
        return False


def check_console(driver, name):
    errors = console_errors(driver)  # reading the log empties it: read once
    check(name, not errors, errors)


def text(driver):
    return driver.find_element(By.TAG_NAME, "body").text


def axe_violations(driver, axe_source):
    driver.execute_script(axe_source)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', description: String(e)}]));")
    return [v for v in result if v.get("impact") in ("serious", "critical")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("creditd")
    parser.add_argument("--axe", default="target/browser-test/node_modules/axe-core/axe.min.js")
    parser.add_argument("--screenshots")
    args = parser.parse_args()
    axe_source = open(args.axe, encoding="utf-8").read()

    work = tempfile.mkdtemp(prefix="creditd-browser-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, CREDITD_ADMIN_KEY=ADMIN)
    server = subprocess.Popen(
        [args.creditd, "serve", "--test-clock", "--listen", f"127.0.0.1:{port}",
         "--database", f"sqlite://{work}/creditd.db"],
        env=env, stdout=open(f"{work}/creditd.log", "w"), stderr=subprocess.STDOUT)
    api = Api(base)
    driver = None
    try:
        for _ in range(100):
            try:
                if api.call("GET", "/healthz", key=None)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        token = seed(api)
        balance = api.json("GET", f"/v1/accounts/{ACCOUNT}/balance")

        status, headers, body = api.call("GET", "/app", key=None)
        check("without a session /app is 401 with a page that says so",
              status == 401 and b"Please open this page again" in body, status)
        check("pages forbid scripts and framing",
              "script-src" not in headers.get("Content-Security-Policy", "x")
              and "default-src 'none'" in headers.get("Content-Security-Policy", "")
              and "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""),
              headers.get("Content-Security-Policy"))

        driver = browser(1280, 2200)
        driver.get(f"{base}/app?token={token}")
        check("the token left the address bar", "token" not in driver.current_url
              and driver.current_url.endswith("/app"), driver.current_url)
        cookie = next((c for c in driver.get_cookies() if c["name"] == "creditd_session"), {})
        check("the session cookie is HttpOnly and SameSite=Lax",
              cookie.get("httpOnly") and cookie.get("sameSite") == "Lax", cookie)
        page = text(driver)
        total = f"{balance['total']:,}"
        check("the total is shown", driver.find_element(By.CSS_SELECTOR, "[data-testid=total]").text
              == total, (total, page[:300]))
        for words in ["Video Generation", "AI Background", "Poster Generation", "AI Extender",
                      "7 of 12 delivered", "Done", "Refunded", "In progress", "Premium",
                      "Expiring soon", "Promotion", "Daily login", "Order ord-1001",
                      "Monthly membership credits", "Credits over the last 90 days"]:
            check(f"the page says {words!r}", words in page, page[:2000])
        check("a note holding <script> is shown as text", SCRIPT_NOTE in page)
        check("no script element came from user data",
              len(driver.find_elements(By.TAG_NAME, "script")) == 0)
        video = driver.find_element(By.XPATH, "//li[contains(., 'Video Generation')]//summary")
        video.click()
        opened = driver.find_element(By.XPATH, "//li[contains(., 'Video Generation')]").text
        check("a generation opens to show what paid and what came back",
              "Paid with" in opened and "Came back" in opened and "+20" in opened, opened)
        chart = driver.find_elements(By.CSS_SELECTOR, "svg.plot polyline")
        check("the chart is drawn as SVG with two lines", len(chart) == 2)
        check("the chart has a text alternative",
              driver.find_element(By.CSS_SELECTOR, "svg.plot desc").get_attribute("textContent")
              .startswith("End-of-day credits"))
        check_console(driver, "no errors in the browser console (English)")
        violations = axe_violations(driver, axe_source)
        check("axe-core: no serious or critical violation at 1280 px", not violations,
              [(v["id"], v["description"]) for v in violations])
        if args.screenshots:
            driver.save_screenshot(os.path.join(args.screenshots, "credits-1280.png"))

        # Filters, paging.
        Select(driver.find_element(By.ID, "filter-type")).select_by_visible_text("Generations")
        driver.find_element(By.CSS_SELECTOR, ".filters button").click()
        WebDriverWait(driver, 10).until(lambda d: "type=usage" in d.current_url)
        rows = driver.find_elements(By.CSS_SELECTOR, "ol.rows > li")
        check("the type filter keeps generations only",
              rows and all("row-usage" in r.get_attribute("class") for r in rows), len(rows))

        # The CSV, with the browser's session.
        csv_link = driver.find_element(By.LINK_TEXT, "Download CSV").get_attribute("href")
        status, headers, body = api.call("GET", csv_link.replace(base, ""), key=None,
                                         headers={"Cookie": f"creditd_session={cookie['value']}"})
        table = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
        check("the CSV has the same rows",
              status == 200 and len(table) == len(rows)
              and {r["description"] for r in table} >= {"Video Generation", "AI Background"},
              (status, table[:2]))

        # The Chinese page.
        driver.get(f"{base}/app?lang=zh")
        page = text(driver)
        for words in ["使用明细", "视频生成", "已完成", "已退还", "进行中", "即将到期", "我的积分"]:
            check(f"the Chinese page says {words!r}", words in page, page[:600])
        check_console(driver, "no errors in the browser console (Chinese)")
        violations = axe_violations(driver, axe_source)
        check("axe-core: no serious or critical violation on the Chinese page", not violations,
              [(v["id"], v["description"]) for v in violations])

        # 360 px.
        driver.set_window_size(360, 2400)
        driver.get(f"{base}/app?lang=en")
        wide = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        check("no horizontal scroll at 360 px", wide[0] <= wide[1], wide)
        violations = axe_violations(driver, axe_source)
        check("axe-core: no serious or critical violation at 360 px", not violations,
              [(v["id"], v["description"]) for v in violations])
        if args.screenshots:
            driver.save_screenshot(os.path.join(args.screenshots, "credits-360.png"))

        # The badge.
        driver.get(f"{base}/app/badge")
        check("the badge shows the total",
              driver.find_element(By.CSS_SELECTOR, ".badge-total").text == total, text(driver))
        check_console(driver, "no errors in the browser console (badge)")
        status, headers, _ = api.call("GET", "/app/badge", key=None,
                                      headers={"Cookie": f"creditd_session={cookie['value']}"})
        check("only the badge may be framed, by the configured origins",
              "frame-ancestors 'self'" in headers.get("Content-Security-Policy", ""),
              headers.get("Content-Security-Policy"))

        # The support console.
        driver.set_window_size(1280, 1800)
        driver.get(f"{base}/console")
        driver.find_element(By.ID, "key").send_keys("cdk_wrong_key")
        driver.find_element(By.CSS_SELECTOR, "form button").click()
        check("the console refuses a wrong key", wait_for_text(driver, "unknown or revoked"))
        driver.find_element(By.ID, "key").send_keys(ADMIN)
        driver.find_element(By.CSS_SELECTOR, "form button").click()
        check("the console signs in with the admin key", wait_for_text(driver, "Signed in as"),
              driver.current_url)
        console_cookie = next((c for c in driver.get_cookies() if c["name"] == "creditd_console"), {})
        check("the console's cookie is HttpOnly and SameSite=Strict",
              console_cookie.get("httpOnly") and console_cookie.get("sameSite") == "Strict",
              console_cookie)
        search = driver.find_element(By.ID, "q")
        search.send_keys("ord-1001")
        search.submit()
        wait_for_text(driver, "Order ord-1001")
        driver.find_element(By.PARTIAL_LINK_TEXT, "ord-1001").click()
        wait_for_text(driver, "Buckets")
        page = text(driver)
        check("support finds the account by its order id and sees it whole",
              all(w in page for w in [f"Account {ACCOUNT}", "Membership active", "1999 USD",
                                      "Pending holds", "Audit trail"]), page[:500])
        check_console(driver, "no errors in the browser console (console)")
        violations = axe_violations(driver, axe_source)
        check("axe-core: no serious or critical violation on the console", not violations,
              [(v["id"], v["description"]) for v in violations])
        driver.set_window_size(360, 2000)
        driver.refresh()
        wide = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        check("the console's page does not scroll sideways at 360 px", wide[0] <= wide[1], wide)
        # Actions: a compensation grant with its reason, a hold released, the user's page.
        driver.find_element(By.ID, "grant-amount").send_keys("7")
        Select(driver.find_element(By.ID, "grant-source")).select_by_value("compensation")
        driver.find_element(By.ID, "grant-reason").send_keys("render farm outage")
        driver.find_element(By.CSS_SELECTOR, "form[action$='/grant?lang=en'] button").click()
        check("support grants compensation with a reason", wait_for_text(driver, "Credits granted."))
        driver.find_element(By.CSS_SELECTOR, "form[action$='/release?lang=en'] button").click()
        check("support releases a pending hold",
              wait_for_text(driver, "Hold released: its credits are back."))
        audit = api.json("GET", f"/v1/audit?account_id={urllib.parse.quote(ACCOUNT)}")["records"]
        check("the console's actions are audited with their reasons",
              [(r["action"], r["via"]) for r in audit[:2]]
              == [("hold.release", "console"), ("grant", "console")]
              and audit[1]["reason"] == "render farm outage", audit[:2])
        driver.find_element(By.ID, "adjust-amount").send_keys("-2")
        driver.find_element(By.ID, "adjust-reason").send_keys("double grant")
        driver.find_element(By.CSS_SELECTOR, "form[action$='/adjust?lang=en'] button").click()
        check("an admin adjusts the balance with a reason", wait_for_text(driver, "Balance adjusted."),
              (driver.current_url, text(driver)[:600]))
        driver.find_element(By.ID, "purchase-order").send_keys("ord-3003")
        Select(driver.find_element(By.ID, "purchase-package")).select_by_value("credits_100")
        driver.find_element(By.ID, "purchase-reason").send_keys("paid, not credited")
        driver.find_element(By.CSS_SELECTOR, "form[action$='/purchase?lang=en'] button").click()
        check("support records a missing purchase by its order id",
              wait_for_text(driver, "Purchase recorded.")
              and api.call("GET", "/v1/purchases/ord-3003")[0] == 200)
        tabs = driver.window_handles
        driver.find_element(By.CSS_SELECTOR, "form[action$='/view-as-user?lang=en'] button").click()
        WebDriverWait(driver, 10).until(lambda d: len(d.window_handles) > len(tabs))
        driver.switch_to.window([h for h in driver.window_handles if h not in tabs][0])
        check("support opens the user's credits page as the user sees it",
              wait_for_text(driver, "Usage details") and "token" not in driver.current_url,
              driver.current_url)
        driver.close()
        driver.switch_to.window(tabs[0])
        # A form posted without the session's token is refused and changes nothing.
        status, _, _ = api.call(
            "POST", f"/console/accounts/{urllib.parse.quote(ACCOUNT)}/grant", key=None,
            headers={"Cookie": f"creditd_console={console_cookie.get('value')}",
                     "Content-Type": "application/x-www-form-urlencoded"})
        check("a console form without its CSRF token is refused", status in (403, 422), status)

        # A viewer's console shows no forms, and a form posted by hand is refused.
        viewer = api.json("POST", "/v1/api-keys", {"name": "Dana", "role": "viewer"})["key"]
        other = browser(1280, 1800)
        try:
            other.get(f"{base}/console")
            other.find_element(By.ID, "key").send_keys(viewer)
            other.find_element(By.CSS_SELECTOR, "form button").click()
            wait_for_text(other, "Signed in as Dana (viewer)")
            other.get(f"{base}/console/accounts/{urllib.parse.quote(ACCOUNT)}")
            wait_for_text(other, "Buckets")
            check("a viewer's console shows no action but opening the user's page",
                  not other.find_elements(By.ID, "grant-amount")
                  and not other.find_elements(By.ID, "adjust-amount"))
            token = other.find_element(By.NAME, "csrf").get_attribute("value")
            session = next(c for c in other.get_cookies() if c["name"] == "creditd_console")
            status, _, _ = api.call(
                "POST", f"/console/accounts/{urllib.parse.quote(ACCOUNT)}/grant", key=None,
                headers={"Cookie": f"creditd_console={session['value']}",
                         "Content-Type": "application/x-www-form-urlencoded"},
                body_text=f"csrf={token}&nonce=by-hand&amount=100&source=promotion")
            check("a viewer's grant posted by hand is refused on the server", status == 403, status)
        finally:
            other.quit()

        # Reconciliation: the provider's file, uploaded, the missing order recorded.
        driver.set_window_size(1280, 1800)
        paid = os.path.join(work, "paid-orders.csv")
        now = api.json("GET", "/v1/test-clock")["now"]
        with open(paid, "w") as f:
            f.write("order_id,account_id,credits,package,paid_at\n")
            f.write(f"ord-1001,{ACCOUNT},,credits_500,{now}\n")
            f.write(f"ord-2002,{ACCOUNT},,credits_100,{now}\n")
        driver.get(f"{base}/console/reconciliations")
        driver.find_element(By.ID, "reconcile-reason").send_keys("provider export")
        driver.find_element(By.NAME, "apply").click()
        driver.find_element(By.ID, "reconcile-file").send_keys(paid)
        driver.find_element(By.CSS_SELECTOR, "form.stack button").click()
        check("a reconciliation upload records the missing order",
              wait_for_text(driver, "Recorded now") and "ord-2002" in text(driver)
              and api.call("GET", "/v1/purchases/ord-2002")[0] == 200)
        check_console(driver, "no errors in the browser console (reconciliation)")
        violations = axe_violations(driver, axe_source)
        check("axe-core: no serious or critical violation on the reconciliation page",
              not violations, [(v["id"], v["description"]) for v in violations])
        driver.find_element(By.CSS_SELECTOR, ".who button").click()
        wait_for_text(driver, "Sign in to the console")
        check("signing out ends the console session",
              api.call("GET", "/console/search?q=x", key=None,
                       headers={"Cookie": f"creditd_console={console_cookie.get('value')}"})[0] == 401)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=20)

    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
