"""Drives the Lore portal in headless Chromium (Debian's `chromium`) with Playwright.

Called by the end-to-end test `portal_in_a_real_browser` with a running `lore serve`:

    python portal.py BASE_URL OUT_DIR UPLOAD_FILE

Asks a question and watches the answer stream in, opens a cited/retrieved passage,
uploads a document and sees it listed, answers from it, deletes it and sees it gone from
answers. Screenshots go to OUT_DIR. Exits non-zero with a message on the first failure.
"""
import os
import sys
import time

from playwright.sync_api import expect, sync_playwright

BASE, OUT, UPLOAD = sys.argv[1], sys.argv[2], sys.argv[3]
UPLOAD_NAME = os.path.basename(UPLOAD)
TIMEOUT_MS = 240_000


def shot(page, name):
    page.screenshot(path=os.path.join(OUT, name), full_page=True)


def ask(page, question):
    """Asks, checks the answer grows while streaming, returns the finished turn."""
    turns_before = page.locator(".turn").count()
    page.fill("#question", question)
    page.keyboard.press("Enter")
    turn = page.locator(".turn").nth(turns_before)
    answer = turn.locator(".a")
    # Tokens arrive: the answer's text is seen at two different non-empty lengths, or
    # the answer finished between two looks (a very short answer).
    lengths = set()
    deadline = time.time() + TIMEOUT_MS / 1000
    while time.time() < deadline:
        busy = answer.get_attribute("aria-busy") == "true"
        text = answer.inner_text()
        if busy and text and not text.startswith(("Searching", "Reading")):
            lengths.add(len(text))
        if not busy:
            break
        time.sleep(0.05)
    expect(answer).not_to_have_attribute("aria-busy", "true", timeout=TIMEOUT_MS)
    if "error" in (answer.get_attribute("class") or ""):
        raise SystemExit(f"the answer failed: {answer.inner_text()}")
    return turn, lengths


def retrieved_docs(turn):
    turn.locator("details.passages summary").click()
    return turn.locator("details.passages li").all_inner_texts()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.on("dialog", lambda d: d.accept())  # the delete confirmation
    page.goto(BASE)
    expect(page.locator("#ready")).to_contain_text("documents", timeout=30_000)
    shot(page, "01-ask-empty.png")

    turn, lengths = ask(page, "How can chronyd serve time to other computers on our network?")
    if not lengths:
        raise SystemExit("no streamed text was seen before the answer finished")
    docs = retrieved_docs(turn)
    if not any("chrony/FAQ" in d for d in docs):
        raise SystemExit(f"chrony/FAQ not among the retrieved passages: {docs}")
    # A citation (in the text, or in the passage list) opens the passage with its source.
    cite = turn.locator(".a .cite")
    (cite.first if cite.count() else turn.locator("details.passages .cite").first).click()
    dialog = page.locator("#passage-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#passage-meta")).to_contain_text("chrony/FAQ")
    if not page.locator("#passage-text").inner_text().strip():
        raise SystemExit("the passage dialog is empty")
    shot(page, "02-answer-and-passage.png")
    dialog.locator("button", has_text="Close").click()
    # An answer (not a "couldn't find") carries its quote; its citation opens the passage
    # with exactly the quoted sentence marked.
    if "notfound" not in (turn.locator(".a").get_attribute("class") or ""):
        quote = turn.locator("figure.quote")
        expect(quote).to_have_count(1)
        quoted = quote.locator("blockquote").inner_text().strip()
        quote.locator(".cite").click()
        expect(dialog).to_be_visible()
        marked = page.locator("#passage-text mark.quote").inner_text().strip()
        if not quoted or marked != quoted:
            raise SystemExit(f"the quote {quoted!r} is not what the passage marks: {marked!r}")
        dialog.locator("button", has_text="Close").click()

    page.click("#tab-library")
    page.set_input_files("#file-input", UPLOAD)
    expect(page.locator("#uploads li").first).to_contain_text("Done:", timeout=TIMEOUT_MS)
    expect(page.locator("#documents")).to_contain_text(UPLOAD_NAME)
    shot(page, "03-library-uploaded.png")

    page.click("#tab-ask")
    page.click("#new-button")
    turn, _ = ask(page, "Which product code activates a new Zephyr-9 VPN gateway?")
    docs = retrieved_docs(turn)
    if UPLOAD_NAME not in (docs[0] if docs else ""):
        raise SystemExit(f"the uploaded document is not the best passage: {docs}")
    shot(page, "04-answer-from-upload.png")

    page.click("#tab-library")
    row = page.locator("#documents tr", has_text=UPLOAD_NAME)
    row.locator("button", has_text="Delete").click()
    expect(page.locator("#documents")).not_to_contain_text(UPLOAD_NAME, timeout=30_000)
    shot(page, "05-library-deleted.png")

    page.click("#tab-ask")
    turn, _ = ask(page, "Which product code activates a new Zephyr-9 VPN gateway?")
    docs = retrieved_docs(turn)
    if any(UPLOAD_NAME in d for d in docs):
        raise SystemExit(f"the deleted document still answers: {docs}")
    shot(page, "06-answer-after-delete.png")
    browser.close()
print("portal ok")
