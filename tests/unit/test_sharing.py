"""Who may share, what the hub grants for it, and what the sharing service ends (labhub.sharing).
The shares themselves, on the real stack: tests/integration/test_sharing.py."""

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import jupyterhub
import pytest
from traitlets.config import Config

from labhub import resources, settings, sharing

import pages
from contexts import hub_context

GROUP_SHARE_PATCH = Path(__file__).parents[2] / "jupyterhub/patches/group-shares-in-tokens.patch"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def configured(**env) -> Config:
    c = Config()
    ctx = hub_context(settings.load({f"LABHUB_{k.upper()}": v for k, v in env.items()}))
    resources.configure(c, ctx)
    sharing.configure(c, ctx)
    return c


def test_on_every_user_may_share_and_find_whom_to_share_with():
    c = configured()
    user_role = next(r for r in c.JupyterHub.load_roles if r["name"] == "user")
    assert user_role["scopes"] == ["self", "shares!user", "read:users:name", "list:users", "read:groups:name", "list:groups"]
    # A JupyterLab page's token may share its own server and no other (JupyterLab's share dialog);
    # JupyterHub narrows it to what the page's visitor may do.
    assert c.Spawner.oauth_client_allowed_scopes == [
        "shares!server", "read:users:name", "list:users", "read:groups:name", "list:groups"]


def test_with_user_subdomains_pages_get_nothing_they_could_not_use():
    c = configured(user_subdomains="true", hostname="lab.example.org")
    assert "oauth_client_allowed_scopes" not in c.Spawner  # the hub is another site to them


def test_limited_to_groups_only_their_members_get_the_scopes():
    c = configured(sharing="bio,imaging")
    assert [r for r in c.JupyterHub.load_roles if r["name"] in ("user", sharing.SHARER_ROLE)] == [
        {"name": sharing.SHARER_ROLE, "scopes": sharing.SHARER_SCOPES, "groups": ["bio", "imaging"]}]


def test_off_nobody_gets_them_but_the_service_still_runs_to_end_old_shares():
    c = configured(sharing="off")
    assert "oauth_client_allowed_scopes" not in c.Spawner  # pages' tokens: their server alone
    assert {r["name"] for r in c.JupyterHub.load_roles} == {"idle-culler", "sharing"}
    [service] = [s for s in c.JupyterHub.services if s["name"] == "sharing"]
    assert service["command"][-2:] == ["--sharing=off", "--link-seconds=86400"]


def test_the_sharing_service_and_the_idle_culler_both_run_with_their_own_roles():
    c = configured(sharing="bio", share_link_seconds="3600")
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler", "sharing"]
    assert [s for s in c.JupyterHub.services if s["name"] == "sharing"][0]["command"][-2:] == [
        "--sharing=bio", "--link-seconds=3600"]
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "sharing")
    assert role["services"] == ["sharing"] and "admin:users" not in role["scopes"] and "access:servers" not in role["scopes"]


def test_servers_edit_together_only_with_collaboration_on():
    assert configured().Spawner.args == ["--YDocExtension.disable_rtc=True"]
    assert "args" not in configured(collaboration="true").Spawner


@pytest.mark.parametrize("setting, groups, expected", [
    ("on", [], True), ("off", ["bio"], False), (("bio", "imaging"), ["imaging"], True), (("bio",), ["chem"], False)])
def test_may_share(setting, groups, expected):
    assert sharing.may_share(setting, groups) is expected


def share(server: str, created="2027-01-15T07:00:00Z") -> dict:
    return {"server": {"name": server, "user": {"name": "ann"}}, "created_at": created, "user": {"name": "bo"}}


def code(server: str, number: int, created: str) -> dict:
    return {"server": {"name": server, "user": {"name": "ann"}}, "id": f"sc_{number}", "created_at": created}


