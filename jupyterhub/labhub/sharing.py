"""Sharing (README, Working together): a user shares one of their servers with named colleagues or
groups through JupyterHub's shares, and each guest works in the owner's server as the owner
(JupyterHub's model: the owner's container, files and kernels).

LABHUB_SHARING says who may share: every user, nobody, or the members of some groups. Those who may
hold SHARER_SCOPES: the shares of their own servers (`shares!user`), and users' and groups' names,
to say whom to share with. They share from the hub's home page (templates/home.html), from
JupyterLab's share dialog (PAGE_SCOPES), or with JupyterHub's REST API.

JupyterHub keeps what it was told: a share made while sharing was allowed outlives a change of
LABHUB_SHARING, and the maker of an invitation link (a share code) picks its life, up to a year.
So a hub-managed service, this module run as `python -m labhub.sharing` (the standard library
alone), ends the shares and links of those who may no longer share, and links older than
LABHUB_SHARE_LINK_SECONDS, at the hub's start and every CHECK_SECONDS after.
"""

import argparse
import json
import os
import sqlite3
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import hooks
from .terminal import columns, printable

if TYPE_CHECKING:
    from .context import HubContext

# Whom to share with: users' and groups' names, and their lists (to search them by name).
# A group's members get in through jupyterhub/patches/group-shares-in-tokens.patch.
NAME_SCOPES = ["read:users:name", "list:users", "read:groups:name", "list:groups"]
SHARER_SCOPES = ["shares!user", *NAME_SCOPES]
# What a JupyterLab page's token may do beyond opening its server: share that server alone (`!server`,
# which JupyterHub reads as the server whose page holds it), from jupyter-collaboration's share
# dialog. JupyterHub gives a token no more than its holder may, so only the owner's page (if they
# may share) gets it; a guest's page may not share it on.
PAGE_SCOPES = ["shares!server", *NAME_SCOPES]
SHARER_ROLE = "labhub-sharer"
SERVICE = "sharing"
CHECK_SECONDS = 60  # at most; a shorter link life is checked 4 times within it
PAGE = 200  # JupyterHub's largest API page


def may_share(sharing: str | tuple[str, ...], groups: list[str]) -> bool:
    """Whether a member of these groups may share, by LABHUB_SHARING."""
    return sharing == "on" or (sharing != "off" and bool(set(sharing) & set(groups)))


