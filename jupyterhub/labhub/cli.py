"""The `labhub` command: steps that run before or as the hub, and the admin's commands (run them
on the host with ./labhub, which runs this in the hub image)."""

import argparse
import datetime
import os
import sys
from pathlib import Path

from . import auth, certs, checks, monitoring, proxy, settings
from .settings import SECRET_DIR, SITE_DIR, SettingError
from .terminal import printable

BACKUPS = "backups"


def _refuse(problems: list[str]) -> None:
    """Stops with one line per problem (each names the setting or file and the fix)."""
    if problems:
        for problem in problems:
            print(f"labhub: error: {problem}", file=sys.stderr)
        raise SystemExit(1)


def setup(_args) -> None:
    """One-shot compose step before the hub and the proxy start."""
    # Everything that can be wrong is checked before anything is made: the problems, one line each.
    s, problems = checks.config(os.environ, SECRET_DIR)
    _refuse(problems)
    for line in certs.ensure_certificate(SECRET_DIR, s):
        print(f"labhub setup: {line}")
    if auth.needs_admin_passwords(s):
        for admin in auth.ensure_admin_passwords(SECRET_DIR, s.admin_users):
            print(f"labhub setup: first password of admin {admin!r} is in secret/{auth.ADMIN_PASSWORDS}/{admin}")
    print(f"labhub setup: login method {s.auth}")
    if monitoring.enabled(os.environ):
        monitoring.write_config(s, SECRET_DIR)
        for line in monitoring.warnings(s):
            print(f"labhub setup: warning: {line}")
    # Last, so that a refusal above stays the one line in the log.
    for problem in checks.secret_permissions(SECRET_DIR) + certs.extra_ca_problems():
        print(f"labhub setup: warning: {problem}")


def proxy_config(_args) -> None:
    """Long-lived compose service: publishes Traefik's configuration and certificate."""
    proxy.watch(SECRET_DIR, proxy.REVERSE_PROXY_DIR, proxy.PUBLISHED_DIR, settings.load())


def _engine():
    import docker  # only the commands that talk to the engine need it

    from . import stack
    engine = docker.from_env()
    return engine, stack.own(engine)


def check(_args) -> None:
    s, problems = checks.config(os.environ, SECRET_DIR)
    problems += checks.secret_permissions(SECRET_DIR) + checks.site_files(SITE_DIR) + \
        certs.extra_ca_problems(SITE_DIR / "ca-certificates")
    warnings = []
    if s:
        from . import probe
        problems += certs.problems(SECRET_DIR, s)
        engine, lab = _engine()
        facts = probe.engine_facts(engine, lab, s)
        problems += checks.probed_engine_problems(engine, lab, s, facts) + checks.port_problems(engine, lab, s) + \
            checks.user_host_problems(engine, lab, s) + checks.acme_problems(engine, lab, s)
        warnings = checks.disk_warnings(facts, s) + (monitoring.warnings(s) if monitoring.enabled(os.environ) else [])
    for problem in problems:
        print(problem)
    for warning in warnings:  # risks, not faults: they do not fail the check
        print(f"warning: {warning}")
    print(f"labhub check: {len(problems)} problem(s)" if problems else "labhub check: no problems found")
    raise SystemExit(1 if problems else 0)


def alert_test(_args) -> None:
    engine, lab = _engine()
    print(f"labhub alert-test: {monitoring.send_test_alert(engine, lab, settings.load())}")


def _in_site(path: str) -> Path:
    """A path the admin gave, relative to the LabHub folder (the only host folder mounted here)."""
    resolved = (SITE_DIR / path).resolve()
    if not resolved.is_relative_to(SITE_DIR):
        raise SettingError(f"{path}: not inside the LabHub folder; give a path inside it, e.g. {BACKUPS}/")
    return resolved


def do_backup(args) -> None:
    from . import backup
    s = settings.load()
    engine, lab = _engine()
    archive = backup.backup(engine, lab, s, _in_site(args.output), args.shared, args.exclude)
    print(f"labhub backup: {archive.relative_to(SITE_DIR)} ({archive.stat().st_size / 2**20:,.1f} MiB)")


