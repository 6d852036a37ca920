"""Sharing a server with named colleagues (labhub.sharing), on the real stack: a share gives the
guest the owner's one chosen server and nothing more, whatever the guest tries from inside it;
revoking it, removing the guest, or LABHUB_SHARING taking the owner's right away ends it; and
invitation links last no longer than LABHUB_SHARE_LINK_SECONDS. (Who gets which scopes, and what
the sharing service decides: tests/unit/test_sharing.py.)"""

import ast
import html
import json
import re
import time
from urllib.parse import quote


import harness

# Run by the guest in the owner's server, as the owner's uid: the server's own token (in every
# kernel's environment) tried on the hub's API against the owner, and the server's memory, which
# holds the browser tokens of everyone who opened it.
FROM_INSIDE = """
import json, os, urllib.request, urllib.error
api, token = os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
def hub(method, path, body=None):
    request = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": "token " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
def memory():
    try:
        with open(f"/proc/{os.getppid()}/mem", "rb"):
            return "opened"
    except OSError as e:
        return e.strerror
def share_warning():  # what JupyterLab's share dialog says to the owner (jupyterlab/base/custom.css)
    import jupyter_server
    try:
        with open(os.path.join(os.path.dirname(jupyter_server.__file__), "static", "custom", "custom.css"), "w"):
            return "opened"
    except OSError as e:
        return e.strerror
{"tokens": hub("GET", "/users/OWNER/tokens"), "new token": hub("POST", "/users/OWNER/tokens", {"note": "mine now"}),
 "stop other": hub("DELETE", "/users/OWNER/servers/side"), "start other": hub("POST", "/users/OWNER/servers/third"),
 "share on": hub("POST", "/shares/OWNER/", {"user": "GUEST2"}), "server memory": memory(),
 "share warning": share_warning()}
"""


def page_token(client: harness.HubClient) -> str:
    """The token JupyterLab's page holds for its browser (its page config), as the share dialog uses it."""
    page = client.lab()
    page.raise_for_status()
    config = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page.text, re.S)
    return json.loads(html.unescape(config.group(1)))["token"]


