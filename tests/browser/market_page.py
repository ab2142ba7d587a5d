#!/usr/bin/env python3
"""End-to-end test of the market page (`GET /`) in a real browser.

A requester and a producer trade through the HTTP API while the requester watches the
page: the test checks that the page shows each step live, from its event stream, without
a reload — the order appearing as `created`, turning `processing` with a trade in the
trades table, the chart and the book, then `completed` with its proof key — and that the
wallet shown follows the node's.

    python tests/browser/market_page.py --url http://127.0.0.1:8080 \
        --statement-file example/statements/arithmetic.json --proof-file proof.hex \
        --screenshot market.png [--chromium /usr/bin/chromium]

The proof file holds a valid proof (hex) of the statement for the public input
[{"field": 1}, {"field": 11}]. Exit 0 on success; otherwise 1 with one line saying why.
Needs only the standard library and Playwright (sync API).
"""

import argparse
import json
import re
import secrets
import sys
import urllib.error
import urllib.request

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

ROOT = "/_db/market/v0_0"
INPUT = [{"field": 1}, {"field": 11}]
REQUEST_COST = 7
PROPOSAL_COST = 5
TIMEOUT_MS = 15_000


class Api:
    """The market's HTTP API, as a client outside the browser uses it."""

    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return json.load(res)
        except urllib.error.HTTPError as e:
            try:
                msg = json.load(e).get("errorMessage", "")
            except ValueError:
                msg = ""
            raise AssertionError(f"{method} {path} answered {e.code}: {msg}") from None
        except urllib.error.URLError as e:
            raise AssertionError(f"{method} {path}: cannot reach the node ({e.reason})") from None

    def account(self, role):
        """Signs up a fresh user and logs it in: (name, password, token)."""
        name = f"page-{role}-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        self.call("POST", f"{ROOT}/user/signup", {"user": name, "passwd": password})
        jwt = self.call("POST", "/_open/auth", {"username": name, "password": password})["jwt"]
        return name, password, jwt

    def balance(self, user, token):
        return self.call("GET", f"{ROOT}/user/{user}/balance", token=token)


def js_number(x):
    """How the page's `String(n)` writes a JSON number."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def statement_for_test(api, spec, token):
    """A statement named like the file's whose market is untouched: one of the newest few
    already listed if it has no open orders and no trades yet (a resting order could
    take ours, a proof of our input would complete the request at once), else the
    file's pushed anew."""
    listed = api.call("GET", f"{ROOT}/statement?limit=1000")
    same = sorted((s for s in listed if s.get("name") == spec["name"]), key=lambda s: -s["createdOn"])
    for s in same[:5]:
        book = api.call("GET", f"{ROOT}/book/{s['_key']}")
        stats = api.call("GET", f"{ROOT}/statement/{s['_key']}?statistics")
        trades = api.call("GET", f"{ROOT}/statement/{s['_key']}/trades?limit=1")
        if not book["requests"] and not book["proposals"] and not stats["completed"] and not trades:
            return s
    return api.call("POST", f"{ROOT}/statement", spec, token=token)


