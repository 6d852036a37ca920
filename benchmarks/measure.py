"""The measurements, each taken the way a user's browser meets the hub: HTTPS (and wss) through
the setup's front door, logged in, following the spawn's progress events as the spawn page does."""

import collections
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import harness
from .setups import Setup

SPAWN_TIMEOUT = 300  # seconds one user waits for a server before it counts as failed


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def at(q: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": statistics.median(ordered), "p95": at(0.95), "max": ordered[-1]}


def spawn(client: harness.HubClient, deadline: float) -> dict:
    """Starts the client's server and opens it as a browser would (JupyterLab, then /api/status).
    A hub that refuses for now (429, too many spawns at once) is asked again, as a user told
    "try again" would; returns seconds to ready and to the first answer, and how many refusals."""
    start, refusals = time.monotonic(), 0
    while True:
        r = client.request_server()
        if r.status_code != 429:
            break
        refusals += 1
        assert time.monotonic() < deadline, f"{client.user}: still refused at the deadline: {r.text[:200]}"
        time.sleep(float(r.headers.get("Retry-After") or 2))
    assert r.status_code in (201, 202), f"{client.user}: {r.status_code} {r.text[:300]}"
    client.follow_progress(timeout=max(1, deadline - time.monotonic()))
    ready = time.monotonic()
    client.lab().raise_for_status()
    status = client.server_api("GET", "/status")
    assert status.status_code == 200, f"{client.user}: /api/status {status.status_code}"
    return {"ready": ready - start, "answered": time.monotonic() - start, "refusals": refusals}


def warm_spawns(setup: Setup, admin: harness.HubClient, runs: int) -> dict:
    """One user's server started and stopped `runs` times, after an untimed first start (the
    image is present, the home exists, first-login setup has run)."""
    setup.prepare_user(admin, "benchwarm")
    client = setup.login("benchwarm")
    spawn(client, time.monotonic() + SPAWN_TIMEOUT)
    client.stop_server()
    times = []
    for _ in range(runs):
        times.append(spawn(client, time.monotonic() + SPAWN_TIMEOUT)["answered"])
        client.stop_server()
    return percentiles(times)


def kernel_round_trips(client: harness.HubClient, runs: int) -> dict:
    """execute_request -> result over one wss connection, through the front door."""
    kernel = client.start_kernel()
    times = []
    socket = client.kernel_socket(kernel)
    try:
        for i in range(runs + 5):
            start = time.perf_counter()
            assert socket.run(f"{i}+1") == str(i + 1)
            if i >= 5:  # the first few warm the kernel up
                times.append(time.perf_counter() - start)
    finally:
        socket.close()
    client.server_api("DELETE", f"/kernels/{kernel}")
    return percentiles(times)


def proxy_overhead(setup: Setup, client: harness.HubClient, runs: int) -> dict:
    """GET /api/status of a user server through the front door (HTTPS, the proxies) and straight
    at the container (plain HTTP on the users network), alternately, on kept-alive connections."""
    token = client.api("POST", f"/users/{client.user}/tokens", json={"note": "benchmark", "expires_in": 600})
    assert token.status_code == 201, token.text
    headers = {"Authorization": "token " + token.json()["token"]}
    proxied = client.url(client.server_path + "api/status")
    direct = f"http://{setup.user_ip(client.user)}:8888{client.server_path}api/status"
    times = {"proxied": [], "direct": []}
    with requests.Session() as front, requests.Session() as straight:
        front.trust_env = straight.trust_env = False
        front.verify = setup.deployment.ca_file
        for i in range(runs + 10):
            for name, session, url in (("proxied", front, proxied), ("direct", straight, direct)):
                start = time.perf_counter()
                r = session.get(url, headers=headers, timeout=30)
                elapsed = time.perf_counter() - start
                assert r.status_code == 200, f"{name} {url}: {r.status_code}"
                if i >= 10:
                    times[name].append(elapsed)
    result = {name: percentiles(values) for name, values in times.items()}
    result["overhead_p50"] = result["proxied"]["p50"] - result["direct"]["p50"]
    return result


def cpu_seconds_by_program() -> collections.Counter:
    """CPU-seconds every process on this machine has used (with its waited-for children), summed
    by program name: taken before and after a burst, it shows where the machine's CPU went."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = collections.Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process has gone
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        used[name] += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
    return used


def burst(setup: Setup, admin: harness.HubClient, users: int, prefix: str = "benchburst") -> dict:
    """`users` people log in and start their servers at the same moment (their first start)."""
    names = [f"{prefix}{i:02d}" for i in range(users)]
    for name in names:
        setup.prepare_user(admin, name)
    cpu_before = cpu_seconds_by_program()
    go = threading.Barrier(users)
    results: dict[str, dict] = {}

    def one(name: str) -> None:
        go.wait()
        start = time.monotonic()
        try:
            client = setup.login(name)
            login = time.monotonic() - start
            result = spawn(client, start + SPAWN_TIMEOUT)
            results[name] = {"ok": True, "login": login, "total": time.monotonic() - start, **result}
        except Exception as e:  # one user's failure is a figure, not the end of the run
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500], "total": time.monotonic() - start}

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_seconds_by_program() - cpu_before
    ok = [r for r in results.values() if r["ok"]]
    return {"users": users, "succeeded": len(ok), "total": percentiles([r["total"] for r in ok]) if ok else None,
            "login": percentiles([r["login"] for r in ok]) if ok else None,
            "refusals": sum(r.get("refusals", 0) for r in ok),
            "errors": sorted({r["error"] for r in results.values() if not r["ok"]}), "names": names,
            "cpu_seconds": dict(cpu.most_common(8))}


def stop_servers(admin: harness.HubClient, users: list[str]) -> None:
    """Stops these users' servers, so that what is measured next starts on a quiet machine."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda user: admin.for_user(user).stop_server(), users))


def _cpu_seconds(container_id: str) -> float | None:
    """CPU time a container has used, from its cgroup (v1 or v2); None where neither is found."""
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage", 1e-9),
                        (f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat", 1e-6)):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        return scale * int(text.split("usage_usec ")[1].split()[0] if "usage_usec" in text else text)
    return None


def server_starts(image: str, runs: int) -> dict:
    """A user image's own part of a spawn, without a hub: seconds, and CPU-seconds, from `docker run`
    to its Jupyter server answering (jupyter server, as jupyterhub-singleuser runs it)."""
    times, cpu = [], []
    for _ in range(runs):
        start = time.monotonic()
        container = harness.docker("run", "-d", "--rm", "--entrypoint", "tini", image, "--", "jupyter", "server",
                                   "--ServerApp.ip=0.0.0.0", "--ServerApp.token=", "--ServerApp.base_url=/bench/")
        try:
            ip = harness.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", container)
            while time.monotonic() - start < SPAWN_TIMEOUT:
                try:
                    if requests.get(f"http://{ip}:8888/bench/api", timeout=5).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.02)
            else:
                raise AssertionError(f"{image}: no Jupyter server answering after {SPAWN_TIMEOUT}s")
            times.append(time.monotonic() - start)
            cpu.append(_cpu_seconds(container))
        finally:
            harness.docker("rm", "-f", container, check=False)
    return {"seconds": percentiles(times), "cpu_seconds": percentiles(cpu) if None not in cpu else None}
