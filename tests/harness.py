"""Test harness: LabHub deployments run for real with Docker Compose, and a client that talks to
them the way a browser does (HTTPS through Traefik, cookies, XSRF, WebSockets)."""

import contextlib
import copy
import html
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import requests
from urllib.parse import quote, urlsplit
import websocket

REPO = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/labhub-tests")
# Several test runs can share one machine: LABHUB_TEST_NAMESPACE prefixes every compose project,
# LABHUB_TEST_PORTS ("http,https", default 80,443) are the host ports their Traefik publishes.
NAMESPACE = os.environ.get("LABHUB_TEST_NAMESPACE", "")
HTTP_PORT, HTTPS_PORT = (int(p) for p in os.environ.get("LABHUB_TEST_PORTS", "80,443").split(","))


def free_ports() -> tuple[int, int]:
    """Two host ports nobody holds now: for a deployment that runs beside the session's stack."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("0.0.0.0", 0))
        b.bind(("0.0.0.0", 0))
        return a.getsockname()[1], b.getsockname()[1]


def run(*cmd, cwd=None, check=True, timeout=900, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=check, timeout=timeout, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def docker(*args, check=True) -> str:
    return run("docker", *args, check=check).stdout.strip()


class Deployment:
    """A copy of the repository's files in its own folder with its own compose project name,
    like an admin's fresh clone: its own secret/, .env and state. compose_file (relative to the
    repository, named docker-compose.yml) runs another compose project from the same copy, e.g.
    the benchmark's reference."""

    def __init__(self, name: str, ports: tuple[int, int] = (HTTP_PORT, HTTPS_PORT),
                 compose_file: str = "docker-compose.yml", docker_host: str = ""):
        self.project = NAMESPACE + name
        # Another Docker engine than the machine's (DOCKER_HOST), e.g. a swarm manager (tests/swarm.py).
        self.env = {**os.environ, "DOCKER_HOST": docker_host} if docker_host else None
        self.compose_file = compose_file
        self.dir = WORK / self.project
        self.ports = http_port, https_port = ports
        self.url = "https://localhost" + ("" if https_port == 443 else f":{https_port}")
        self.http_url = "http://localhost" + ("" if http_port == 80 else f":{http_port}")
        self.base_settings = {} if ports == (80, 443) else {"http_port": http_port, "https_port": https_port}
        if self.dir.exists():
            self.destroy()
        files = run("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).stdout.split()
        # The site's extra CAs (git-ignored) belong to a real checkout too: builds need them.
        files += [str(p.relative_to(REPO)) for p in (REPO / "ca-certificates").glob("*.crt")]
        for rel in files:
            if (REPO / rel).is_file():
                (self.dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, self.dir / rel)
        self.set_env()

    @property
    def secret(self) -> Path:
        return self.dir / "secret"

    @property
    def ca_file(self) -> str:
        return str(self.secret / "labhub-ca.crt")

    def session(self) -> requests.Session:
        """An HTTPS session that trusts this deployment's CA (not the machine's REQUESTS_CA_BUNDLE)."""
        session = requests.Session()
        session.trust_env, session.verify = False, self.ca_file
        return session

    def admin_password(self, admin="admin") -> str:
        return (self.secret / "admin-passwords" / admin).read_text().strip()

    def compose(self, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
        # Run where the compose file is, without -f, as an admin does: compose then also reads
        # docker-compose.override.yml and COMPOSE_FILE from .env there.
        return run("docker", "compose", "--ansi", "never", "-p", self.project, *args,
                   cwd=(self.dir / self.compose_file).parent, check=check, timeout=timeout, env=self.env)

    def docker(self, *args, check=True) -> str:
        """The docker command against this deployment's engine."""
        return run("docker", *args, check=check, env=self.env).stdout.strip()

    def up(self, check=True, build=True) -> subprocess.CompletedProcess:
        # On another engine, the images are the ones loaded there (tests/swarm.py), never rebuilt.
        return self.compose("up", "-d", "--wait", *(["--no-build"] if self.env or not build else []), check=check)

    def set_env(self, **settings) -> None:
        """Writes .env (LABHUB_<NAME>=value for each keyword; an upper-case one as it is, e.g.
        COMPOSE_PROFILES), as an admin would; no keywords and
        the default ports: no .env at all, as on a fresh clone."""
        settings = {**self.base_settings, **settings}
        env = (self.dir / self.compose_file).parent / ".env"  # where compose reads it
        if not settings:
            env.unlink(missing_ok=True)
            return
        env.write_text("".join(f"{name if name.isupper() else 'LABHUB_' + name.upper()}={value}\n"
                               for name, value in settings.items()))

    @contextlib.contextmanager
    def configured(self, *, build=True, **settings):
        """The running deployment with these settings in .env; the defaults again afterwards.
        build=False: with the images as they are, though their sources changed (e.g. a CA added to
        ca-certificates/ that only the containers are to read, not the images)."""
        self.set_env(**settings)
        try:
            result = self.up(check=False, build=build)
            assert result.returncode == 0, result.stdout[-3000:] + self.compose("logs", "--tail", "30", check=False).stdout
            yield self
        finally:
            self.set_env()
            self.up(build=build)

    def wait_until_published(self, name: str, text: str, timeout=30) -> None:
        """proxy-config publishes a changed file within seconds (an admin restarts Traefik after
        changing its static config): waits until `name` there holds `text`."""
        deadline = time.monotonic() + timeout
        while self.compose("exec", "-T", "proxy-config", "grep", "-qF", text,
                           f"/srv/jupyterhub/proxy-config/{name}", check=False).returncode != 0:
            assert time.monotonic() < deadline, f"{name} with {text!r} not published"
            time.sleep(0.5)

    def container(self, service: str) -> str:
        """The id of a compose service's running container ("" if none runs)."""
        return self.compose("ps", "-q", service).stdout.strip()

    def prometheus(self, query: str) -> list[str]:
        """The answer of the deployment's Prometheus (COMPOSE_PROFILES=monitoring) to a PromQL query
        now, a line per series (promtool, in its own container: nothing else reaches it)."""
        out = self.compose("exec", "-T", "prometheus", "promtool", "query", "instant", "http://127.0.0.1:9090", query).stdout
        return [line for line in out.splitlines() if "=>" in line]

    def wait_for_series(self, query: str, timeout: float = 90) -> list[str]:
        deadline = time.monotonic() + timeout
        while not (found := self.prometheus(query)):
            assert time.monotonic() < deadline, f"Prometheus has no {query} after {timeout} s"
            time.sleep(3)
        return found

    def service_log(self, service: str) -> str:
        """What a service's container printed (docker logs: compose's own adds terminal codes)."""
        container = self.compose("ps", "-a", "-q", service).stdout.strip()
        assert container, f"{self.project} has no {service} container"
        return self.docker("logs", container)

    def user_container(self, user: str, server: str = ""):
        """The id of a user's server container (user name as escaped), or None."""
        name = f"{self.project}-user-{user}" + (f"--{server}" if server else "")
        out = self.docker("ps", "-q", "--no-trunc", "--filter", f"name=^{name}$")
        return out or None

    def destroy(self) -> None:
        """Removes everything the deployment made: containers (user servers too), volumes, networks."""
        if (self.dir / self.compose_file).exists():
            self.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        # Swarm mode: the servers' services (labhub.swarmspawner) and the guard agent's (labhub.guard).
        services = run("docker", "service", "ls", "-q", "--filter", f"name={self.project}-", check=False, env=self.env)
        if services.returncode == 0 and services.stdout.split():
            self.docker("service", "rm", *services.stdout.split(), check=False)
        users = self.docker("ps", "-aq", "--filter", f"name=^{self.project}-user-", check=False).split()
        if users:
            self.docker("rm", "-f", *users, check=False)
        volumes = self.docker("volume", "ls", "-q", "--filter", f"name=^{self.project}-home-", check=False).split()
        if volumes:
            self.docker("volume", "rm", "-f", *volumes, check=False)
        networks = self.docker("network", "ls", "-q", "--filter", f"label=org.labhub.users-network={self.project}",
                               check=False).split()
        if networks:
            self.docker("network", "rm", *networks, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class Watch(threading.Thread):
    """Asks one URL through the front door every `every` seconds, from start() (or `with`) until
    stop(): the looks that did not get a 200 (when, and the status or error), and the longest
    span without an answer."""

    def __init__(self, deployment: "Deployment", url: str, headers: dict | None = None, every: float = 0.2):
        super().__init__(daemon=True)
        self.session = deployment.session()
        self.url, self.headers, self.every = url, headers or {}, every
        self.stopped, self.looks = threading.Event(), []  # looks: (time.time(), status or error, ok)

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                status = self.session.get(self.url, headers=self.headers, timeout=5, allow_redirects=False).status_code
                self.looks.append((time.time(), status, status == 200))
            except requests.RequestException as e:
                self.looks.append((time.time(), type(e).__name__, False))
            time.sleep(self.every)

    def stop(self) -> "Watch":
        self.stopped.set()
        self.join()
        self.session.close()
        return self

    def __enter__(self) -> "Watch":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def failures(self) -> list[tuple[float, object]]:
        return [(at, what) for at, what, ok in self.looks if not ok]

    def unanswered(self) -> float:
        """The longest run of failed looks: its first failure to the next answer (or the last look)."""
        longest, down_since = 0.0, None
        for at, _, ok in self.looks:
            if not ok and down_since is None:
                down_since = at
            elif ok and down_since is not None:
                longest, down_since = max(longest, at - down_since), None
        if down_since is not None:
            longest = max(longest, self.looks[-1][0] - down_since)
        return longest


def logged_in_admin(deployment: "Deployment") -> "HubClient":
    """The admin `admin` of a deployment, logged in with its first password (secret/admin-passwords/)."""
    client = HubClient(deployment)
    landed = client.login("admin", deployment.admin_password())
    assert landed.status_code == 200 and "/hub/login" not in landed.url, landed.text[:500]
    return client


def native_user(deployment: "Deployment", admin: "HubClient", user: str, password: str = "Lab-Notebook-2026") -> "HubClient":
    """A new user of a native-login deployment (at the admin's host): signed up, approved by the admin, logged in."""
    client = HubClient(deployment, admin.user_subdomains_of)
    client.sign_up(user, password)
    admin.http.get(admin.url("/hub/authorize/" + quote(user, safe=""))).raise_for_status()
    landed = client.login(user, password)
    assert "/hub/login" not in landed.url, landed.text[:1000]
    return client


class KernelDied(Exception):
    pass


class HubClient:
    """A logged-in user, through Traefik over HTTPS. With user_subdomains_of (LABHUB_USER_SUBDOMAINS),
    the hub is at that host name, and each user's servers at <user>.<that host name>."""

    def __init__(self, deployment: Deployment, user_subdomains_of: str = ""):
        self.deployment = deployment
        self.user_subdomains_of = user_subdomains_of
        self.base = deployment.url.replace("//localhost", f"//{user_subdomains_of}") if user_subdomains_of else deployment.url
        self.http = deployment.session()
        self.user = None
        self.server = ""  # "" is the user's default server; else a named one

    def named(self, server: str) -> "HubClient":
        """The same logged-in person, talking to another of their servers."""
        other = copy.copy(self)
        other.server = server
        return other

    def for_user(self, user: str) -> "HubClient":
        """An admin's client, acting on another user's server (waiting for it, stopping it)."""
        other = copy.copy(self)
        other.user = user
        return other

    def url(self, path: str) -> str:
        if self.user_subdomains_of and path.startswith("/user/"):
            return self.base.replace("//", f"//{self.user}.", 1) + path
        return self.base + path

    def xsrf_headers(self) -> dict:
        return {"X-XSRFToken": self.http.cookies.get("_xsrf", path="/hub/") or self.http.cookies.get("_xsrf")}

    def login(self, user: str, password: str) -> requests.Response:
        self.user = user
        page = self.http.get(self.url("/hub/login"))
        page.raise_for_status()
        r = self.http.post(self.url("/hub/login"), data={
            "username": user, "password": password, "_xsrf": self.http.cookies.get("_xsrf")})
        return r

    def sign_up(self, user: str, password: str) -> None:
        self.http.get(self.url("/hub/signup")).raise_for_status()
        r = self.http.post(self.url("/hub/signup"), data={
            "username": user, "signup_password": password, "signup_password_confirmation": password,
            "_xsrf": self.http.cookies.get("_xsrf")})
        alert = re.search(r'role="alert">(.*?)</div>', r.text, re.S)
        assert "has been sent to the admin" in r.text, alert.group(1).strip() if alert else r.text[-2000:]

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        return self.http.request(method, self.url("/hub/api" + path), headers=self.xsrf_headers(), **kw)

    @property
    def _server_api(self) -> str:
        user = quote(self.user, safe="")
        return f"/users/{user}/servers/{quote(self.server, safe='')}" if self.server else f"/users/{user}/server"

    def forget_server(self) -> None:
        """Deletes this named server altogether (it counts toward the named-server limit)."""
        r = self.api("DELETE", self._server_api, json={"remove": True})
        assert r.status_code in (202, 204), r.text

    def request_server(self, **options) -> requests.Response:
        """Asks the hub to start this server with these user options (e.g. image=<title>); with
        none, a plain start with no body, as the admin page's (the last start's options again)."""
        return self.api("POST", self._server_api, json=options or None)

    def start_server(self, timeout=180, **options) -> dict:
        r = self.request_server(**options)
        assert r.status_code in (201, 202) or "already running" in r.text, r.text
        server = self.wait_ready(timeout)
        self.lab().raise_for_status()  # log in to this server (a new server means a new login)
        return server

    def wait_ready(self, timeout=180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{quote(self.user, safe='')}").json()
            server = model.get("servers", {}).get(self.server, {})
            if server.get("ready"):
                return server
            time.sleep(0.5)
        raise TimeoutError(f"server of {self.user} not ready after {timeout}s: {model}")

    def follow_progress(self, timeout=180) -> dict:
        """Follows the spawn's progress events, as the hub's spawn page does, and returns the
        ready event: the moment the hub has the server ready, without polling."""
        with self.api("GET", self._server_api + "/progress", stream=True, timeout=timeout) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    if event.get("ready") or event.get("failed"):
                        assert event.get("ready"), f"spawn of {self.user} failed: {event.get('message')}"
                        return event
        raise AssertionError(f"the progress of {self.user}'s spawn ended without a ready event")

    def stop_server(self, timeout=120) -> None:
        r = self.api("DELETE", self._server_api)
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server not in self.api("GET", f"/users/{quote(self.user, safe='')}").json().get("servers", {}):
                return
            time.sleep(0.5)
        raise TimeoutError(f"server of {self.user} did not stop")

    @property
    def server_path(self) -> str:
        return "/user/" + quote(self.user, safe="") + "/" + (quote(self.server, safe="") + "/" if self.server else "")

    def lab(self) -> requests.Response:
        """Opens JupyterLab (following the OAuth hand-off from the hub to the user's server). A server
        someone shared with this user first takes their confirmation on the hub's page: given, as a
        person opening it would."""
        r = self.http.get(self.url(self.server_path + "lab"))
        if r.status_code == 200 and urlsplit(r.url).path.endswith("/hub/api/oauth2/authorize"):
            form = {"_xsrf": html.unescape(re.search(r'name="_xsrf" value="([^"]*)"', r.text)[1]),
                    "scopes": [html.unescape(v) for v in re.findall(r'name="scopes" value="([^"]*)"', r.text)]}
            r = self.http.post(r.url, data=form)
        return r

    def _server_xsrf(self) -> str | None:
        if self.user_subdomains_of:  # on the user's own host
            return next((c.value for c in self.http.cookies if c.name == "_xsrf"
                         and c.domain == f"{self.user}.{self.user_subdomains_of}"), None)
        # The server's cookie path is the user's URL-escaped name: match it by prefix.
        return next((c.value for c in self.http.cookies if c.name == "_xsrf" and c.path.startswith("/user/")
                     and (not self.server or c.path.rstrip("/").endswith("/" + quote(self.server, safe="")))), None)

    def server_api(self, method: str, path: str, **kw) -> requests.Response:
        if not self._server_xsrf():  # not yet logged in to the server itself
            self.lab().raise_for_status()
        headers = {"X-XSRFToken": self._server_xsrf() or ""}
        kw.setdefault("timeout", 60)
        return self.http.request(method, self.url(f"{self.server_path}api{path}"), headers=headers, **kw)

    def write_file(self, path: str, text: str) -> None:
        r = self.server_api("PUT", f"/contents/{path}", json={"type": "file", "format": "text", "content": text})
        assert r.status_code in (200, 201), r.text

    def read_file(self, path: str) -> str | None:
        r = self.server_api("GET", f"/contents/{path}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()["content"]

    def start_kernel(self) -> str:
        r = self.server_api("POST", "/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def server_websocket(self, path: str, timeout=60, ca_file=None) -> websocket.WebSocket:
        """A WebSocket of this server's (path below its URL) over wss through Traefik (close it)."""
        if not self._server_xsrf():
            self.lab().raise_for_status()
        ws_url = self.url(self.server_path + path).replace("https://", "wss://")
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        return websocket.create_connection(ws_url, timeout=timeout, cookie=cookies,
                                           sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca_file or self.deployment.ca_file})

    def kernel_socket(self, kernel_id: str, timeout=60, ca_file=None) -> "KernelSocket":
        """A kernel's WebSocket over wss through Traefik, kept open across runs (close it)."""
        return KernelSocket(self.server_websocket(f"api/kernels/{kernel_id}/channels", timeout, ca_file), self.user)

    def execute(self, kernel_id: str, code: str, timeout=60) -> str:
        """Runs code in the kernel over wss through Traefik; returns the result's text/plain."""
        socket = self.kernel_socket(kernel_id, timeout)
        try:
            return socket.run(code, timeout)
        finally:
            socket.close()


class KernelSocket:
    def __init__(self, ws, user: str):
        self.ws, self.user = ws, user

    def run(self, code: str, timeout=60) -> str:
        """Executes code; returns the result's text/plain."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] in ("restarting", "dead"):
                raise KernelDied(msg["content"]["execution_state"])
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                return msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']}")
        raise TimeoutError("no execute_result")

    def close(self) -> None:
        self.ws.close()


def closed_within(socket: websocket.WebSocket, seconds: float) -> bool:
    """Whether the server closes the WebSocket within seconds (what else it sends is read and dropped)."""
    socket.settimeout(1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if socket.recv() in ("", b""):  # the server's close frame
                return True
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
    return False


def lab_refused(client: HubClient) -> bool:
    """Whether the client's way into its server (client.user's) ends in a refusal."""
    return client.lab().status_code in (403, 404)
