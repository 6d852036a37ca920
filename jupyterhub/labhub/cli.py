"""The `labhub` command: steps that run before or as the hub."""

import argparse
import os
import tempfile
from pathlib import Path

from . import auth, certs, proxy, settings
from .settings import CONTEXT_DIR, SECRET_DIR

CONFIG_FILE = "jupyterhub_config.py"


def config_file() -> str:
    """The site copy of the hub config when the admin made one, else the shipped template."""
    site = CONTEXT_DIR / CONFIG_FILE
    return str(site if site.exists() else site.with_name(CONFIG_FILE + ".template"))


def setup(_args) -> None:
    """One-shot compose step before the hub and the proxy start."""
    # Everything that can be wrong is checked before anything is made, so a refusal is one line.
    s = settings.load()
    auth.check(s, SECRET_DIR, os.environ)
    for line in certs.ensure_certificate(SECRET_DIR, s):
        print(f"labhub setup: {line}")
    if auth.needs_admin_passwords(s):
        for admin in auth.ensure_admin_passwords(SECRET_DIR, s.admin_users):
            print(f"labhub setup: first password of admin {admin!r} is in secret/{auth.ADMIN_PASSWORDS}/{admin}")
    print(f"labhub setup: login method {s.auth}")


def proxy_config(_args) -> None:
    """Long-lived compose service: publishes Traefik's configuration and certificate."""
    proxy.watch(SECRET_DIR, proxy.REVERSE_PROXY_DIR, proxy.PUBLISHED_DIR, settings.load())


def hub(_args) -> None:
    # JupyterHub loads only files named *.py, so the template is reached through a link.
    link = Path(tempfile.mkdtemp(prefix="labhub-")) / CONFIG_FILE
    link.symlink_to(config_file())
    print(f"labhub hub: config {config_file()}", flush=True)
    os.execvp("jupyterhub", ["jupyterhub", "-f", str(link)])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="labhub", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")
    commands.add_parser("setup", help="check settings, make the certificate and admin passwords").set_defaults(run=setup)
    commands.add_parser("proxy-config", help="publish Traefik's configuration and certificate, and keep them current").set_defaults(run=proxy_config)
    commands.add_parser("hub", help="run JupyterHub with the site's config").set_defaults(run=hub)
    args = parser.parse_args(argv)
    args.run(args)  # a SettingError exits with its one-line message


if __name__ == "__main__":
    main()
