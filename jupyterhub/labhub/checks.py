"""`labhub check`: everything wrong with a deployment, one line per problem naming the setting or
file and the fix. It runs the validation the start itself runs (settings, logins, certificates,
host folders, GPUs, user images), but collects every problem instead of stopping at the first;
`labhub setup` and the hub run the same checks at each start.

Grouped by what they need: settings, logins and secret/ (the setup step refuses to start on these),
the admin's copies of the templates, the Docker engine (the hub logs these at start), the host's
ports (the admin command only: a running LabHub holds its own), and what Traefik's ACME client
refused (only Traefik knows).
"""

import datetime
import fnmatch
import importlib.metadata
import re
import stat
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.errors import APIError

from . import auth, images, monitoring, probe, quota, resources, settings, siteconfig, swarm
from .context import EngineFacts
from .settings import ACME_DNS_ENV, LEGO_DNS_PROVIDERS, Settings, SettingError, fail
from .stack import Stack

# Docker Engine 20.10 speaks API 1.41: GPU device requests, the mount options and the compose
# features (long env_file syntax, service_completed_successfully) the stack uses need it.
MIN_DOCKER_API = (1, 41)
# Files in secret/ anyone may read; every other file there is a key or a password.
PUBLIC_SECRETS = ("*.crt", "README.md")
# What the shared folder needs (host-setup makes it 2770): setgid, and rwx for its group.
SHARED_DIR_MODE = 0o2770
# lego's words (Traefik's ACME client) when it cannot set the DNS provider up: a code this Traefik does
# not know, or credentials missing from secret/acme-dns.env. Traefik logs them when it first asks for
# the certificate, seconds after its start; only its log since then is read (the access log follows).
LEGO_UNKNOWN_PROVIDER = re.compile(r"unrecognized DNS provider: ([a-z0-9-]+)")
LEGO_MISSING_CREDENTIALS = re.compile(r"([a-z0-9-]+): (some credentials information are missing: [^\"\n]*)")
ACME_START_SECONDS = 600


def _collected(check, *args) -> list[str]:
    try:
        check(*args)
    except SettingError as error:
        return [str(error)]
    return []


def load_settings(environ) -> tuple[Settings | None, list[str]]:
    """The settings (None when they cannot be read) and every problem with them."""
    problems = settings.unknown(environ)
    known = {k: v for k, v in environ.items() if not (k.startswith(settings.PREFIX) and
                                                     k.removeprefix(settings.PREFIX) not in settings.SETTINGS)}
    try:
        return settings.load(known), problems
    except SettingError as error:
        return None, [*problems, str(error)]


def site_files(site_dir: Path) -> list[str]:
    """The admin's copies of the templates must at least parse."""
    problems = []
    former_copy = site_dir / "jupyterhub/context" / siteconfig.FORMER_COPY
    if former_copy.exists():
        try:
            problems.append(siteconfig.former_copy_advice(former_copy))
        except SettingError as error:  # the copy does not parse
            problems.append(str(error))
    problems += siteconfig.site_file_problems(site_dir / "jupyterhub/context")
    traefik = site_dir / "reverse-proxy/traefik.toml"
    if traefik.exists():
        try:
            tomllib.loads(traefik.read_text())
        except tomllib.TOMLDecodeError as error:
            problems.append(f"reverse-proxy/traefik.toml: {error}; fix it, "
                            "or remove the file to use traefik.toml.template")
    return problems


def secret_permissions(secret_dir: Path) -> list[str]:
    """Keys and passwords in secret/ readable by the owner only; secret/ writable by the owner only."""
    problems = []
    if secret_dir.exists() and secret_dir.stat().st_mode & 0o022:
        problems.append("secret/: others may write in it; run `chmod go-w secret`")
    for path in sorted(secret_dir.rglob("*")):
        shown = "secret/" + str(path.relative_to(secret_dir))
        if path.is_file() and not any(fnmatch.fnmatch(path.name, p) for p in PUBLIC_SECRETS) \
                and stat.S_IMODE(path.stat().st_mode) & 0o077:
            problems.append(f"{shown}: readable by others ({stat.filemode(path.stat().st_mode)}), "
                            f"yet it holds a key or password; run `chmod 600 {shown}`")
    return problems


def config(environ, secret_dir: Path) -> tuple[Settings | None, list[str]]:
    """Problems a start refuses on, from the settings and secret/ alone: settings and logins.
    (The setup step checks the certificate as it makes or takes it; check adds certs.problems.)"""
    s, problems = load_settings(environ)
    if s:
        problems += _collected(auth.check, s, secret_dir, environ)
        if monitoring.enabled(environ):
            problems += monitoring.problems(s, secret_dir)
    return s, problems


