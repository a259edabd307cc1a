"""Drives the Lore portal with accounts in headless Chromium (Debian's `chromium`) via Playwright.

Called by the end-to-end test `portal_sign_in_admin_page_and_reader_scope` with a running
`lore serve` that has one admin account (`root`) and two collections (`public`, `vault`):

    LORE_TEST_ADMIN_PASSWORD=... LORE_TEST_SECRET_MARKERS=a,b,c python portal_accounts.py BASE_URL OUT_DIR

A wrong password is refused on the sign-in page; the admin signs in, adds the reader `ann`
(collection `public`) on the Admin page and reads the generated password shown once,
creates and revokes a token; signs out. `ann` signs in with that password, has no Admin
tab, lists only `public` documents, asks for the vault's secret and the page shows none of
it. Screenshots go to OUT_DIR. Exits non-zero with a message on the first failure.
"""
import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE, OUT = sys.argv[1], sys.argv[2]
ADMIN_PASSWORD = os.environ["LORE_TEST_ADMIN_PASSWORD"]
MARKERS = [m.lower() for m in os.environ["LORE_TEST_SECRET_MARKERS"].split(",") if m]
TIMEOUT_MS = 240_000


def shot(page, name):
    page.screenshot(path=os.path.join(OUT, name), full_page=True)


def sign_in(page, user, password):
    expect(page.locator("#login")).to_be_visible()
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login button[type=submit]")


QUESTION = "What is the passphrase of the Nightjar escrow?"


def no_secret(page, where):
    # What ann typed comes back as her question: only the rest of the page counts.
    text = page.locator("body").inner_text().lower().replace(QUESTION.lower(), " ")
    text = text.replace("nightjar escrow passphrase", " ")
    found = [m for m in MARKERS if m in text]
    if found:
        raise SystemExit(f"{where}: the page shows {found}")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.on("dialog", lambda d: d.accept())
    page.goto(BASE)

    # Accounts exist: the sign-in page comes first, and a wrong password is refused.
    sign_in(page, "root", ADMIN_PASSWORD + "x")
    expect(page.locator("#login-error")).not_to_be_empty()
    shot(page, "accounts-01-sign-in.png")
    page.fill("#login-password", ADMIN_PASSWORD)
    page.click("#login button[type=submit]")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#who")).to_contain_text("root (admin)")

    # The Admin page: add a reader of `public`, read the password shown once.
    expect(page.locator("#tab-admin")).to_be_visible()
    page.click("#tab-admin")
    expect(page.locator("#users tbody tr")).to_have_count(1)
    page.fill("#new-user", "ann")
    page.select_option("#new-role", "reader")
    page.fill("#new-grants", "public")
    page.click("#user-form button[type=submit]")
    expect(page.locator("#users tbody tr")).to_have_count(2)
    expect(page.locator("#admin-secret")).to_contain_text("Password for ann")
    ann_password = page.locator("#admin-secret code").inner_text().strip()
    if len(ann_password) < 12:
        raise SystemExit(f"generated password too short: {ann_password!r}")
    ann_row = page.locator("#users tbody tr", has_text="ann")
    expect(ann_row.locator("input")).to_have_value("public")

    # A token for ann, shown once, then revoked.
    page.select_option("#token-user", "ann")
    page.fill("#token-label", "portal-test")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#admin-secret")).to_contain_text("Token for ann")
    secret = page.locator("#admin-secret code").inner_text().strip()
    if not secret.startswith("lore_"):
        raise SystemExit(f"not a token: {secret!r}")
    token_row = page.locator("#tokens tbody tr", has_text="portal-test")
    expect(token_row).to_contain_text("active")
    shot(page, "accounts-02-admin.png")
    token_row.locator("button", has_text="Revoke").click()
    expect(page.locator("#tokens tbody tr", has_text="portal-test")).to_contain_text("revoked")
    # The revoked token opens nothing.
    status = page.evaluate(
        """async (t) => (await fetch('/api/me', {headers: {Authorization: 'Bearer ' + t}})).status""",
        secret,
    )
    if status != 401:
        raise SystemExit(f"a revoked token got {status}")

    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()

    # The reader: no Admin tab, only `public`, and the vault's secret nowhere.
    sign_in(page, "ann", ann_password)
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#who")).to_contain_text("ann (reader)")
    expect(page.locator("#tab-admin")).to_be_hidden()
    page.click("#tab-library")
    rows = page.locator("#documents tbody tr")
    expect(rows).to_have_count(2)
    for text in rows.all_inner_texts():
        if "public" not in text:
            raise SystemExit(f"a document outside ann's collection is listed: {text}")
    page.fill("#search", "Nightjar escrow passphrase")
    page.click("#search-form button[type=submit]")
    page.wait_for_timeout(1500)
    no_secret(page, "search")
    page.click("#tab-ask")
    page.fill("#question", QUESTION)
    page.keyboard.press("Enter")
    answer = page.locator(".turn .a").last
    expect(answer).not_to_have_attribute("aria-busy", "true", timeout=TIMEOUT_MS)
    turn = page.locator(".turn").last
    if turn.locator("details.passages summary").count():
        turn.locator("details.passages summary").click()
    no_secret(page, "answer")
    shot(page, "accounts-03-reader.png")
    # The admin API refuses a reader even from the portal's own page.
    status = page.evaluate("""async () => (await fetch('/api/admin/users')).status""")
    if status != 403:
        raise SystemExit(f"a reader reading /api/admin/users got {status}")
    browser.close()
print("portal accounts: ok")
