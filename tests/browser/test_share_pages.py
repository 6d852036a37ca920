"""Sharing from the hub's home page, in two browsers (labhub.sharing, templates/home.html): the owner
shares her server with a colleague, who opens it from his home page and works in it; she revokes
the share, and his way in closes."""

import time

import harness
from conftest import goto, log_in

PASSWORD = "Lab-Notebook-2026"  # harness.native_user's


def test_an_owner_shares_from_her_home_page_the_guest_opens_it_from_his_and_revoking_ends_it(
        stack, admin, new_page, artifacts):
    tess = harness.native_user(stack, admin, "tess")
    harness.native_user(stack, admin, "uma")
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
        row.locator(".labhub-invite").click()
        link = row.locator(".labhub-invitation")
        link.wait_for()
        assert "/hub/accept-share?code=" in link.input_value()
        owner.screenshot(path=str(artifacts / "sharing-owner-home.png"))

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