def flavor_versions(engine: docker.DockerClient, stack: Stack) -> dict[str, str]:
    """image -> the jupyterhub version installed in it, for every built flavor (looked at all at
    once: each look starts a container)."""
    script = "import importlib.metadata as m; print(m.version('jupyterhub'))"

    def version(ref: str) -> str:
        try:
            return stack.run_helper(engine, ["python3", "-c", script], image=ref, entrypoint=[]).decode().strip()
        except docker.errors.DockerException:
            return "none"

    refs = [flavor.ref for flavor in images.built_flavors(engine).values()]
    with ThreadPoolExecutor() as pool:
        return dict(zip(refs, pool.map(version, refs)))


def engine_problems(engine: docker.DockerClient, stack: Stack, facts: EngineFacts, s: Settings) -> list[str]:
    """What the Docker engine must offer, beyond what its probes found wrong (facts.errors) and the
    default flavor (the catalog's own check): its API version, the shared folder's mode, enough
    GPUs, user images that match the hub. The hub logs these at its start."""
    have, need = facts.api_version, MIN_DOCKER_API
    if have < need:
        return [f"Docker engine: API {'.'.join(map(str, have))} is older than {'.'.join(map(str, need))} "
                "(Docker Engine 20.10), which LabHub needs; upgrade Docker"]
    problems = []
    shared = facts.folders.get(s.shared_dir)
    if shared and shared.mode & SHARED_DIR_MODE != SHARED_DIR_MODE:
        problems.append(str(fail("SHARED_DIR", f"{s.shared_dir} has mode {shared.mode:o}, not setgid and "
                                               "group-writable, so users could not edit each other's files",
                                 f"run `sudo ./host-setup shared-folder {s.shared_dir} <group>`")))
    if facts.home_quotas and not facts.home_quotas.name:
        problems.append(quota.not_enforced(s, facts.home_quotas))
    devices = facts.gpus
    if devices and s.gpus_per_server.isdigit() and int(s.gpus_per_server) > len(devices):
        problems.append(str(fail("GPUS_PER_SERVER", f"{s.gpus_per_server} GPUs per server, but the engine "
                                                    f"offers {len(devices)}", f"set it to {len(devices)} or less")))
    hub_version = importlib.metadata.version("jupyterhub")
    for ref, version in flavor_versions(engine, stack).items():
        if version != hub_version:
            problems.append(f"image {ref}: has jupyterhub {version}, the hub {hub_version}, so its servers may "
                            "fail to start; rebuild it (see README, User images: the constraint on jupyterhub)")
    return problems


def disk_warnings(facts: EngineFacts, s: Settings) -> list[str]:
    """What puts every user's work at risk on a full disk, not wrong enough to stop anything
    (`labhub check` prints them): homes on the file system of Docker's data root (the images, the
    hub's database), then full_file_systems."""
    warnings = []
    docker_root = facts.folders.get(facts.docker_root)
    if not s.home_root:
        warnings.append(f"{settings.PREFIX}HOME_ROOT: homes are Docker volumes, on Docker's data root with the images and "
                        "the hub's database, so one user's files can fill the disk for everyone; for more than a trial, put "
                        f"homes on a file system of their own and set it ({quota.README})")
    elif docker_root and s.home_root in facts.folders and facts.folders[s.home_root].device == docker_root.device:
        warnings.append(f"{settings.PREFIX}HOME_ROOT: {s.home_root} is on the file system of Docker's data root "
                        f"({facts.docker_root}: the images, the hub's database), so a full home stops the hub too; put "
                        f"homes on a file system of their own ({quota.README})")
    return warnings + full_file_systems(facts)


def full_file_systems(facts: EngineFacts) -> list[str]:
    """A line for each file system LabHub uses that is filled to 90 % (the hub logs these at its start)."""
    warnings, seen = [], set()
    for path, folder in facts.folders.items():
        if folder.used >= quota.WARN_AT and (folder.device or path) not in seen:
            seen.add(folder.device or path)
            what = "Docker's data root (the images, the hub's database)" if path == facts.docker_root else "used by LabHub"
            warnings.append(f"{path}: its file system is {folder.used:.0%} full, {what}; free space there "
                            "before saves and starts fail")
    return warnings


def probed_engine_problems(engine: docker.DockerClient, stack: Stack, s: Settings,
                           facts: EngineFacts | None = None) -> list[str]:
    """`labhub check`'s look at the engine: what its probes find (or found) wrong, then engine_problems."""
    facts = facts or probe.engine_facts(engine, stack, s)
    mem, cpus = resources.site_limits(facts, s)
    # The hub makes the catalog at its start (and refuses without the default flavor); check does here.
    catalog = _collected(images.Catalog, engine, False, mem, cpus)
    problems = [str(error) for error in facts.errors] + catalog + engine_problems(engine, stack, facts, s)
    if s.swarm and not facts.errors:  # every node must have LabHub's images and host folders, and IPsec
        refs = [flavor.ref for flavor in images.built_flavors(engine).values()]
        # The monitoring's image, where it runs: every other node runs node-exporter of it.
        prometheus = [c.attrs["Config"]["Image"] for c in stack.service_containers(engine, "prometheus")]
        problems += swarm.node_problems(engine, s, refs, stack.hub_image_name, next(iter(prometheus), None))
    return problems


