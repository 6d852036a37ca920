"""Sharing from the hub's home page, in two browsers (labhub.sharing, templates/home.html): the owner
shares her server with a colleague (and a group), who opens it from his home page and works in it;
she revokes the share, and his way in closes."""

import time
from urllib.parse import quote

import harness
from conftest import goto, log_in

PASSWORD = "Lab-Notebook-2026"  # harness.native_user's


def test_an_owner_shares_from_her_home_page_the_guest_opens_it_from_his_and_revoking_ends_it(
        stack, admin, new_page, artifacts):
    tess = harness.native_user(stack, admin, "tess")
    harness.native_user(stack, admin, "uma")
    assert admin.api("POST", "/groups/sharing-readers").status_code == 201
    tess.start_server()
    tess.write_file("draft.txt", "tess's draft")
    try:
        owner = new_page()
        log_in(owner, "tess", PASSWORD)
        goto(owner, "/hub/home")
        assert "works in it as you" in owner.locator("#labhub-share-warning").inner_text()
        row = owner.locator('#labhub-shares tr[data-server=""]')
        row.locator("input[name=with]").fill("uma")
        row.locator("form.labhub-share button").click()
        row.locator(".labhub-shared-with .labhub-share", has_text="uma").wait_for()
        row.locator("select[name=kind]").select_option("group")
        row.locator("input[name=with]").fill("sharing-readers")
        row.locator("form.labhub-share button").click()
        team = row.locator(".labhub-shared-with .labhub-share", has_text="group sharing-readers")
        team.wait_for()
        row.locator(".labhub-invite").click()
        link = row.locator(".labhub-invitation")
        link.wait_for()
        assert "/hub/accept-share?code=" in link.input_value()
        owner.screenshot(path=str(artifacts / "sharing-owner-home.png"))
        team.locator(".labhub-revoke").click()
        team.wait_for(state="detached")
        assert [s["kind"] for s in tess.api("GET", "/shares/tess/").json()["items"]] == ["user"]

        guest = new_page()
        log_in(guest, "uma", PASSWORD)
        goto(guest, "/hub/home")
        shared = guest.locator("#labhub-shared-with-me li", has_text="tess's default server")
        shared.wait_for()
        guest.screenshot(path=str(artifacts / "sharing-guest-home.png"))
        shared.locator("a.labhub-open").click()
        # The hub asks him to confirm, and says what opening her server means.
        notice = guest.locator("#labhub-guest-notice")
        notice.wait_for()
        assert "In it you work as tess" in notice.inner_text()
        guest.screenshot(path=str(artifacts / "sharing-guest-confirms.png"))
        guest.click("form button[type=submit]")
        guest.wait_for_url(lambda url: "/user/tess/" in url, timeout=60_000)
        guest.wait_for_selector(".jp-Launcher", timeout=90_000)
        # In her server: her files, as her.
        seen = guest.evaluate("""async () => {
            const xsrf = document.cookie.match(/_xsrf=([^;]+)/);
            const r = await fetch("/user/tess/api/contents/draft.txt", {headers: {"X-XSRFToken": xsrf ? xsrf[1] : ""}});
            return (await r.json()).content;
        }""")
        assert seen == "tess's draft"

        row.locator(".labhub-shared-with .labhub-share", has_text="uma").locator(".labhub-revoke").click()
        row.locator(".labhub-shared-with .labhub-share").wait_for(state="detached")
        revoked = time.monotonic()
        while guest.evaluate("async () => (await fetch('/user/tess/api/contents/draft.txt', {redirect: 'manual'})).status") == 200:
            assert time.monotonic() - revoked < 30, "uma still reads tess's files 30 s after the revoke"
            time.sleep(0.5)
        goto(guest, "/hub/home")
        assert guest.locator("#labhub-shared-with-me").is_hidden()
    finally:
        tess.stop_server()
        admin.api("DELETE", "/groups/sharing-readers")


def test_a_hostile_users_name_is_shown_as_text_on_both_sides_of_a_share(stack, admin, new_page):
    """A name that is markup where a page writes it as HTML, on the owner's list of shares and on the
    guest-side list of servers shared with you (native sign-up refuses spaces and slashes, so no
    attribute can carry a script; the markup itself is the proof)."""
    hostile = 'x"><labhub-injected>'
    mallory = harness.native_user(stack, admin, hostile)
    harness.native_user(stack, admin, "nia")
    mallory.start_server()
    try:
        r = mallory.api("POST", f"/shares/{quote(hostile, safe='')}/", json={"user": "nia"})
        assert r.status_code in (200, 201), r.text
        nia = new_page()
        log_in(nia, "nia", PASSWORD)
        goto(nia, "/hub/home")
        nia.locator("#labhub-shared-with-me li", has_text=f"{hostile}'s default server").wait_for()
        row = nia.locator('#labhub-shares tr[data-server=""]')
        row.locator("input[name=with]").fill(hostile)
        row.locator("form.labhub-share button").click()
        row.locator(".labhub-shared-with .labhub-share", has_text=hostile).wait_for()
        assert nia.locator("labhub-injected").count() == 0
    finally:
        mallory.stop_server()


def open_share_dialog(page):
    """JupyterLab's share dialog (jupyter-collaboration's), from the command palette."""
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Generate a Shared Link")
    page.keyboard.press("Enter")
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    return dialog


def test_an_owner_shares_from_jupyterlabs_share_dialog_and_her_guests_dialog_cannot_share_it_on(
        stack, admin, new_page, artifacts):
    vik = harness.native_user(stack, admin, "vik")
    harness.native_user(stack, admin, "wanda")
    vik.start_server()
    try:
        owner = new_page()
        log_in(owner, "vik", PASSWORD)
        goto(owner, "/user/vik/lab")
        owner.wait_for_selector(".jp-Launcher", timeout=90_000)
        dialog = open_share_dialog(owner)
        assert "Share Jupyter Server default" in dialog.inner_text()
        # It says what a share gives (jupyterlab/base/custom.css), as the home page does.
        said = dialog.locator(".jp-ManageSharesBody-search-container").evaluate("e => getComputedStyle(e, '::before').content")
        assert "works in it as you" in said, said
        dialog.locator(".jp-ManageSharesBody-search-input").fill("wanda")
        dialog.locator(".jp-ManageSharesBody-user-item", has_text="wanda").click()
        dialog.locator(".jp-ManageSharesBody-selected-users td", has_text="wanda").wait_for()
        owner.screenshot(path=str(artifacts / "sharing-jupyterlab-dialog.png"))
        assert [(s["user"]["name"], s["scopes"]) for s in vik.api("GET", "/shares/vik/").json()["items"]] == [
            ("wanda", ["access:servers!server=vik/"])]

        # wanda opens it from her home page; her dialog there only gives the address.
        guest = new_page()
        log_in(guest, "wanda", PASSWORD)
        goto(guest, "/hub/home")
        guest.locator("#labhub-shared-with-me li", has_text="vik's default server").locator("a.labhub-open").click()
        guest.locator("#labhub-guest-notice").wait_for()
        guest.click("form button[type=submit]")
        guest.wait_for_selector(".jp-Launcher", timeout=90_000)
        dialog = open_share_dialog(guest)
        assert "Share Jupyter Server Link" in dialog.inner_text()
        assert dialog.locator(".jp-ManageSharesBody-search-input").count() == 0
    finally:
        vik.stop_server()