def as_token(stack, token: str, method: str, path: str, **kw) -> int:
    return stack.session().request(method, f"{stack.url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                                   timeout=30, **kw).status_code


def test_a_share_gives_the_guest_the_one_server_and_nothing_more_until_it_ends(stack, admin):
    sana, gusto, otto, remy = (harness.native_user(stack, admin, name) for name in ("sana", "gusto", "otto", "remy"))
    sana.start_server()
    side = sana.named("side")
    side.start_server()
    try:
        sana.write_file("plan.txt", "sana's plan")
        assert sana.api("POST", "/shares/sana/", json={"user": "gusto"}).status_code == 200
        assert [s["server"]["user"]["name"] for s in gusto.api("GET", "/users/gusto/shared").json()["items"]] == ["sana"]

        # gusto works in sana's server, as sana: her files, her kernels.
        guest = gusto.for_user("sana")
        assert guest.read_file("plan.txt") == "sana's plan"
        guest.write_file("review.txt", "gusto was here")
        assert sana.read_file("review.txt") == "gusto was here"

        # Only that server, and none of sana's powers on the hub.
        assert harness.lab_refused(guest.named("side"))
        assert harness.lab_refused(otto.for_user("sana"))
        for method, path in (("DELETE", "/users/sana/server"), ("DELETE", "/users/sana/servers/side"),
                             ("POST", "/users/sana/servers/third"), ("GET", "/users/sana/tokens"),
                             ("POST", "/users/sana/tokens"), ("POST", "/shares/sana/")):
            assert gusto.api(method, path, json={"user": "otto"}).status_code in (403, 404), (method, path)
        # The token gusto's browser holds for the lab page touches nothing of sana's either.
        token = page_token(guest)
        assert as_token(stack, token, "POST", "/shares/sana/", json={"user": "otto"}) in (403, 404)
        assert as_token(stack, token, "GET", "/users/sana/tokens") in (403, 404)
        # Hers may share this server (JupyterLab's share dialog uses it), and nothing else of hers.
        hers = page_token(sana)
        assert as_token(stack, hers, "POST", "/shares/sana/", json={"user": "otto"}) == 200
        assert as_token(stack, hers, "PATCH", "/shares/sana/", json={"user": "otto"}) == 200
        for method, path in (("POST", "/shares/sana/side"), ("GET", "/users/sana/tokens"), ("DELETE", "/users/sana/servers/side")):
            assert as_token(stack, hers, method, path, json={"user": "otto"}) in (403, 404), (method, path)
        # From inside sana's server, what gusto can reach as her uid gives nothing more either.
        code = FROM_INSIDE.replace("OWNER", "sana").replace("GUEST2", "otto")
        tried = ast.literal_eval(guest.execute(guest.start_kernel(), code))
        assert tried.pop("server memory") == "Permission denied", tried
        assert tried.pop("share warning") == "Permission denied", tried  # the dialog's warning stays
        assert set(tried.values()) <= {403, 404}, tried
        assert side.read_file("plan.txt") == "sana's plan"  # her other server never stopped
        assert sana.api("GET", "/users/sana/tokens").status_code == 200

        # A share with a user who is removed ends with them.
        assert sana.api("POST", "/shares/sana/", json={"user": "remy"}).status_code == 200
        assert admin.api("DELETE", "/users/remy").status_code == 204
        shared_with = {(s["kind"], (s["user"] or s["group"])["name"]) for s in sana.api("GET", "/shares/sana/").json()["items"]}
        assert shared_with == {("user", "gusto")}

        # sana revokes: gusto's way in closes within seconds (each server asks the hub again after 10 s),
        # and so do the kernel and terminal connections he has open; hers stay.
        kernel = guest.start_kernel()
        his_kernel, her_kernel = guest.kernel_socket(kernel), sana.kernel_socket(kernel)
        terminal = guest.server_api("POST", "/terminals").json()["name"]
        his_terminal = guest.server_websocket(f"terminals/websocket/{terminal}")
        assert his_kernel.run("6 * 7") == "42"
        assert sana.api("DELETE", "/shares/sana/").status_code == 204
        revoked = time.monotonic()
        while guest.server_api("GET", "/contents/plan.txt").status_code == 200:
            assert time.monotonic() - revoked < 30, "gusto still reads sana's files 30 s after she revoked the share"
            time.sleep(0.5)
        print(f"revoked share: requests refused after {time.monotonic() - revoked:.1f} s")
        assert harness.lab_refused(guest)
        for name, socket in (("kernel", his_kernel.ws), ("terminal", his_terminal)):
            assert harness.closed_within(socket, 30 - (time.monotonic() - revoked)), f"gusto's open {name} connection outlived the share"
        print(f"revoked share: open connections closed after {time.monotonic() - revoked:.1f} s")
        assert her_kernel.run("6 * 7") == "42"
        her_kernel.ws.close()
    finally:
        side.stop_server()
        side.forget_server()
        sana.stop_server()


def test_a_share_with_a_group_lets_its_members_in_while_they_are_in_it(stack, admin):
    """JupyterHub alone refuses a group's members at the owner's server; the hub image's patch
    (jupyterhub/patches/group-shares-in-tokens.patch) lets them in."""
    quinn, wim, xena = (harness.native_user(stack, admin, name) for name in ("quinn", "wim", "xena"))
    assert admin.api("POST", "/groups/sharing-optics", json={"users": ["wim"]}).status_code == 201
    quinn.start_server()
    try:
        quinn.write_file("optics.txt", "quinn's lenses")
        assert quinn.api("POST", "/shares/quinn/", json={"group": "sharing-optics"}).status_code == 200
        assert [s["server"]["user"]["name"] for s in wim.api("GET", "/users/wim/shared").json()["items"]] == ["quinn"]
        his, hers = wim.for_user("quinn"), xena.for_user("quinn")
        assert his.read_file("optics.txt") == "quinn's lenses"
        assert harness.lab_refused(hers)

        # Membership decides, at each visit: xena joins and gets in; wim leaves and his way in closes.
        assert admin.api("POST", "/groups/sharing-optics/users", json={"users": ["xena"]}).status_code == 200
        assert hers.read_file("optics.txt") == "quinn's lenses"
        assert admin.api("DELETE", "/groups/sharing-optics/users", json={"users": ["wim"]}).status_code == 200
        took = wait_until(lambda: his.server_api("GET", "/contents/optics.txt").status_code != 200, 30,
                          "wim, out of the group, cut off")
        print(f"a member who left the group was refused after {took:.1f} s")
        assert harness.lab_refused(his)

        # quinn revokes the group's share: xena is cut off too.
        assert quinn.api("PATCH", "/shares/quinn/", json={"group": "sharing-optics"}).status_code == 200
        took = wait_until(lambda: hers.server_api("GET", "/contents/optics.txt").status_code != 200, 30,
                          "xena cut off after the group's share was revoked")
        print(f"a revoked group share refused its member after {took:.1f} s")
        assert quinn.read_file("optics.txt") == "quinn's lenses"
    finally:
        quinn.stop_server()
        admin.api("DELETE", "/groups/sharing-optics")


def wait_until(condition, seconds: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < seconds, f"{what}: not within {seconds} s"
        time.sleep(1)
    return time.monotonic() - began


def test_sharing_limited_to_groups_ends_the_others_shares_and_links_expire(stack, admin):
    lena, mo, pina = (harness.native_user(stack, admin, name) for name in ("lena", "mo", "pina"))
    for owner in (lena, mo):
        owner.start_server()
        owner.stop_server()  # a stopped server can be shared too
    assert lena.api("POST", "/shares/lena/", json={"user": "pina"}).status_code == 200
    assert admin.api("POST", "/groups/sharing-sharers", json={"users": ["mo"]}).status_code == 201
    try:
        with stack.configured(sharing="sharing-sharers", share_link_seconds="60"):
            # lena is in no sharing group now: her share ends, and she cannot share again.
            took = wait_until(lambda: not admin.api("GET", "/shares/lena/").json()["items"], 30, "lena's share ended")
            print(f"a share of a user no longer allowed to share ended after {took:.0f} s")
            assert "labhub sharing: ended /shares/lena/: lena may not share (LABHUB_SHARING)" in stack.service_log("hub")
            assert lena.api("POST", "/shares/lena/", json={"user": "pina"}).status_code == 403
            # mo may: a share, and an invitation link asking for a day, which lasts 60 s.
            assert mo.api("POST", "/shares/mo/", json={"user": "pina"}).status_code == 200
            made = mo.api("POST", "/share-codes/mo/", json={"expires_in": 86400})
            assert made.status_code == 200, made.text
            accept = f"/hub/accept-share?code={quote(made.json()['code'])}"
            assert pina.http.get(pina.url(accept)).status_code == 200  # a valid link's page
            took = wait_until(lambda: not mo.api("GET", "/share-codes/mo/").json()["items"], 120, "mo's link expired")
            print(f"an invitation link asking for a day lasted {took:.0f} s (LABHUB_SHARE_LINK_SECONDS=60)")
            assert pina.http.get(pina.url(accept)).status_code == 404  # no such code
            assert [s["user"]["name"] for s in mo.api("GET", "/shares/mo/").json()["items"]] == ["pina"]
    finally:
        admin.api("DELETE", "/groups/sharing-sharers")
