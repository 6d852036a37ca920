"""LabHub's benchmark: spawn latency, a burst of users, kernel round trips, proxy overhead and
memory, measured on LabHub and on a stock DockerSpawner reference in the same run. Prints a table
with the LabHub/reference ratios and the issue's targets, and writes everything as JSON.

    .venv/bin/python -m benchmarks [--short] [--users N] [--spawns N]

Targets are printed and compared, never asserted: the run fails only when something breaks (a
deployment that does not come up, a LabHub user whose server does not start, a wrong answer)."""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # harness.py

import harness  # noqa: E402
from . import measure  # noqa: E402
from .setups import SETUPS  # noqa: E402

MB = 2**20


def run_setup(setup, args) -> dict:
    started = time.monotonic()
    print(f"== {setup.name}: up", flush=True)
    setup.up()
    try:
        admin = setup.admin()
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
        measure.stop_servers(admin, running)
        if setup.log_in_as_the_reference():
            print(f"== {setup.name}: {args.users} users at once, logging in as the reference does", flush=True)
            figures["burst_reference_login"] = measure.burst(setup, setup.admin(), args.users, prefix="benchplain")
        figures["seconds"] = time.monotonic() - started
        return figures
    finally:
        log = setup.deployment.compose("logs", "--no-color", check=False).stdout
        args.artifacts.mkdir(parents=True, exist_ok=True)
        (args.artifacts / f"benchmark-{setup.name.lower()}.log").write_text(log)
        setup.deployment.destroy()


def _reference_login(figures: dict) -> dict:
    return figures.get("burst_reference_login", figures["burst"])


def rows(results: dict, users: int):
    """(figure, unit, getter, target ratio or absolute limit) per table row."""
    ms, s = 1000, 1
    return [
        ("warm spawn p50", "s", s, lambda r: r["warm_spawn"]["p50"], ("ratio", 0.4)),
        ("warm spawn p95", "s", s, lambda r: r["warm_spawn"]["p95"], None),
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
    parser.add_argument("--setups", default="labhub,reference", help="which to run: labhub, reference or both (default)")
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

    report = {"machine": machine(), "users": args.users, "spawns": args.spawns, "round_trips": args.round_trips,
              "results": {}}
    failed = []
    for name in chosen:
        setup = SETUPS[name]()
        report["results"][setup.name] = figures = run_setup(setup, args)
        for burst in (figures["burst"], figures.get("burst_reference_login")) if name == "labhub" else ():
            if burst and burst["succeeded"] < args.users:
                failed.append(f"{args.users - burst['succeeded']} of {args.users} LabHub users got no server: "
                              + "; ".join(burst["errors"]))
    args.artifacts.mkdir(parents=True, exist_ok=True)
    out = args.artifacts / "benchmark.json"
    out.write_text(json.dumps(report, indent=1))
    m = report["machine"]
    print(f"\n{m['cpus']} CPUs, {m['memory_gib']} GiB, Docker {m['docker']}, load {m['load_average_at_start'][0]:.2f} "
          f"at start; {args.spawns} warm spawns, {args.users} users at once, {args.round_trips} round trips\n")
    print(table(report["results"], args.users))
    for name, figures in report["results"].items():
        print(f"{name} user image: {figures['user_image']}")
        print(f"{name}, CPU-seconds during the {args.users} users' burst, by program: "
              + ", ".join(f"{program} {seconds:.1f}" for program, seconds in figures["burst"]["cpu_seconds"].items()))
    print(f"\n(all figures: {out})")
    for problem in failed:
        print(f"FAILED: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