def check_seconds(link_seconds: int) -> int:
    return max(5, min(CHECK_SECONDS, link_seconds // 4))


def lifetime(seconds: int) -> str:
    """A link's life as the home page says it: 1 day, 12 hours, 90 minutes, 75 seconds."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"


def configure(c, ctx: "HubContext") -> None:
    s = ctx.settings
    if s.sharing == "on":
        roles = [{"name": "user", "scopes": ["self", *SHARER_SCOPES]}]
    elif s.sharing != "off":
        roles = [{"name": SHARER_ROLE, "scopes": SHARER_SCOPES, "groups": list(s.sharing)}]
    else:
        roles = []
    # With user subdomains, JupyterLab's pages may not ask the hub (another site): nothing to give.
    if roles and not s.user_subdomains:
        c.Spawner.oauth_client_allowed_scopes = PAGE_SCOPES
    sharing = ",".join(s.sharing) if isinstance(s.sharing, tuple) else s.sharing
    hooks.merge(c, "services", [{"name": SERVICE, "command": [
        sys.executable, "-m", "labhub.sharing", f"--sharing={sharing}", f"--link-seconds={s.share_link_seconds}"]}],
        section="JupyterHub")
    # The home page (templates/home.html) makes links that last as long as they may.
    hooks.merge(c, "template_vars", {"labhub_share_link_seconds": s.share_link_seconds,
                                     "labhub_share_link_lifetime": lifetime(s.share_link_seconds)}, section="JupyterHub")
    # jupyter-collaboration (in LabHub's images) edits together unless told not to: its documented switch.
    if not s.collaboration:
        hooks.merge(c, "args", ["--YDocExtension.disable_rtc=True"], section="Spawner")
    hooks.merge(c, "load_roles", roles + [{
        "name": SERVICE, "services": [SERVICE],
        "scopes": ["list:users", "read:users:name", "read:users:groups", "read:shares", "shares"]}], section="JupyterHub")


def _created(model: dict) -> float:
    return datetime.fromisoformat(model["created_at"].replace("Z", "+00:00")).timestamp()


def revocations(owner: dict, shares: list[dict], codes: list[dict], sharing, link_seconds: int, now: float) -> list[tuple[str, str]]:
    """What to end of the owner's (a user model with groups): (API path to DELETE, why). Their
    shares matter only if they may no longer share."""
    name = urllib.parse.quote(owner["name"], safe="")
    if not may_share(sharing, owner.get("groups", [])):
        servers = sorted({share["server"]["name"] for share in shares} | {code["server"]["name"] for code in codes})
        why = f"{owner['name']} may not share (LABHUB_SHARING)"
        return ([(f"/shares/{name}/{urllib.parse.quote(server, safe='')}", why) for server in servers] +
                [(f"/share-codes/{name}/{urllib.parse.quote(server, safe='')}", why) for server in servers])
    return [(f"/share-codes/{name}/{urllib.parse.quote(code['server']['name'], safe='')}?id={code['id']}",
             f"{owner['name']}'s invitation link is older than LABHUB_SHARE_LINK_SECONDS")
            for code in codes if now - _created(code) > link_seconds]


def listed(database: Path, now: datetime) -> list[str]:
    """Every share and unexpired invitation link, as `labhub shares` prints them (read from the
    hub's database, as the admin command reads it)."""
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        shares = db.execute(
            "SELECT owner.name, spawners.name, shared.name, groups.name, shares.created_at FROM shares "
            "JOIN users AS owner ON owner.id = shares.owner_id JOIN spawners ON spawners.id = shares.spawner_id "
            "LEFT JOIN users AS shared ON shared.id = shares.user_id LEFT JOIN groups ON groups.id = shares.group_id "
            "ORDER BY owner.name, spawners.name, shares.created_at").fetchall()
        links = db.execute(
            "SELECT owner.name, spawners.name, share_codes.expires_at, share_codes.exchange_count FROM share_codes "
            "JOIN users AS owner ON owner.id = share_codes.owner_id JOIN spawners ON spawners.id = share_codes.spawner_id "
            "WHERE share_codes.expires_at > ? ORDER BY owner.name, spawners.name, share_codes.expires_at",
            (now.strftime("%Y-%m-%d %H:%M:%S"),)).fetchall()
    lines = columns([("OWNER", "SERVER", "SHARED WITH", "SINCE (UTC)")] + [
        (owner, server or "default", user or f"group {group}", created[:16]) for owner, server, user, group, created in shares])
    return lines + [printable(f"invitation link to {owner}'s {server or 'default'} server: until {expires[:16]} UTC, "
                              f"used {used} times") for owner, server, expires, used in links]


class Hub:
    """JupyterHub's REST API, as this service (JUPYTERHUB_API_URL and _TOKEN, which the hub gives it)."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str) -> dict | None:
        request = urllib.request.Request(self.url + path, method=method, headers={
            "Authorization": f"token {self.token}", "Accept": "application/jupyterhub-pagination+json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def items(self, path: str) -> list[dict]:
        found, offset = [], 0
        while True:
            page = self.call("GET", f"{path}{'&' if '?' in path else '?'}limit={PAGE}&offset={offset}")
            found += page["items"]
            following = page["_pagination"]["next"]
            if not following:
                return found
            offset = following["offset"]


def enforce(hub: Hub, sharing, link_seconds: int) -> None:
    for owner in hub.items("/users"):
        name = urllib.parse.quote(owner["name"], safe="")
        shares = [] if may_share(sharing, owner.get("groups", [])) else hub.items(f"/shares/{name}")
        for path, why in revocations(owner, shares, hub.items(f"/share-codes/{name}"), sharing, link_seconds, time.time()):
            hub.call("DELETE", path)
            print(f"labhub sharing: ended {path}: {why}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sharing", required=True, help="on, off, or groups, comma-separated")
    parser.add_argument("--link-seconds", type=int, required=True)
    args = parser.parse_args(argv)
    sharing = args.sharing if args.sharing in ("on", "off") else tuple(args.sharing.split(","))
    hub = Hub(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    while True:
        try:
            enforce(hub, sharing, args.link_seconds)
        except OSError as e:  # the hub restarting, or busy: the next round tries again
            print(f"labhub sharing: the hub's API did not answer ({e}); trying again", flush=True)
        time.sleep(check_seconds(args.link_seconds))


if __name__ == "__main__":
    main()