def do_restore(args) -> None:
    from . import backup
    engine, lab = _engine()
    manifest = backup.restore(engine, lab, _in_site(args.archive), args.force)
    print(f"labhub restore: {backup.restore_summary(manifest)}; start with `docker compose up -d`")


def do_status(_args) -> None:
    from . import status
    engine, lab = _engine()
    s = settings.load()
    running = status.servers(engine, lab, s.swarm)
    print(status.table(running, datetime.datetime.now(datetime.timezone.utc)))
    for line in status.near_full(status.homes(engine, lab, s), running) if s.home_quota else []:
        print(line)


def do_nodes(args) -> None:
    from . import status, swarm
    engine, _ = _engine()
    swarm.check_manager(engine.info())
    if args.action == "add":
        print("On the new machine (Docker installed, the shared storage mounted at the same paths), run:")
        print(f"  {swarm.join_command(engine)}")
        print("then, here: ./labhub nodes push (copies the user images, the hub's and the monitoring's there)")
    elif args.action in ("drain", "undrain"):
        if not args.node:
            raise SettingError(f"labhub nodes {args.action}: name the node, e.g. ./labhub nodes {args.action} gpu-box")
        swarm.take_servers(engine, args.node, args.action == "undrain")
    if args.action != "add":
        print(status.nodes_table(engine))


def do_homes(_args) -> None:
    from . import status
    engine, lab = _engine()
    print(status.homes_table(status.homes(engine, lab, settings.load())))


def do_quota(args) -> None:
    from . import quota
    s = settings.load()
    if not s.home_quota:
        raise SettingError("labhub quota: quotas are off; set LABHUB_HOME_QUOTA (e.g. 20G, or none for per-user "
                           "quotas only) in .env first (README, Disk and quotas)")
    overrides = quota.Overrides()
    if args.action == "list":
        print(f"default (LABHUB_HOME_QUOTA): {s.home_quota}")
        for user, size in sorted(overrides.sizes.items()):
            print(f"{printable(user)}: {size}")
        return
    if not args.user or (args.action == "set" and not args.size):
        raise SettingError(f"labhub quota {args.action}: name the user{' and the size' if args.action == 'set' else ''}, "
                           "e.g. ./labhub quota set ann 50G")
    size = None
    if args.action == "set":
        if quota.parse_size(args.size) is None:
            raise SettingError(f"labhub quota set: {args.size!r} is not a size; write e.g. 50G or 512M, or none for no limit")
        size = args.size.upper() if args.size.lower() != quota.UNLIMITED else quota.UNLIMITED
    overrides.set(args.user, size)
    from . import storage
    engine, lab = _engine()
    print(f"labhub quota: {storage.limit_home_now(engine, lab, s, args.user, overrides)}")


def do_shares(args) -> None:
    from . import sharing
    listed = sharing.listed(settings.DATABASE, datetime.datetime.now(datetime.timezone.utc))
    print("\n".join(listed) if len(listed) > 1 else "labhub shares: no server is shared")


def do_upgrade(args) -> None:
    from . import upgrade
    s = settings.load()
    engine, lab = _engine()
    upgrade.upgrade(engine, lab, s, _in_site(args.output))


