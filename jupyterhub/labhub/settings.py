"""Deployment settings: one table of every LABHUB_* setting, read from the environment.

Compose hands the hub and its setup step the admin's `.env` (absent on a fresh clone, so every
setting has a safe default here and nowhere else). Anything wrong becomes a SettingError whose
message is one line naming the setting and the fix.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "LABHUB_"

# Paths inside the hub image / containers; compose mounts the repo's folders there.
CONTEXT_DIR = Path("/srv/jupyterhub/context")
SECRET_DIR = Path("/srv/jupyterhub/secret")
DATA_DIR = Path("/srv/jupyterhub/data")

AUTH_METHODS = ("native",)
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class SettingError(SystemExit):
    """A setting is wrong; str() is the one line shown to the admin.

    A SystemExit, so that wherever it is raised (the labhub command, or the hub's config file,
    whose ordinary exceptions would end up as a traceback) the process stops with just this line.
    """

    def __init__(self, message: str):
        super().__init__(f"labhub: error: {message}")
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Setting:
    default: str
    help: str


SETTINGS = {
    "HOSTNAME": Setting("localhost", "host name users type in the browser; the certificate is made for it"),
    "AUTH": Setting("native", "login method: " + ", ".join(AUTH_METHODS)),
    "ADMIN_USERS": Setting("admin", "comma-separated admin user names; each one's first password is made in secret/admin-passwords/"),
}


@dataclass(frozen=True)
class Settings:
    hostname: str
    auth: str
    admin_users: tuple[str, ...]


def _fail(name: str, problem: str, fix: str) -> SettingError:
    return SettingError(f"{PREFIX}{name}: {problem}; {fix} (in .env, see .env.template)")


def load(environ: dict[str, str] | None = None) -> Settings:
    """Reads and validates every LABHUB_* setting; raises SettingError on the first problem."""
    environ = os.environ if environ is None else environ
    for key in sorted(environ):
        if key.startswith(PREFIX) and key[len(PREFIX):] not in SETTINGS:
            raise SettingError(
                f"{key}: unknown setting; use one of {', '.join(PREFIX + n for n in SETTINGS)} "
                "or remove it (in .env, see .env.template)"
            )
    raw = {name: environ.get(PREFIX + name, "").strip() or s.default for name, s in SETTINGS.items()}

    hostname = raw["HOSTNAME"].lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", hostname):
        raise _fail("HOSTNAME", f"{raw['HOSTNAME']!r} is not a host name", "set it to e.g. labhub.example.edu")

    auth = raw["AUTH"].lower()
    if auth not in AUTH_METHODS:
        raise _fail("AUTH", f"unknown login method {raw['AUTH']!r}", f"set it to one of {', '.join(AUTH_METHODS)}")

    admins = tuple(dict.fromkeys(a.strip().lower() for a in raw["ADMIN_USERS"].split(",") if a.strip()))
    bad = [a for a in admins if not _USERNAME.match(a)]
    if not admins or bad:
        raise _fail("ADMIN_USERS", f"{raw['ADMIN_USERS']!r} is not a list of user names",
                    "use lower-case names separated by commas, e.g. admin,alice")

    return Settings(hostname=hostname, auth=auth, admin_users=admins)
