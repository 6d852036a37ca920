"""The measurements, each taken the way a user's browser meets the hub: HTTPS (and wss) through
the setup's front door, logged in, following the spawn's progress events as the spawn page does."""

import collections
import datetime
import os
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

import harness
from .setups import Setup

SPAWN_TIMEOUT = 300  # seconds one user waits for a server before it counts as failed


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def at(q: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": statistics.median(ordered), "p95": at(0.95), "max": ordered[-1]}


def request_server(client: harness.HubClient, deadline: float) -> int:
    """Asks the hub to start the client's server; a hub that refuses for now (429, too many
    spawns at once) is asked again after its Retry-After. Returns how many refusals."""
    refusals = 0
    while True:
        r = client.request_server()
        if r.status_code != 429:
            break
        refusals += 1
        assert time.monotonic() < deadline, f"{client.user}: still refused at the deadline: {r.text[:200]}"
        time.sleep(float(r.headers.get("Retry-After") or 2))
    assert r.status_code in (201, 202), f"{client.user}: {r.status_code} {r.text[:300]}"
    return refusals


def spawn(client: harness.HubClient, deadline: float) -> dict:
    """Starts the client's server and opens it as a browser would (JupyterLab, then /api/status).
    A hub that refuses for now (429, too many spawns at once) is asked again, as a user told
    "try again" would; returns seconds to ready and to the first answer, and how many refusals."""
    start = time.monotonic()
    refusals = request_server(client, deadline)
    client.follow_progress(timeout=max(1, deadline - time.monotonic()))
    ready = time.monotonic()
    client.lab().raise_for_status()
    status = client.server_api("GET", "/status")
    assert status.status_code == 200, f"{client.user}: /api/status {status.status_code}"
    return {"ready": ready - start, "answered": time.monotonic() - start, "refusals": refusals}


TURN_SETTLE = 15  # seconds after the monitoring starts or stops: a scrape interval, so that a spawn meets its work


def warm_client(setup: Setup, admin: harness.HubClient, user: str) -> harness.HubClient:
    """A user logged in after an untimed first start (the image is present, the home exists,
    first-login setup has run), the server stopped again."""
    setup.prepare_user(admin, user)
    client = setup.login(user)
    spawn(client, time.monotonic() + SPAWN_TIMEOUT)
    client.stop_server()
    return client


def timed_spawn(client: harness.HubClient) -> float:
    """Seconds to a start's answer; the server stopped again."""
    took = spawn(client, time.monotonic() + SPAWN_TIMEOUT)["answered"]
    client.stop_server()
    return took


def warm_spawns(setup: Setup, admin: harness.HubClient, runs: int, user: str = "benchwarm") -> dict:
    """One user's server started and stopped `runs` times, after an untimed first start."""
    client = warm_client(setup, admin, user)
    return percentiles([timed_spawn(client) for _ in range(runs)])


def warm_spawns_in_turns(setup, admin: harness.HubClient, runs: int, user: str = "benchwarmturns") -> dict:
    """Warm spawns with the monitoring running and stopped, in turns on one deployment (which goes
    first alternates): what the monitoring costs a spawn, without the difference between two
    deployments brought up one after the other. Ends with it running."""
    client = warm_client(setup, admin, user)
    times = {True: [], False: []}
    for i in range(runs):
        for running in (True, False) if i % 2 == 0 else (False, True):
            setup.run_monitoring(running)
            time.sleep(TURN_SETTLE)
            times[running].append(timed_spawn(client))
    setup.run_monitoring(True)
    return {"on": percentiles(times[True]), "off": percentiles(times[False])}


def first_spawns(setup: Setup, admin: harness.HubClient, users: int) -> dict:
    """New users' first spawns, one at a time: their home made (and limited, with quotas) and
    first-login content run, as a new user meets it."""
    times = []
    for i in range(users):
        name = f"benchnew{i}"
        setup.prepare_user(admin, name)
        times.append(timed_spawn(setup.login(name)))
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


MONITORING_WINDOW = 60  # seconds the monitoring's CPU is measured over, with the servers running


def monitoring_cost(setup, servers: int) -> dict:
    """The monitoring's memory (RSS of each part) and CPU (of its containers, over a window in
    which Prometheus scrapes everything four times) while `servers` servers run; and the Docker
    engine's CPU over that window, where the exporter's questions to it show."""
    containers = setup.monitoring_containers()
    before = {service: _cpu_seconds(container) for service, container in containers.items()}
    engine_before = cpu_seconds_by_program()["dockerd"]
    time.sleep(MONITORING_WINDOW)
    used = sum(_cpu_seconds(container) - before[service] for service, container in containers.items()
               if before[service] is not None)
    engine = cpu_seconds_by_program()["dockerd"] - engine_before
    rss = setup.monitoring_rss()
    return {"servers": servers, "rss": rss, "rss_total": sum(rss.values()), "seconds": MONITORING_WINDOW,
            "cpu_fraction": used / MONITORING_WINDOW, "engine_cpu_fraction": engine / MONITORING_WINDOW}


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


# --- Hub start: the hub restarted with users in its database and servers running -------------

HUB_START_USERS = 50  # users in the hub's database when the hub start is measured
POLL = 0.1  # seconds between two looks at the login page or a server
HUB_START_TIMEOUT = 180  # seconds the restarted hub has to serve its login page
SERVERS_BACK_TIMEOUT = 60  # seconds the servers then have to answer through the front door
# JupyterHub's own log lines: "[I 2026-11-29 11:30:00.123 JupyterHub app:3400] ..."
JUPYTERHUB_LINE = re.compile(r"\[[DIWEC] \d{4}-\d\d-\d\d ")


def ensure_users(admin: harness.HubClient, total: int, prefix: str = "benchidle") -> list[str]:
    """Makes accounts (one REST API call, as an admin's script would: no signup, nothing
    hashed) until the hub's database holds `total` users; returns the names it made."""
    r = admin.api("GET", "/users?limit=200")
    assert r.status_code == 200, f"list of users: {r.status_code} {r.text[:300]}"
    have = {u["name"] for u in r.json()}
    names = [n for n in (f"{prefix}{i:02d}" for i in range(total)) if n not in have][:max(0, total - len(have))]
    if names:
        r = admin.api("POST", "/users", json={"usernames": names})
        assert r.status_code == 201, f"making {len(names)} users: {r.status_code} {r.text[:300]}"
    return names


def start_servers(admin: harness.HubClient, users: list[str]) -> None:
    """The admin starts these users' servers at once (asked again when told to wait), and waits
    until the hub has each ready."""
    deadline = time.monotonic() + SPAWN_TIMEOUT

    def one(user: str) -> None:
        client = admin.for_user(user)
        request_server(client, deadline)
        client.follow_progress(timeout=max(1, deadline - time.monotonic()))

    with ThreadPoolExecutor(max(1, len(users))) as pool:
        list(pool.map(one, users))


def _engine_time(text: str) -> float:
    """Seconds since the epoch of the engine's RFC 3339 time (nanoseconds, Z or an offset)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    assert m, f"not an engine time: {text!r}"
    whole = datetime.datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    return whole.timestamp() + float("0." + (m[2] or "0"))


def hub_log(container: str, since: float) -> list[tuple[float, str]]:
    """(seconds after `since`, text) of each line the container printed from then on, in order
    (docker logs --timestamps: the engine's time of each line, stdout and stderr alike)."""
    out = harness.docker("logs", "--timestamps", "--since", str(int(since) - 1), container)
    lines = []
    for line in out.splitlines():
        stamp, _, text = line.partition(" ")
        try:
            at = _engine_time(stamp) - since
        except AssertionError:  # a line without a time (never expected)
            continue
        if at >= 0:
            lines.append((at, text))
    return sorted(lines, key=lambda line: line[0])


def hub_start_phases(lines: list[tuple[float, str]]) -> dict:
    """Where a hub start went, from the hub's log: seconds from the container's start to its
    first line, to JupyterHub's first line (which may be one LabHub's config logs), to "Running JupyterHub version" (the config loaded)
    and to "JupyterHub is now running"; and the longest quiet spans before that (the line each
    one ended with)."""
    def first(match) -> float | None:
        return next((at for at, text in lines if match(text)), None)

    running = first(lambda text: "JupyterHub is now running" in text)
    phases = {"first_line": lines[0][0] if lines else None,
              "jupyterhub_first_line": first(lambda text: JUPYTERHUB_LINE.match(text) is not None),
              "jupyterhub_version": first(lambda text: "Running JupyterHub version" in text),  # its config loaded
              "jupyterhub_running": running}
    start = [line for line in lines if running is None or line[0] <= running]
    spans = [(at - before, text, previous)
             for (before, previous), (at, text) in zip([(0.0, "(container start)")] + start, start)]
    phases["quiet_spans"] = [{"seconds": round(gap, 3), "after": previous[:200], "until": text[:200]}
                             for gap, text, previous in sorted(spans, reverse=True)[:6]]
    phases["log"] = [[round(at, 3), text[:300]] for at, text in start[:2000]]
    return phases


def _answers(session: requests.Session, url: str, headers: dict | None = None) -> bool:
    try:
        return session.get(url, headers=headers, timeout=5, allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


def _ready(setup: Setup, session: requests.Session, user: str, headers: dict) -> bool:
    """Whether the hub has the user's (default) server ready."""
    try:
        r = session.get(setup.deployment.url + f"/hub/api/users/{quote(user, safe='')}", headers=headers, timeout=5)
        return r.status_code == 200 and bool(r.json().get("servers", {}).get("", {}).get("ready"))
    except (requests.RequestException, ValueError):
        return False


def restart_hub(setup: Setup, token: str, servers: list[str]) -> dict:
    """`docker compose restart hub`, then: seconds from the new hub container's start (its
    State.StartedAt, the engine's clock) to the login page answering 200 through the front
    door, looked at every POLL seconds from the moment the restart command returns; the phases
    in the hub's log; and the servers: each must answer /api/status through the front door again
    (with the admin's token) and be ready in the hub's view, within SERVERS_BACK_TIMEOUT."""
    headers = {"Authorization": f"token {token}"}
    status_url = {user: setup.deployment.url + f"/user/{quote(user, safe='')}/api/status" for user in servers}
    watch = harness.Watch(setup.deployment, status_url[servers[0]], headers, every=POLL) if servers else None
    if watch:
        watch.start()
    asked = time.time()
    setup.deployment.compose("restart", "hub")
    returned = time.time()
    container = setup.deployment.container("hub")
    started = _engine_time(harness.docker("inspect", "-f", "{{.State.StartedAt}}", container))
    result = {"started_at": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="milliseconds"),
              "restart_command": returned - asked, "restart_returned": returned - started, "problems": []}
    login_url = setup.deployment.url + "/hub/login"
    with setup.deployment.session() as session:
        while not _answers(session, login_url):
            if time.time() > returned + HUB_START_TIMEOUT:
                result["problems"].append(f"hub start: no login page through the front door {HUB_START_TIMEOUT}s "
                                          "after the restart")
                break
            time.sleep(POLL)
        else:
            result["login"] = time.time() - started
            # What the admin who restarts waits: the old hub's stop and the engine's work before
            # the new container starts (re-attaching it to every server's network) included.
            result["login_after_restart_command"] = time.time() - asked
        # Every server that ran before: answering through the front door, and ready for the hub.
        waiting, deadline = set(servers), time.time() + SERVERS_BACK_TIMEOUT
        sessions = {user: setup.deployment.session() for user in servers}

        def back(user: str) -> bool:
            return _answers(sessions[user], status_url[user], headers) and _ready(setup, sessions[user], user, headers)

        with ThreadPoolExecutor(8) as pool:
            while waiting and "login" in result and time.time() < deadline:
                users = sorted(waiting)
                waiting -= {user for user, ok in zip(users, pool.map(back, users)) if ok}
                if waiting:
                    time.sleep(POLL)
        for each in sessions.values():
            each.close()
        if servers and "login" in result:
            if waiting:
                result["problems"].append(f"hub start: {len(waiting)} of {len(servers)} running servers not answering "
                                          f"{SERVERS_BACK_TIMEOUT}s after the login page: {', '.join(sorted(waiting))}")
            else:
                result["servers_answering"] = time.time() - started
    if watch:
        watch.stop()
        result["server_unanswered"] = watch.unanswered()
        result["server_failed_requests"] = len(watch.failures)
    result.update(hub_start_phases(hub_log(container, started)))
    return result


def hub_start(setup: Setup, admin: harness.HubClient, servers: list[str], restarts: int = 1) -> dict:
    """The hub restarted `restarts` times with HUB_START_USERS users in its database (made as
    needed) and these users' servers running (see restart_hub)."""
    made = ensure_users(admin, HUB_START_USERS)
    r = admin.api("POST", f"/users/{quote(admin.user, safe='')}/tokens",
                  json={"note": "benchmark: hub start", "expires_in": 3600})
    assert r.status_code == 201, f"admin token: {r.status_code} {r.text[:300]}"
    token = r.json()["token"]
    users = len(admin.api("GET", "/users?limit=200").json())
    runs = [restart_hub(setup, token, servers) for _ in range(restarts)]
    keys = ("login", "login_after_restart_command", "first_line", "jupyterhub_first_line",
            "jupyterhub_version", "jupyterhub_running", "servers_answering", "server_unanswered",
            "server_failed_requests")
    summary = {key: percentiles(values) for key in keys
               if (values := [run[key] for run in runs if run.get(key) is not None])}
    return {"users": users, "users_made": len(made), "servers": len(servers), "restarts": restarts, **summary,
            "problems": [problem for run in runs for problem in run["problems"]], "runs": runs}