def run(args):
    api = Api(args.url)
    with open(args.statement_file, encoding="utf-8") as f:
        spec = json.load(f)
    with open(args.proof_file, encoding="utf-8") as f:
        proof_hex = f.read().strip()
    assert proof_hex, f"{args.proof_file} is empty"

    # 1. Two fresh users and a statement with an untouched market.
    requester, req_password, req_token = api.account("req")
    producer, _, prod_token = api.account("prod")
    stmt = statement_for_test(api, spec, req_token)
    key = stmt["_key"]
    wallet0 = api.balance(requester, req_token)
    print(f"ok: users {requester} (requester), {producer} (producer); statement {key}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        problems = []
        page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
        page.on(
            "console",
            lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" and "Content Security Policy" in m.text
            else None,
        )
        tid = lambda t: page.locator(f"[data-testid={t}]")  # noqa: E731

        # 2. The page, public first: the statement is listed with its circuit summary.
        page.goto(args.url.rstrip("/") + "/")
        item = page.locator(f"[data-testid=statement-item][data-statement-key='{key}']")
        expect(item, "the statement is listed").to_have_count(1)
        circuit = stmt.get("circuit")
        if circuit:
            expect(item, "the list shows the circuit's function").to_contain_text(circuit["function"])
        expect(tid("health"), "the header shows the node's health").to_have_text("healthy")

        # Log in through the page's form and select the statement.
        tid("login-user").fill(requester)
        tid("login-password").fill(req_password)
        tid("login-submit").click()
        expect(tid("user-name"), "the header shows who is logged in").to_have_text(requester)
        item.locator("button").click()
        expect(tid("detail-name"), "the statement is selected").to_have_text(spec["name"])
        expect(tid("stream-status"), "the live stream connects").to_have_attribute("data-state", "on")
        available = tid("balance-available")
        expect(available, "the wallet shows the node's balance").to_have_attribute(
            "data-value", js_number(wallet0["balance"])
        )
        page.evaluate("window.__marker = 1")
        print("ok: logged in through the page, statement selected, stream live")

        # 3a. The requester bids: its order appears as `created`, the book shows the level.
        request = api.call(
            "POST",
            f"{ROOT}/request",
            {"statement_key": key, "cost": REQUEST_COST, "input": INPUT},
            token=req_token,
        )
        assert request["status"] == "created", f"request {request['_key']} is {request['status']}, not created"
        row = page.locator(f"[data-order-key='{request['_key']}']")
        status = row.locator("[data-field=status]")
        expect(status, "the new request shows as created").to_have_text("created")
        bid_level = page.locator(f"[data-testid=book-bid-level][data-cost='{REQUEST_COST}']")
        expect(bid_level, "the book shows the request's price level").to_have_count(1)
        expect(tid("balance-blocked"), "the request's cost shows as blocked").to_have_attribute(
            "data-value", js_number(REQUEST_COST)
        )
        expect(available, "the available balance falls by the request's cost").to_have_attribute(
            "data-value", js_number(api.balance(requester, req_token)["balance"])
        )
        print(f"ok: request {request['_key']} shown as created; book and wallet updated")

        # 3b. The producer asks below it: a match, a trade, the book level gone.
        proposal = api.call(
            "POST", f"{ROOT}/proposal", {"statement_key": key, "cost": PROPOSAL_COST}, token=prod_token
        )
        assert proposal.get("request_key") == request["_key"], (
            f"proposal {proposal['_key']} matched {proposal.get('request_key')}, not {request['_key']}"
        )
        expect(status, "the matched request shows as processing").to_have_text("processing")
        expect(row.locator("[data-field=price]"), "the row shows the trade price").to_contain_text(
            str(REQUEST_COST)
        )
        trade = page.locator(f"[data-testid=trade-row][data-trade-key='{request['_key']}']")
        expect(trade, "the trade is in the trades table").to_have_count(1)
        expect(trade, "the trade row shows the proposal").to_contain_text(proposal["_key"])
        expect(tid("price-chart").locator("svg circle"), "the chart plots the trade").to_have_count(1)
        expect(bid_level, "the matched level leaves the book").to_have_count(0)
        print(f"ok: proposal {proposal['_key']} matched; row processing, trade in table and chart, book emptied")

        # 3c. The producer delivers the proof: the request completes with its proof key.
        proof = api.call(
            "POST", f"{ROOT}/proof", {"proof": proof_hex, "proposal_key": proposal["_key"]}, token=prod_token
        )
        expect(status, "the proved request shows as completed").to_have_text("completed")
        proof_button = row.locator("[data-field=proof-key]")
        expect(proof_button, "the row shows the proof key").to_have_text(f"#{proof['_key']}")
        final = api.balance(requester, req_token)
        assert final["balance"] != wallet0["balance"], "the node's balance did not change"
        expect(available, "the wallet follows the node's balance").to_have_attribute(
            "data-value", js_number(final["balance"])
        )
        expect(tid("balance-blocked"), "nothing stays blocked").to_have_attribute(
            "data-value", js_number(final["blocked"])
        )
        expect(tid("stat-completed"), "statistics count the delivered proof").to_have_text("1")
        # The proof record, fetched by the page.
        proof_button.click()
        dialog = tid("proof-dialog")
        expect(dialog, "the proof dialog opens").to_be_visible()
        expect(dialog, "the proof record names its producer").to_contain_text(producer)
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
        print(f"ok: proof {proof['_key']} shown; balance {wallet0['balance']} -> {final['balance']}")

        # 4. All of it without a reload, and nothing refused by the CSP.
        assert page.evaluate("window.__marker") == 1, "the page reloaded during the test"
        assert not problems, problems[0]
        stored = page.evaluate("[Object.keys(localStorage).length, JSON.stringify(sessionStorage)]")
        assert stored[0] == 0, "the page wrote to localStorage"
        assert "jwt" in stored[1], "the page keeps no session in sessionStorage"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=args.screenshot, full_page=True)
        print(f"ok: no reload, no script or CSP errors, token only in sessionStorage; screenshot {args.screenshot}")
        browser.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the node's base URL")
    ap.add_argument("--statement-file", required=True, help="statement JSON to push")
    ap.add_argument("--proof-file", required=True, help="proof (hex) for input [1, 11]")
    ap.add_argument("--screenshot", required=True, help="where to save a full-page PNG")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    args = ap.parse_args()
    try:
        run(args)
    except (AssertionError, PlaywrightError, OSError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        # Playwright's messages: what was expected, then the actual value and a call log.
        reason = " | ".join(ln for ln in lines[:3] if not ln.startswith("Call log"))
        print(f"FAIL: {reason or type(e).__name__}")
        sys.exit(1)
    print("PASS: the market page follows a trade live, from request to proof")


if __name__ == "__main__":
    main()