def do_init(args) -> None:
    from . import init
    for line in init.run(args, SITE_DIR):
        print(f"labhub init: {line}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="labhub", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, run, help: str, description: str = "") -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description or help)
        sub.set_defaults(run=run)
        return sub

    command("setup", setup, "check settings, make the certificate and admin passwords (compose runs it)")
    command("proxy-config", proxy_config, "publish Traefik's configuration and certificate, and keep them current (compose runs it)")
    command("check", check, "find everything wrong before a start: one line per problem with its fix",
            "Checks settings, logins, certificates, secret/ permissions, the admin's config copies, host "
            "folders, GPUs, user images and host ports. Exits 1 if anything is wrong.")
    command("alert-test", alert_test, "send a test alert through Alertmanager to the alert receivers (README, Monitoring)")
    sub = command("backup", do_backup, "back up the hub database, secrets, site files and every home into one archive",
                  "Writes backups/labhub-<project>-<date>.tar: the hub database (a consistent copy, the hub may "
                  "keep running), cookie secret, .env, secret/, the admin's config copies, every user's home, "
                  "with a manifest of checksums. Copy it off the machine.")
    sub.add_argument("--output", default=BACKUPS, help=f"folder for the archive, inside the LabHub folder (default {BACKUPS}/)")
    sub.add_argument("--shared", action="store_true", help="include the shared folder (LABHUB_SHARED_DIR)")
    sub.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                     help="leave out files in homes matching PATTERN (as tar's --exclude, e.g. .cache or '*.tmp'); repeatable")
    sub = command("restore", do_restore, "put a backup back, on a fresh clone or another machine",
                  "Verifies every checksum first, and that every member stays inside its area and the manifest "
                  "names only this LabHub's own folders (a line per problem), then restores the hub database, "
                  "secrets, site files and homes. The hub must be stopped; refuses to overwrite anything that "
                  "exists unless --force.")
    sub.add_argument("archive", help="the backup archive, inside the LabHub folder (e.g. backups/labhub-....tar)")
    sub.add_argument("--force", action="store_true", help="overwrite what exists")
    command("status", do_status, "list running user servers: image, uptime, CPU, memory, GPUs")
    sub = command("nodes", do_nodes, "swarm mode: list the nodes, add one, keep servers off one (drain) or let them back",
                  "Swarm mode (LABHUB_SWARM, README: More than one machine). `nodes` lists the nodes with their "
                  "resources and servers; `nodes add` prints the command that joins a new machine; `nodes drain NODE` "
                  "keeps new servers off NODE (running ones stay until they stop), `nodes undrain NODE` lets them back. "
                  "On the host, `./labhub nodes push [DOCKER_HOST...]` copies the user images, the hub's and the "
                  "monitoring's to the other nodes (by default over ssh, to ssh://<node>).")
    sub.add_argument("action", nargs="?", default="list", choices=("list", "add", "drain", "undrain"))
    sub.add_argument("node", nargs="?", help="the node's host name, as `./labhub nodes` lists it")
    command("homes", do_homes, "list every user's home with the disk it takes (files and installed packages) and its "
                               "quota, fullest first")
    sub = command("quota", do_quota, "list the home quotas set per user, set a user's (applied at once), or reset it",
                  "With LABHUB_HOME_QUOTA set (README, Disk and quotas): `quota` lists the default and each user's own; "
                  "`quota set USER SIZE` gives USER a quota of their own (e.g. 50G, or none: no limit), applied at once where "
                  "the file system enforces quotas; `quota reset USER` gives them their groups' (a group's home_quota "
                  "property, set on the hub's admin page) or the default again.")
    sub.add_argument("action", nargs="?", default="list", choices=("list", "set", "reset"))
    sub.add_argument("user", nargs="?", help="the user's name, as they log in")
    sub.add_argument("size", nargs="?", help="e.g. 50G, 512M, or none")
    command("shares", do_shares, "list every user's shared servers, whom each is shared with, and the unexpired "
                                 "invitation links (README, Working together)")
    sub = command("upgrade", do_upgrade, "back up, then upgrade the hub database (./labhub upgrade also rebuilds "
                  "the images first and restarts the hub after; user servers keep running)")
    sub.add_argument("--output", default=BACKUPS, help=f"folder for the backup (default {BACKUPS}/)")
    sub = command("init", do_init, "write .env and secret/ files for a new LabHub, asking or from options",
                  "Asks for what is not given as an option (none is asked with --yes). Never overwrites a site "
                  "file unless --force, and then keeps the old one as <file>.<date>.bak.")
    from . import init
    init.add_arguments(sub)
    args = parser.parse_args(argv)
    args.run(args)  # a SettingError exits with its one-line message


if __name__ == "__main__":
    main()
