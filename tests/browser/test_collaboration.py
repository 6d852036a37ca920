"""Real-time collaboration (LABHUB_COLLABORATION, jupyter-collaboration in the images), in two
browsers: the owner and her guest type in one notebook at once, each sees the other's cell, the file
holds both edits once (jupyter-collaboration's open reports are of duplicated cells and lost
content), a reload duplicates nothing; revoking the share closes the guest's live connection."""

import itertools
import json
import re
import time

import harness
from conftest import goto, log_in

PASSWORD = "Lab-Notebook-2026"  # harness.native_user's
NOTEBOOK = "pair.ipynb"
EMPTY_NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ""}],
                  "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                  "nbformat": 4, "nbformat_minor": 5}
ROOM = "/api/collaboration/room/"


def open_notebook(page, owner: str) -> None:
    goto(page, f"/user/{owner}/lab/tree/{NOTEBOOK}")
    if "/hub/api/oauth2/authorize" in page.url:  # a guest confirms, once (the hub's page for shared servers)
        page.click("form button[type=submit]")
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
    page.wait_for_timeout(2_000)  # any dialog the notebook opens with has shown
    dialog = page.locator(".jp-Dialog")
    assert not dialog.count(), f"JupyterLab asks: {dialog.first.inner_text()!r}"


def cell_texts(page) -> list[str]:
    return page.locator(".jp-Notebook .jp-Cell .cm-content").all_inner_texts()


def type_in_cell(page, index: int, text: str) -> None:
    page.locator(".jp-Notebook .jp-Cell .cm-content").nth(index).click()
    page.keyboard.press("End")
    page.keyboard.type(text)


def wait_for_cells(page, expected: list[str], timeout=30) -> None:
    deadline = time.monotonic() + timeout
    while [text.strip() for text in cell_texts(page)] != expected:
        assert time.monotonic() < deadline, f"cells {cell_texts(page)!r}, expected {expected!r}"
        page.wait_for_timeout(250)


def saved_sources(owner: "harness.HubClient") -> list[str]:
    r = owner.server_api("GET", f"/contents/{NOTEBOOK}")
    r.raise_for_status()
    return ["".join(cell["source"]) for cell in r.json()["content"]["cells"]]


def test_collaboration_is_off_by_default(stack, admin):
    kim = harness.native_user(stack, admin, "kim")
    kim.start_server()
    try:
        page = kim.lab()
        page.raise_for_status()
        config = re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page.text, re.S)
        assert json.loads(config.group(1))["disableRTC"] is True
    finally:
        kim.stop_server()


def test_owner_and_guest_edit_one_notebook_together_and_revoking_cuts_the_guest_off(stack, admin, new_page, artifacts):
    with stack.configured(collaboration="true"):
        ottilie = harness.native_user(stack, admin, "ottilie")
        harness.native_user(stack, admin, "piet")
        ottilie.start_server()
        try:
            r = ottilie.server_api("PUT", f"/contents/{NOTEBOOK}", json={"type": "notebook", "content": EMPTY_NOTEBOOK})
            assert r.status_code in (200, 201), r.text
            r = ottilie.api("POST", "/shares/ottilie/", json={"user": "piet"})
            assert r.status_code in (200, 201), r.text

            owner = new_page()
            log_in(owner, "ottilie", PASSWORD)
            open_notebook(owner, "ottilie")
            guest = new_page()
            rooms = []
            guest.on("websocket", lambda ws: ROOM in ws.url and rooms.append(ws))
            log_in(guest, "piet", PASSWORD)
            open_notebook(guest, "ottilie")
            assert [ws for ws in rooms if not ws.is_closed()], "the guest's notebook has no live room connection"

            # He adds a second cell; then they type at once, a key each in turn, she in the first
            # cell and he in his.
            guest.locator(".jp-Notebook .jp-Cell").first.click()
            guest.keyboard.press("Escape")  # command mode: b adds a cell below
            guest.keyboard.press("b")
            wait_for_cells(owner, ["", ""])
            type_in_cell(owner, 0, "")
            type_in_cell(guest, 1, "")
            both = ["a = 'from ottilie'", "b = 'from piet'"]
            for hers, his in itertools.zip_longest(*both, fillvalue=""):
                owner.keyboard.type(hers)
                guest.keyboard.type(his)
            wait_for_cells(owner, both)
            wait_for_cells(guest, both)
            owner.screenshot(path=str(artifacts / "collaboration-owner.png"))
            guest.screenshot(path=str(artifacts / "collaboration-guest.png"))

            # Saved by the server (a second after the last change), both edits once.
            deadline = time.monotonic() + 30
            while (sources := saved_sources(ottilie)) != both:
                assert time.monotonic() < deadline, f"the saved notebook's cells: {sources!r}"
                time.sleep(0.5)
            rooms.clear()  # (a reload ends the page's connections, and Chromium may not say so)
            for page in (owner, guest):
                page.reload()
                page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
                wait_for_cells(page, both)
            assert saved_sources(ottilie) == both

            r = ottilie.api("DELETE", "/shares/ottilie/")
            assert r.status_code == 204, r.text
            revoked = time.monotonic()
            # Closed, and any connection his page opens again refused.
            while True:
                open_rooms = [ws.url for ws in rooms if not ws.is_closed()]
                status = guest.evaluate("async () => (await fetch('/user/ottilie/api/contents', {redirect: 'manual'})).status")
                if not open_rooms and status != 200:
                    break
                assert time.monotonic() - revoked < 30, f"30 s after the revoke: {open_rooms} open, his API call answered {status}"
                guest.wait_for_timeout(500)
            # His page shows an error (JupyterLab's: its kernel, refused, "died"); what he types
            # now reaches neither her page nor the file.
            guest.locator(".jp-Dialog").wait_for(timeout=30_000)
            guest.screenshot(path=str(artifacts / "collaboration-guest-revoked.png"))
            guest.keyboard.press("Escape")
            type_in_cell(guest, 1, "  # after the revoke")
            owner.wait_for_timeout(5_000)
            wait_for_cells(owner, both, timeout=1)
            assert saved_sources(ottilie) == both
        finally:
            ottilie.stop_server()