def test_a_user_who_may_no_longer_share_loses_every_share_and_link_of_every_server():
    owner = {"name": "ann", "groups": ["chem"]}
    ended = sharing.revocations(owner, [share(""), share("big data")], [code("", 3, "2027-01-15T07:59:00Z")],
                                ("bio",), 86400, NOW)
    assert ended == [("/shares/ann/", "ann may not share (LABHUB_SHARING)"),
                     ("/shares/ann/big%20data", "ann may not share (LABHUB_SHARING)"),
                     ("/share-codes/ann/", "ann may not share (LABHUB_SHARING)"),
                     ("/share-codes/ann/big%20data", "ann may not share (LABHUB_SHARING)")]


def test_a_sharer_keeps_shares_and_young_links_and_loses_links_older_than_the_setting():
    owner = {"name": "ann", "groups": []}
    codes = [code("", 3, "2027-01-15T06:59:59Z"), code("", 4, "2027-01-15T07:00:01+00:00")]
    assert sharing.revocations(owner, [share("")], codes, "on", 3600, NOW) == [
        ("/share-codes/ann/?id=sc_3", "ann's invitation link is older than LABHUB_SHARE_LINK_SECONDS")]


def test_the_home_page_says_how_long_a_link_lasts_and_asks_for_that():
    c = configured(share_link_seconds="43200")
    assert c.JupyterHub.template_vars == {"labhub_share_link_seconds": 43200, "labhub_share_link_lifetime": "12 hours"}
    assert [sharing.lifetime(s) for s in (86400, 3600, 5400, 75)] == ["1 day", "1 hour", "90 minutes", "75 seconds"]


def test_the_service_looks_often_enough_for_short_links_and_not_too_often():
    assert [sharing.check_seconds(s) for s in (60, 120, 3600, 86400)] == [15, 30, 60, 60]


def test_the_admin_lists_every_share_and_the_links_not_yet_expired(tmp_path):
    database = tmp_path / "jupyterhub.sqlite"
    with sqlite3.connect(database) as db:  # the tables as JupyterHub makes them, the columns read here
        db.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
            CREATE TABLE groups (id INTEGER PRIMARY KEY, name TEXT);
            CREATE TABLE spawners (id INTEGER PRIMARY KEY, user_id INTEGER, name TEXT);
            CREATE TABLE shares (id INTEGER PRIMARY KEY, owner_id INTEGER, spawner_id INTEGER, user_id INTEGER,
                                 group_id INTEGER, created_at DATETIME);
            CREATE TABLE share_codes (id INTEGER PRIMARY KEY, owner_id INTEGER, spawner_id INTEGER,
                                      expires_at DATETIME, exchange_count INTEGER);
            INSERT INTO users VALUES (1, 'sana'), (2, 'gus');
            INSERT INTO groups VALUES (1, 'bio');
            INSERT INTO spawners VALUES (1, 1, ''), (2, 1, 'big');
            INSERT INTO shares VALUES (1, 1, 2, NULL, 1, '2027-01-14 09:30:00.123'), (2, 1, 1, 2, NULL, '2027-01-15 07:00:00');
            INSERT INTO share_codes VALUES (1, 1, 1, '2027-01-16 08:00:00', 2), (2, 1, 1, '2027-01-15 07:59:00', 0);""")
    assert sharing.listed(database, datetime.fromtimestamp(NOW, timezone.utc)) == [
        "OWNER  SERVER   SHARED WITH  SINCE (UTC)",
        "sana   default  gus          2027-01-15 07:00",
        "sana   big      group bio    2027-01-14 09:30",
        "invitation link to sana's default server: until 2027-01-16 08:00 UTC, used 2 times"]
    assert sharing.listed(tmp_path / "none.sqlite", datetime.fromtimestamp(NOW, timezone.utc)) == []


def server(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, display_name="", active=False, ready=False, pending=None, last_activity=None)


def home_page(scopes: set[str]) -> str:
    user = SimpleNamespace(name="ann", json_escaped_name="ann", admin=False, spawner=SimpleNamespace(options_form=""),
                           server_url=lambda name="": f"/user/ann/{name}",
                           all_spawners=lambda include_default=True: [server(""), server("big data")][not include_default:])
    return pages.render("home.html", user=user, expanded_scopes=scopes, default_server=server(""), url="/hub/spawn/ann",
                        allow_named_servers=True, named_server_limit_per_user=2, xsrf_token="x",
                        labhub_share_link_seconds=3600, labhub_share_link_lifetime="1 hour")


def test_a_sharers_home_page_has_each_server_to_share_and_says_a_guest_works_as_them():
    page = home_page({"shares!user=ann", "read:shares!user=ann"})
    assert '<tr data-server="">' in page and '<tr data-server="big data">' in page
    assert "works in it <strong>as you</strong>" in page and "Invitation link (lasts 1 hour)" in page
    assert "const linkSeconds = 3600;" in page
    assert 'id="labhub-shared-with-me" hidden' in page  # shown once the API lists servers shared with ann


def test_a_home_page_of_someone_who_may_not_share_shows_only_what_is_shared_with_them():
    page = home_page({"read:users!user=ann"})
    assert "labhub-shared-with-me" in page and "data-server=" not in page and "Share your servers" not in page


class FakeHub:
    """JupyterHub's API as the sharing service sees it: the answers by path; what it was asked."""

    def __init__(self, answers: dict[str, list[dict]]):
        self.answers, self.asked = answers, []

    def items(self, path: str) -> list[dict]:
        self.asked.append(("GET", path))
        return self.answers[path]

    def call(self, method: str, path: str) -> None:
        self.asked.append((method, path))


