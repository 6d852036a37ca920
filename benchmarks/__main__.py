"""LabHub's benchmark: spawn latency, a burst of users, kernel round trips, proxy overhead and
memory, measured on LabHub and on a stock DockerSpawner reference in the same run, and LabHub's
hub start (restarted with the burst's servers running). Prints a table with the LabHub/reference
ratios and the issue's targets, and writes everything as JSON.

    .venv/bin/python -m benchmarks [--short] [--users N] [--spawns N]
    .venv/bin/python -m benchmarks --hub-start-only [--users N] [--hub-starts N]

Targets are printed and compared, never asserted: the run fails only when something breaks (a
deployment that does not come up, a LabHub user whose server does not start, a wrong answer, a
running server that does not answer after a hub restart)."""

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # harness.py

import harness  # noqa: E402
from . import measure  # noqa: E402
from .setups import (SETUPS, LabHub, LabHubCollaboration, LabHubHomes, LabHubMonitoring, LabHubQuotas,  # noqa: E402
                     LabHubSwarm, LabHubZfsHomes, LabHubZfsQuotas)

MB = 2**20


def hub_start_alone(setup, admin, args) -> dict:
    """The hub start alone: HUB_START_USERS accounts made through the REST API, the first
    args.users of them with a server started by the admin, then the hub restarted."""
    servers = measure.ensure_users(admin, measure.HUB_START_USERS)[:args.users]
    print(f"== {setup.name}: {len(servers)} servers started by the admin", flush=True)
    measure.start_servers(admin, servers)
    print(f"== {setup.name}: hub start x{args.hub_starts}, {len(servers)} servers running", flush=True)
    return measure.hub_start(setup, admin, servers, args.hub_starts)


