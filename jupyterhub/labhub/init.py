"""`labhub init`: a new LabHub's site files, from answers or options: .env (from .env.template,
with the chosen values set), the login secrets in secret/ (mode 0600), and on request the admin's
copies of the config templates. Everything is checked before anything is written; an existing
site file is kept unless --force, and then saved as <file>.<date>.bak first."""

import datetime
import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import auth, settings
from .settings import PREFIX, SETTINGS, SettingError

# Asked for interactively, in this order, when not given as options.
ASKED = ("HOSTNAME", "AUTH", "ADMIN_USERS", "TLS", "HOME_ROOT", "SHARED_DIR", "DATA_MOUNTS")
# Secrets the login methods read: option -> (file in secret/, or oauth.env's variable).
SECRETS = {"shared_password": auth.SHARED_PASSWORD, "ldap_password": auth.LDAP_PASSWORD}
OAUTH = {"oauth_client_id": "OAUTH_CLIENT_ID", "oauth_client_secret": "OAUTH_CLIENT_SECRET"}
TEMPLATES = ("jupyterhub/context/jupyterhub_config.d/site.py", "reverse-proxy/traefik.toml")


def add_arguments(parser) -> None:
    for name in ASKED:
        parser.add_argument("--" + name.lower().replace("_", "-"), dest=name, metavar="VALUE",
                            help=f"{PREFIX}{name}: {SETTINGS[name].help}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="any other setting of .env.template, e.g. --set GITHUB_ORGS=mylab; repeatable")
    for option in (*SECRETS, *OAUTH):
        parser.add_argument("--" + option.replace("_", "-"), dest=option, metavar="VALUE",
                            help=f"written to secret/{SECRETS.get(option, auth.OAUTH_ENV)} (mode 0600)")
    parser.add_argument("--copy-templates", action="store_true",
                        help="also make the copies jupyterhub_config.d/site.py (the hub's own settings, added "
                             "to LabHub's) and traefik.toml (wins over the template, also over updated ones) to edit")
    parser.add_argument("--yes", action="store_true", help="ask nothing: defaults for what is not given")
    parser.add_argument("--force", action="store_true", help="replace existing site files (each kept as .bak)")


def chosen_settings(args, ask) -> dict[str, str]:
    values = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        name = name.strip().upper().removeprefix(PREFIX)
        if not sep or name not in SETTINGS:
            raise SettingError(f"--set {item}: not NAME=VALUE with a NAME from .env.template; e.g. --set GITHUB_ORGS=mylab")
        values[name] = value.strip()
    for name in ASKED:
        value = getattr(args, name)
        if value is None and ask:
            value = input(f"{PREFIX}{name} ({SETTINGS[name].help}) [{SETTINGS[name].default}]: ").strip() or None
        if value is not None:
            values[name] = value
    return values


def env_text(template: str, values: dict[str, str]) -> str:
    """.env.template with each chosen setting set in place of its commented default."""
    lines, done = [], set()
    for line in template.splitlines():
        name = line.lstrip("#").partition("=")[0].removeprefix(PREFIX)
        if line.startswith("#" + PREFIX) and name in values and name not in done:
            line = f"{PREFIX}{name}={values[name]}"
            done.add(name)
        lines.append(line)
    lines += [f"{PREFIX}{name}={value}" for name, value in values.items() if name not in done]
    return "\n".join(lines) + "\n"


def _write(site: Path, rel: str, text: str, mode: int, force: bool, now: str) -> str:
    path, kept = site / rel, ""
    if path.exists():
        if not force:
            return f"kept {rel} (it exists; --force replaces it, keeping a copy)"
        shutil.copy2(path, path.with_name(f"{path.name}.{now}.bak"))
        kept = f" (the old one is now {rel}.{now}.bak)"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=mode)  # secrets are never readable by others, not even for a moment
    path.write_text(text)
    # The files belong to whoever owns the LabHub folder, not to the container's root.
    os.chown(path, site.stat().st_uid, site.stat().st_gid)
    return f"wrote {rel}{kept}"


def run(args, site: Path) -> list[str]:
    values = chosen_settings(args, ask=not args.yes and sys.stdin.isatty())
    env = {PREFIX + name: value for name, value in values.items()}
    secrets = {SECRETS[o]: getattr(args, o) for o in SECRETS if getattr(args, o)}
    oauth = {var: getattr(args, o) for o, var in OAUTH.items() if getattr(args, o)}
    if oauth:
        secrets[auth.OAUTH_ENV] = "".join(f"{var}={value}\n" for var, value in oauth.items())

    # Checked as the start will check them, with the secrets as they are about to be.
    s = settings.load(env)
    with tempfile.TemporaryDirectory() as tmp:
        if (site / "secret").is_dir():
            shutil.copytree(site / "secret", tmp, dirs_exist_ok=True)
        for name, text in secrets.items():
            Path(tmp, name).write_text(text)
        auth.check(s, Path(tmp), {**os.environ, **oauth})

    now = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    done = [_write(site, ".env", env_text((site / ".env.template").read_text(), values), 0o644, args.force, now)]
    done += [_write(site, f"secret/{name}", text.rstrip("\n") + "\n", 0o600, args.force, now)
             for name, text in secrets.items()]
    if args.copy_templates:
        done += [_write(site, rel, (site / f"{rel}.template").read_text(), 0o644, args.force, now) for rel in TEMPLATES]
    return done