def test_the_service_lists_shares_only_of_those_who_may_no_longer_share(capsys):
    hub = FakeHub({"/users": [{"name": "ann", "groups": ["bio"]}, {"name": "bo", "groups": []}],
                   "/share-codes/ann": [], "/share-codes/bo": [], "/shares/bo": [share("")]})
    sharing.enforce(hub, ("bio",), 86400)
    assert hub.asked == [("GET", "/users"), ("GET", "/share-codes/ann"), ("GET", "/shares/bo"), ("GET", "/share-codes/bo"),
                         ("DELETE", "/shares/bo/"), ("DELETE", "/share-codes/bo/")]
    assert "labhub sharing: ended /shares/bo/: bo may not share (LABHUB_SHARING)" in capsys.readouterr().out


# A member of a group the owner shared with, as the owner's server sees them: through the token the
# server got for the member's browser (from its OAuth client), checked by the hub's scopes.
GROUP_MEMBERS_TOKEN = """
from jupyterhub import orm, scopes
db = orm.new_session_factory("sqlite://")()
owner, member = orm.User(name="owner"), orm.User(name="member")
team = orm.Group(name="team", users=[member])
client = orm.OAuthClient(identifier="jupyterhub-user-owner")
spawner = orm.Spawner(user=owner, name="", oauth_client=client)
db.add_all([owner, member, team, client, spawner])
db.commit()
orm.Share.grant(db, spawner, team)
token = orm.APIToken.find(db, member.new_api_token(scopes=["access:servers!server=owner/"], client_id=client.identifier))
print("access:servers!server=owner/" in scopes.get_scopes_for(token))
"""


def group_member_gets_in(jupyterhub_parent: Path) -> bool:
    ran = subprocess.run([sys.executable, "-c", GROUP_MEMBERS_TOKEN], env={**os.environ, "PYTHONPATH": str(jupyterhub_parent)},
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.split()[-1] == "True"


def test_the_hubs_patch_lets_a_groups_members_through_their_tokens_which_jupyterhub_alone_does_not(tmp_path):
    """The hub image patches JupyterHub (jupyterhub/patches/): this JupyterHub refuses them unpatched
    (when it stops refusing, JupyterHub has the fix and the patch goes), and lets them in patched."""
    installed = Path(jupyterhub.__file__).parent
    assert not group_member_gets_in(installed.parent), "JupyterHub now lets group members in: drop the patch"
    shutil.copytree(installed, tmp_path / "jupyterhub", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    subprocess.run(["patch", "--batch", "--forward", "-p1", "-d", str(tmp_path), "-i", str(GROUP_SHARE_PATCH)], check=True,
                   capture_output=True)
    assert group_member_gets_in(tmp_path)