def run_setup(setup, args) -> dict:
    started = time.monotonic()
    print(f"== {setup.name}: up", flush=True)
    try:
        setup.up()
        admin = setup.admin()
        if isinstance(setup, LabHubSwarm):
            figures = {"swarm_spawn": {}}
            for role, node in setup.nodes().items():
                print(f"== {setup.name}: {args.spawns} warm spawns on the {role} node", flush=True)
                setup.only_on(node)
                figures["swarm_spawn"][role] = measure.warm_spawns(setup, admin, args.spawns, f"benchwarm{role}")
            return {**figures, "swarm_seconds": time.monotonic() - started}
        if isinstance(setup, LabHubHomes):
            print(f"== {setup.name}: {args.users} new users' first spawns, one by one", flush=True)
            figures = {"first_spawn": measure.first_spawns(setup, admin, args.users)}
            # Each start logs how long setting the home's limit took (labhub.quota.log_use).
            took = [int(ms) for ms in re.findall(r"the home of benchnew\d+ .*\(limit set in (\d+) ms\)",
                                                 setup.deployment.service_log("hub"))]
            if took:
                figures["quota_setup_ms"] = measure.percentiles(took)
            print(f"== {setup.name}: {args.spawns} warm spawns", flush=True)
            return {**figures, "warm_spawn": measure.warm_spawns(setup, admin, args.spawns)}
        if isinstance(setup, LabHubMonitoring):
            print(f"== {setup.name}: {args.spawns} warm spawns", flush=True)
            figures = {"warm_spawn": measure.warm_spawns(setup, admin, args.spawns)}
            print(f"== {setup.name}: {args.users} users at once, then the monitoring's cost", flush=True)
            figures["burst"] = burst = measure.burst(setup, admin, args.users)
            running = [n for n in burst["names"] if setup.deployment.user_container(n)]
            figures["monitoring"] = measure.monitoring_cost(setup, len(running))
            # With the burst's servers running: the exporter samples each of them at every scrape.
            print(f"== {setup.name}: {args.spawns} warm spawns each with the monitoring running and stopped, in turns, "
                  f"{len(running)} servers running", flush=True)
            figures["warm_spawn_turns"] = {**measure.warm_spawns_in_turns(setup, admin, args.spawns),
                                           "servers_running": len(running)}
            figures["user_image"] = setup.user_image(running[0]) if running else None
            measure.stop_servers(admin, running)
            return figures
        if args.hub_start_only:
            return {"hub_start": hub_start_alone(setup, admin, args), "seconds": time.monotonic() - started}
        print(f"== {setup.name}: {args.spawns} warm spawns", flush=True)
        figures = {"warm_spawn": measure.warm_spawns(setup, admin, args.spawns)}
        print(f"== {setup.name}: the user image's server start, without a hub", flush=True)
        figures["server_start"] = measure.server_starts(setup.lab_image(), max(2, args.spawns // 2))
        client = setup.login("benchwarm")
        measure.spawn(client, time.monotonic() + measure.SPAWN_TIMEOUT)
        print(f"== {setup.name}: kernel round trips, proxy overhead", flush=True)
        figures["kernel_rtt"] = measure.kernel_round_trips(client, args.round_trips)
        figures["proxy"] = measure.proxy_overhead(setup, client, args.round_trips)
        client.stop_server()
        print(f"== {setup.name}: {args.users} users at once", flush=True)
        figures["burst"] = burst = measure.burst(setup, admin, args.users)
        running = [n for n in burst["names"] if setup.deployment.user_container(n)]
        figures["memory"] = {**setup.memory(), "active_users": len(running),
                             "idle_user": measure.percentiles([setup.user_rss(n) for n in running]) if running else None}
        figures["user_image"] = setup.user_image(running[0]) if running else None
        if setup.measures_hub_start:
            # The burst's servers still run: the hub restarted with them (users made up to 50).
            print(f"== {setup.name}: hub start x{args.hub_starts}, {len(running)} servers running", flush=True)
            figures["hub_start"] = measure.hub_start(setup, admin, running, args.hub_starts)
        measure.stop_servers(admin, running)
        if setup.log_in_as_the_reference():
            print(f"== {setup.name}: {args.users} users at once, logging in as the reference does", flush=True)
            figures["burst_reference_login"] = measure.burst(setup, setup.admin(), args.users, prefix="benchplain")
        figures["seconds"] = time.monotonic() - started
        return figures
    finally:
        log = setup.deployment.compose("logs", "--no-color", check=False).stdout
        args.artifacts.mkdir(parents=True, exist_ok=True)
        (args.artifacts / f"benchmark{args.suffix}-{setup.name.lower().replace(' ', '-')}.log").write_text(log)
        setup.destroy()


def _reference_login(figures: dict) -> dict:
    return figures.get("burst_reference_login", figures["burst"])


def _hub_start_label(results: dict) -> str:
    """The hub start's row, with what it was measured with (a short run has fewer servers)."""
    start = next((r["hub_start"] for r in results.values() if r.get("hub_start")), None)
    return f"hub restart ({start['users']} users, {start['servers']} servers)" if start else "hub restart"


def rows(results: dict, users: int):
    """(figure, unit, getter, target ratio or absolute limit) per table row."""
    ms, s = 1000, 1
    return [
        ("warm spawn p50", "s", s, lambda r: r["warm_spawn"]["p50"], ("ratio", 0.4)),
        ("warm spawn p95", "s", s, lambda r: r["warm_spawn"]["p95"], None),
        # Swarm mode (--setups swarm): the hub on the manager node, the server on the manager or on
        # a worker (another engine, reached over an overlay network).
        ("swarm warm spawn, manager p50", "s", s, lambda r: r["swarm_spawn"]["manager"]["p50"], None),
        ("swarm warm spawn, worker p50", "s", s, lambda r: r["swarm_spawn"]["worker"]["p50"], None),
        ("swarm warm spawn, worker p95", "s", s, lambda r: r["swarm_spawn"]["worker"]["p95"], None),
        ("server start in the image p50", "s", s, lambda r: r["server_start"]["seconds"]["p50"], None),
        ("  its CPU time p50", "s", s, lambda r: r["server_start"]["cpu_seconds"]["p50"], None),
        (f"{users} users: succeeded", "", None, lambda r: r["burst"]["succeeded"], ("equal", users)),
        (f"{users} users: p50", "s", s, lambda r: r["burst"]["total"]["p50"], None),
        (f"{users} users: p95", "s", s, lambda r: r["burst"]["total"]["p95"], ("ratio", 0.5)),
        (f"{users} users: max", "s", s, lambda r: r["burst"]["total"]["max"], None),
        (f"{users} users: login p50", "s", s, lambda r: r["burst"]["login"]["p50"], None),
        (f"{users} users: refused, asked again", "", None, lambda r: r["burst"]["refusals"], None),
        # The same burst with LabHub's trial shared-password login, which hashes nothing either:
        # the spawn paths alone (the reference's row is its one burst).
        (f"{users} users, login as reference: p50", "s", s, lambda r: _reference_login(r)["total"]["p50"], None),
        (f"{users} users, login as reference: p95", "s", s, lambda r: _reference_login(r)["total"]["p95"], None),
        ("kernel round trip p50", "ms", ms, lambda r: r["kernel_rtt"]["p50"], None),
        ("kernel round trip p95", "ms", ms, lambda r: r["kernel_rtt"]["p95"], ("max", 0.050)),
        ("proxy overhead p50", "ms", ms, lambda r: r["proxy"]["overhead_p50"], ("max", 0.002)),
        (f"hub RSS, {users} users", "MB", 1 / MB, lambda r: r["memory"]["hub"], ("max", 250 * MB)),
        (f"proxy RSS, {users} users", "MB", 1 / MB, lambda r: r["memory"]["proxy"], None),
        ("idle user server RSS p50", "MB", 1 / MB, lambda r: r["memory"]["idle_user"]["p50"], ("max", 150 * MB)),
        # From the new hub container's start (the engine's StartedAt) to the login page through the
        # front door; then its log's phases; then every server that ran answering again (p50 of
        # the restarts when there are several; each one is in the JSON).
        (_hub_start_label(results), "s", s, lambda r: r["hub_start"]["login"]["p50"], ("max", 5)),
        ("  to its first log line", "s", s, lambda r: r["hub_start"]["first_line"]["p50"], None),
        ("  to JupyterHub's first log line", "s", s, lambda r: r["hub_start"]["jupyterhub_first_line"]["p50"], None),
        ("  to \"JupyterHub is now running\"", "s", s, lambda r: r["hub_start"]["jupyterhub_running"]["p50"], None),
        ("  to every server answering", "s", s, lambda r: r["hub_start"]["servers_answering"]["p50"], None),
        # A server polled through the front door every 0.1 s, from before the restart command on.
        ("  a server unanswered meanwhile", "s", s, lambda r: r["hub_start"]["server_unanswered"]["p50"], None),
        ("  failed requests to that server", "", None, lambda r: r["hub_start"]["server_failed_requests"]["max"],
         ("equal", 0)),
        ("  login from the restart command", "s", s,
         lambda r: r["hub_start"]["login_after_restart_command"]["p50"], None),
    ]


def table(results: dict, users: int) -> str:
    def value(name, get):
        try:
            return get(results[name])
        except (KeyError, TypeError):
            return None

    def fmt(v, scale):
        return "-" if v is None else (f"{v * scale:.3g}" if scale else str(v))

    lines = [f"{'figure':34} {'unit':4} {'LabHub':>9} {'reference':>9} {'ratio':>7}  target"]
    for label, unit, scale, get, target in rows(results, users):
        ours, ref = value("LabHub", get), value("reference", get)
        if ours is None and ref is None:  # not measured in this run (e.g. --hub-start-only)
            continue
        ratio = ours / ref if ours is not None and ref else None
        met, want = "", ""
        if target and ours is not None:
            kind, limit = target
            if kind == "ratio":
                want, met = f"<= {limit}x", None if ratio is None else ratio <= limit
            elif kind == "max":
                want, met = f"<= {limit * scale:g} {unit}", ours <= limit
            else:
                want, met = f"= {limit}", ours == limit
            met = {True: "met", False: "MISSED", None: ""}[met]
        lines.append(f"{label:34} {unit:4} {fmt(ours, scale):>9} {fmt(ref, scale):>9} "
                     f"{'-' if ratio is None else f'{ratio:.2f}':>7}  {want} {met}".rstrip())
    return "\n".join(lines)


def hub_start_line(run: dict) -> str:
    """One restart's phases, in seconds from the container's start, and where its log was quiet."""
    def at(key):
        return "-" if run.get(key) is None else f"{run[key]:.1f}"

    spans = "; ".join(f"{span['seconds']:.1f} s until {span['until'][:90]!r}" for span in run["quiet_spans"][:3])
    return (f"container started {run['started_at']} (restart command: {run['restart_command']:.1f} s, returned at "
            f"{run['restart_returned']:+.1f}); seconds from that start: "
            f"first log line {at('first_line')}, JupyterHub's first line "
            f"{at('jupyterhub_first_line')}, 'Running JupyterHub version' {at('jupyterhub_version')}, "
            f"'JupyterHub is now running' {at('jupyterhub_running')}, login page 200 "
            f"{at('login')} ({at('login_after_restart_command')} from the restart command), every server answering "
            f"{at('servers_answering')}; a server unanswered {at('server_unanswered')} s "
            f"({run.get('server_failed_requests', '-')} failed requests). Longest quiet spans in "
            f"the log: {spans}")


def quota_lines(results: dict) -> list[str]:
    """Home quotas' cost on the spawn path: each quotas setup against its homes setup (same file system)."""
    lines = []
    for fs, homes, quotas in (("btrfs", LabHubHomes, LabHubQuotas), ("ZFS", LabHubZfsHomes, LabHubZfsQuotas)):
        without, with_ = results.get(homes.name), results.get(quotas.name)
        for name, figures in ((homes.name, without), (quotas.name, with_)):
            if figures:
                lines.append(f"{name}: first spawn p50 {figures['first_spawn']['p50']:.2f} s (max {figures['first_spawn']['max']:.2f}), "
                             f"warm spawn p50 {figures['warm_spawn']['p50']:.2f} s (p95 {figures['warm_spawn']['p95']:.2f})")
        if without and with_:
            for figure, label in (("first_spawn", "a new user's first spawn"), ("warm_spawn", "warm spawn")):
                a, b = without[figure]["p50"], with_[figure]["p50"]
                lines.append(f"home quotas on {fs}, {label} p50: {b:.2f} s with, {a:.2f} s without: {b / a:.2f}x (target <= 1.10x)")
            lines.append(f"quota set-up on {fs} for a new user (first spawn p50, with minus without): "
                         f"{with_['first_spawn']['p50'] - without['first_spawn']['p50']:+.2f} s")
        if with_ and with_.get("quota_setup_ms"):
            took = with_["quota_setup_ms"]
            lines.append(f"quota set-up on {fs} for a new user, as the hub logged it: p50 {took['p50']:.0f} ms, "
                         f"max {took['max']:.0f} ms ({took['n']} users)")
    return lines


def collaboration_lines(results: dict) -> list[str]:
    """Real-time collaboration's cost: LabHub with it on against LabHub's default (installed, off)."""
    off, on = results.get(LabHub.name), results.get(LabHubCollaboration.name)
    if not (off and on and "warm_spawn" in off):
        return []
    figures = (("warm spawn p50", "s", lambda f: f["warm_spawn"]["p50"]),
               ("server start's CPU p50", "s", lambda f: f["server_start"]["cpu_seconds"]["p50"]),
               ("idle server RSS p50", "MiB", lambda f: f["memory"]["idle_user"]["p50"] / 2**20))
    return [f"collaboration, {label}: {get(on):.2f} {unit} on, {get(off):.2f} off: {get(on) / get(off):.2f}x (target <= 1.10x)"
            for label, unit, get in figures]


def monitoring_lines(results: dict) -> list[str]:
    """The monitoring's cost: its memory and CPU with the burst's servers running, and LabHub's
    warm spawn with it against without (same run)."""
    off, on = results.get(LabHub.name), results.get(LabHubMonitoring.name)
    if not (on and "monitoring" in on):
        return []
    cost = on["monitoring"]
    lines = [f"monitoring with {cost['servers']} servers running: memory {cost['rss_total'] / MB:.0f} MiB (target <= 300) = "
             + ", ".join(f"{part} {rss / MB:.0f}" for part, rss in cost["rss"].items())
             + f"; CPU {100 * cost['cpu_fraction']:.1f} % of one core over {cost['seconds']:.0f} s"
             + f" (the engine, dockerd: {100 * cost['engine_cpu_fraction']:.1f} %)"]
    turns = on.get("warm_spawn_turns")
    if turns:
        a, b = turns["off"]["p50"], turns["on"]["p50"]
        lines.append(f"monitoring, warm spawn p50 in turns on one deployment, {turns['servers_running']} servers running: "
                     f"{b:.2f} s with it, {a:.2f} s without: {b / a:.2f}x (target <= 1.05x)")
    if off and "warm_spawn" in off:
        a, b = off["warm_spawn"]["p50"], on["warm_spawn"]["p50"]
        lines.append(f"monitoring, warm spawn p50 against LabHub's setup: {b:.2f} s on, {a:.2f} s off: {b / a:.2f}x")
    return lines


def machine() -> dict:
    info = json.loads(harness.docker("info", "--format", "{{json .}}"))
    return {"cpus": os.cpu_count(), "memory_gib": round(info["MemTotal"] / 2**30, 1),
            "kernel": platform.release(), "docker": info["ServerVersion"], "cgroup": info.get("CgroupVersion"),
            "load_average_at_start": os.getloadavg(), "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="a quick run that keeps the benchmark working (CI): 3 spawns, 5 users")
    parser.add_argument("--users", type=int, help="users logging in and spawning at once (default 20; 5 with --short)")
    parser.add_argument("--spawns", type=int, help="timed warm spawns (default 10; 3 with --short)")
    parser.add_argument("--setups", default="labhub,reference",
                        help="which to run, comma-separated: labhub, reference (both by default), swarm (LabHub in "
                        "swarm mode on a two-node swarm of engine containers: its warm spawns on each node), homes "
                        "and quotas (LabHub with homes on a btrfs file system of their own, without and with "
                        "LABHUB_HOME_QUOTA: new users' first spawns and warm spawns), zfs-homes and zfs-quotas (the "
                        "same on a ZFS dataset, through zfs-fuse), monitoring (LabHub with "
                        "COMPOSE_PROFILES=monitoring: warm spawns, and the monitoring's memory and CPU with --users "
                        "servers running)")
    parser.add_argument("--hub-start-only", action="store_true",
                        help="measure only LabHub's hub start: 50 users, --users of them with a server running, the "
                        "hub restarted (the reference has no such figure); writes benchmark-hub-start.json")
    parser.add_argument("--hub-starts", type=int, default=1,
                        help="times the hub is restarted and its start timed (default 1)")
    parser.add_argument("--artifacts", type=Path, help="where the JSON and the logs go (default: artifacts/, "
                        "or LABHUB_TEST_ARTIFACTS as for the tests)",
                        default=Path(os.environ.get("LABHUB_TEST_ARTIFACTS", harness.REPO / "artifacts")))
    args = parser.parse_args(argv)
    args.users = args.users or (5 if args.short else 20)
    args.spawns = args.spawns or (3 if args.short else 10)
    args.round_trips = 30 if args.short else 200
    chosen = [name.strip() for name in args.setups.split(",")]
    unknown = set(chosen) - set(SETUPS)
    if unknown:
        parser.error(f"--setups: unknown {', '.join(sorted(unknown))}; use {' or '.join(SETUPS)}")
    if args.hub_start_only:
        chosen = [name for name in chosen if SETUPS[name].measures_hub_start]
        if not chosen:
            parser.error("--hub-start-only: only labhub's hub start is measured; use --setups labhub")
    args.suffix = "-hub-start" if args.hub_start_only else ""

    report = {"machine": machine(), "users": args.users, "spawns": args.spawns, "round_trips": args.round_trips,
              "results": {}}
    failed = []
    for name in chosen:
        setup = SETUPS[name]()
        figures = run_setup(setup, args)
        # Swarm mode's rows are LabHub's too (its column), beside the figures of one machine.
        report["results"].setdefault("LabHub" if name == "swarm" else setup.name, {}).update(figures)
        for burst in (figures.get("burst"), figures.get("burst_reference_login")) if name == "labhub" else ():
            if burst and burst["succeeded"] < args.users:
                failed.append(f"{args.users - burst['succeeded']} of {args.users} LabHub users got no server: "
                              + "; ".join(burst["errors"]))
        failed += (figures.get("hub_start") or {}).get("problems", [])
    args.artifacts.mkdir(parents=True, exist_ok=True)
    out = args.artifacts / f"benchmark{args.suffix}.json"
    out.write_text(json.dumps(report, indent=1))
    m = report["machine"]
    what = (f"{args.users} servers running, the hub started {args.hub_starts} time(s)" if args.hub_start_only
            else f"{args.spawns} warm spawns, {args.users} users at once, {args.round_trips} round trips")
    print(f"\n{m['cpus']} CPUs, {m['memory_gib']} GiB, Docker {m['docker']}, load {m['load_average_at_start'][0]:.2f} "
          f"at start; {what}\n")
    print(table(report["results"], args.users))
    for line in quota_lines(report["results"]) + collaboration_lines(report["results"]) + monitoring_lines(report["results"]):
        print(line)
    for name, figures in report["results"].items():
        if "burst" in figures:
            print(f"{name} user image: {figures['user_image']}")
            cpu = figures["burst"]["cpu_seconds"]
            print(f"{name}, CPU-seconds during the {args.users} users' burst, by program: "
                  + ", ".join(f"{program} {seconds:.1f}" for program, seconds in cpu.items()))
        for i, run in enumerate((figures.get("hub_start") or {}).get("runs", []), 1):
            print(f"{name} hub start {i}: " + hub_start_line(run))
    print(f"\n(all figures: {out})")
    for problem in failed:
        print(f"FAILED: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