def port_problems(engine: docker.DockerClient, stack: Stack, s: Settings) -> list[str]:
    """The host ports Traefik is to publish must be free, or be this LabHub's own."""
    ports = {"HTTP_PORT": s.http_port, "HTTPS_PORT": s.https_port}
    ours = set()
    for container in engine.containers.list(filters={"label": f"com.docker.compose.project={stack.project}"}):
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            ours.update(int(b["HostPort"]) for b in bindings or [])
    # Binding is the only sure test; it has to happen in the host's network namespace.
    script = ("import socket,sys\nfor p in sys.argv[1:]:\n s=socket.socket()\n"
              " s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
              " try: s.bind(('0.0.0.0',int(p)))\n except OSError: print(p)\n s.close()")
    try:
        taken = stack.run_helper(engine, ["python3", "-c", script, *map(str, ports.values())],
                                 network_mode="host").decode().split()
    except APIError as error:
        return [f"Docker engine: cannot test the host's ports ({error.explanation}); check them by hand"]
    return [str(fail(name, f"port {port} is already taken by another program",
                     "stop that program, or set another port"))
            for name, port in ports.items() if str(port) in taken and port not in ours]


def user_host_problems(engine: docker.DockerClient, stack: Stack, s: Settings) -> list[str]:
    """With LABHUB_USER_SUBDOMAINS, users' servers are at <user>.HOSTNAME: a name under it must
    resolve where HOSTNAME does (a wildcard DNS record), as the host's own resolver sees it.
    Browsers resolve every name under .localhost to the machine itself."""
    if not s.user_subdomains or s.hostname.endswith(".localhost"):
        return []
    user_site = f"labhub-check.{s.hostname}"  # a name under HOSTNAME, as a user's site is
    script = ("import socket,sys\nfor n in sys.argv[1:]:\n try: print(' '.join(sorted({a[4][0] for a in "
              "socket.getaddrinfo(n, 443, type=socket.SOCK_STREAM)})))\n except OSError: print()")
    hub, user = stack.run_helper(engine, ["python3", "-c", script, s.hostname, user_site],
                                 network_mode="host").decode().split("\n")[:2]
    if user and user == hub:
        return []
    found = f"resolves to {user}, not where {s.hostname} does ({hub or 'nowhere'})" if user else "does not resolve"
    return [str(fail("USER_SUBDOMAINS", f"users' servers are at <user>.{s.hostname}, but {user_site} {found}",
                     f"add a wildcard DNS record *.{s.hostname} for the address of {s.hostname} "
                     f"(e.g. `*.{s.hostname}. CNAME {s.hostname}.`)"))]


def lego_refusals(log: str, s: Settings) -> list[str]:
    """One line for each thing lego refused in the DNS provider's setup, in a log of Traefik's."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)  # Traefik colours its log
    problems = [str(fail("ACME_DNS_PROVIDER", f"Traefik's ACME client (lego) knows no DNS provider {code!r}",
                         f"set its code from {LEGO_DNS_PROVIDERS}"))
                for code in LEGO_UNKNOWN_PROVIDER.findall(log) if code == s.acme_dns_provider]
    problems += [f"secret/{ACME_DNS_ENV}: lego says of {code}: {missing}; add them as {LEGO_DNS_PROVIDERS}{code}/ "
                 "names them, then `docker compose up -d`"
                 for code, missing in LEGO_MISSING_CREDENTIALS.findall(log) if code == s.acme_dns_provider]
    return list(dict.fromkeys(problems))


def acme_problems(engine: docker.DockerClient, stack: Stack, s: Settings) -> list[str]:
    """With dns-01, what lego refused at Traefik's start: only the Traefik that runs knows which
    providers its lego has and what each needs. Changing either recreates Traefik, so what it said
    since its start is about the present ones."""
    if s.tls != "acme" or s.acme_challenge != "dns-01":
        return []
    log = ""
    for container in stack.service_containers(engine, "proxy"):
        started = int(datetime.datetime.fromisoformat(container.attrs["State"]["StartedAt"][:19] + "+00:00").timestamp())
        log += container.logs(since=started, until=started + ACME_START_SECONDS).decode(errors="replace")
    return lego_refusals(log, s)
