"""What Traefik runs with, published by the long-lived `proxy-config` service into the folder
Traefik reads (a volume): its static configuration (the admin's traefik.toml, else the template,
plus the TLS part from .env), the routes to LabHub (from .env), the middlewares, TLS options and
the admin's own routes (reverse-proxy/dynamic/) and the certificate from secret/tls/, checked first.

Traefik reloads a dynamic file when it changes, but never notices a certificate file replaced
under it; publishing the certificate inside a dynamic file makes a replaced (or renewed)
certificate served within seconds, with no restart and no dropped connection. A certificate that
fails the checks is not published: the previous one stays served and the log says why.
"""

import json
import time
from pathlib import Path

from . import certs, settings
from .files import write_atomic
from .settings import Settings, SettingError

REVERSE_PROXY_DIR = Path("/srv/jupyterhub/reverse-proxy")
PUBLISHED_DIR = Path("/srv/jupyterhub/proxy-config")
STATIC_FILE = "traefik.toml"
DYNAMIC_DIR = "dynamic"
TLS_FILE = "labhub-tls.toml"
ROUTES_FILE = "labhub-routes.toml"
# Written after this container's first publish, naming the settings its static configuration was
# made with: Traefik (docker-compose.yml) starts once it names Traefik's own, so it never starts on
# a previous one's, and needs no depends_on (which would restart it with every hub upgrade).
READY_FILE = "ready"
POLL_SECONDS = 1.0
RECHECK_SECONDS = 3600.0  # renews a self-made certificate / repeats expiry warnings while running


def _acme_challenge(s: Settings) -> str:
    """Traefik's table for LABHUB_ACME_CHALLENGE; dns-01's provider reads its credentials from
    Traefik's environment (secret/acme-dns.env)."""
    table = "  [certificatesResolvers.acme.acme.{}]\n"
    if s.acme_challenge == "http-01":
        return table.format("httpChallenge") + '    entryPoint = "web"\n'
    if s.acme_challenge == "tls-alpn-01":
        return table.format("tlsChallenge")
    return table.format("dnsChallenge") + f"    provider = {json.dumps(s.acme_dns_provider)}\n"


def static_config(reverse_proxy_dir: Path, s: Settings) -> str:
    text = settings.site_or_template(reverse_proxy_dir / STATIC_FILE).read_text()
    tls = "\n# From .env (LABHUB_TLS): every router on websecure serves TLS.\n[entryPoints.websecure.http.tls]\n"
    if s.tls == "acme":
        # One certificate for every name served (with LABHUB_USER_SUBDOMAINS, *.HOSTNAME too).
        main, *sans = certs.served_names(s)
        tls += f'  certResolver = "acme"\n  [[entryPoints.websecure.http.tls.domains]]\n    main = {json.dumps(main)}\n'
        tls += f"    sans = {json.dumps(sans)}\n" if sans else ""
        tls += (f"[certificatesResolvers.acme.acme]\n  email = {json.dumps(s.acme_email)}\n"
                f"  caServer = {json.dumps(s.acme_server)}\n  storage = \"/etc/labhub-acme/acme.json\"\n")
        tls += _acme_challenge(s)
    return text + tls


def static_fingerprint(s: Settings) -> str:
    """The settings Traefik's static configuration is made from, as Traefik's start compares them
    (in lower case: the settings are read so, and compose hands Traefik the values as written)."""
    return (f"tls={s.tls} hostname={s.hostname} subdomains={s.user_subdomains} "
            f"acme={s.acme_server} {s.acme_challenge} {s.acme_dns_provider}").lower()


def tls_config(secret_dir: Path, s: Settings) -> str:
    if certs.mode(secret_dir, s) == "acme":
        return "# LABHUB_TLS=acme: Traefik's certificate resolver gets and renews the certificate.\n"
    chain, key = certs.served_pem(secret_dir, s)
    return ("# Published by labhub from secret/tls/: replace the files there, never edit this.\n"
            f"[[tls.certificates]]\n  certFile = '''\n{chain}'''\n  keyFile = '''\n{key}'''\n")


# Files a user's server serves from the user's own folders as they are, besides /files/ and
# /nbconvert/ (which the server itself sandboxes): a kernel's resources (logos, but any file in
# ~/.local/share/jupyter/kernels/<kernel>/), of the default or a named server.
USER_RESOURCES = r"/user/[^/]+/(?:[^/]+/)?kernelspecs/"


def _router(name: str, rule: str, middlewares: list[str]) -> str:
    return (f"[http.routers.{name}]\n  entryPoints = [\"websecure\"]\n  rule = {json.dumps(rule)}\n"
            f"  service = \"chp\"\n  middlewares = {json.dumps(middlewares)}\n")


def routes_config(s: Settings) -> str:
    """Traefik's routes to chp, which sends each request on to a user's server or the hub. The hub's
    own pages get the restart page while it is down; users' files get a sandboxing CSP. With
    LABHUB_USER_SUBDOMAINS, the hub is served on LABHUB_HOSTNAME alone and users' servers on
    <user>.LABHUB_HOSTNAME alone: a user's host serves no hub page (a login there would put the
    hub's cookie in that user's reach), the hub's host no user's page (it redirects to theirs)."""
    if s.user_subdomains:
        host = f"Host(`{s.hostname}`)"
        user_host = "HostRegexp(`^[^.]+\\." + s.hostname.replace(".", "\\.") + "$`)"
        routes = [("hub", host, ["hub-restarting"]),  # chp sends all of it to the hub
                  ("servers", f"{user_host} && PathPrefix(`/user/`)", []),
                  ("user-resources", f"{user_host} && PathRegexp(`^{USER_RESOURCES}`)", ["user-content-sandbox"])]
    else:
        routes = [("hub", "Path(`/`) || Path(`/hub`) || PathPrefix(`/hub/`)", ["hub-restarting"]),
                  ("servers", "PathPrefix(`/`)", []),
                  ("user-resources", f"PathRegexp(`^{USER_RESOURCES}`)", ["user-content-sandbox"])]
    return "# Published by labhub from .env (LABHUB_HOSTNAME, LABHUB_USER_SUBDOMAINS): never edit this.\n" + \
        "\n".join(_router(name, rule, ["security-headers", *extra]) for name, rule, extra in routes)


def _write(path: Path, text: str) -> None:
    """Atomically, and only when it changed: every write makes Traefik reload."""
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, 0o600 if path.name == TLS_FILE else 0o644)


def publish(secret_dir: Path, reverse_proxy_dir: Path, out: Path, s: Settings) -> list[str]:
    """Checks (and makes or renews) the certificate, then publishes everything Traefik reads.
    Returns the certificate's log lines; a SettingError publishes nothing."""
    lines = certs.ensure_certificate(secret_dir, s)
    dynamic = {p.name: p.read_text() for p in sorted((reverse_proxy_dir / DYNAMIC_DIR).glob("*"))
               if p.suffix in (".toml", ".yml", ".yaml") and p.name not in (TLS_FILE, ROUTES_FILE)}
    dynamic[TLS_FILE] = tls_config(secret_dir, s)
    dynamic[ROUTES_FILE] = routes_config(s)
    for name, text in dynamic.items():
        _write(out / DYNAMIC_DIR / name, text)
    for stale in (out / DYNAMIC_DIR).iterdir():
        if stale.name not in dynamic:
            stale.unlink()  # a route the admin removed
    _write(out / STATIC_FILE, static_config(reverse_proxy_dir, s))
    _write(out / certs.CA_BUNDLE, certs.ca_bundle())  # what Traefik's ACME client trusts
    return lines


def _snapshot(*folders: Path) -> tuple:
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size)
                 for folder in folders if folder.is_dir() for p in sorted(folder.rglob("*")) if p.is_file())


def watch(secret_dir: Path, reverse_proxy_dir: Path, out: Path, s: Settings) -> None:
    """Publishes at start, then again whenever the sources have changed and stayed still for a
    poll (an admin copying a certificate and then its key is one change, not two)."""
    sources = (secret_dir / "tls", reverse_proxy_dir, certs.EXTRA_CA_DIR)
    ready = out / READY_FILE
    ready.unlink(missing_ok=True)  # a previous container's: Traefik must wait for this one's publish
    published, seen, checked = None, None, float("-inf")
    while True:
        now = _snapshot(*sources)
        if (now == seen and now != published) or time.monotonic() - checked > RECHECK_SECONDS:
            try:
                for line in publish(secret_dir, reverse_proxy_dir, out, s):
                    print(f"labhub proxy-config: {line}", flush=True)
                ready.write_text(static_fingerprint(s))
            except SettingError as error:
                print(f"labhub proxy-config: error: {error} (still serving the previous certificate)", flush=True)
            published, checked = _snapshot(*sources), time.monotonic()  # a renewal changed them itself
        seen = now
        time.sleep(POLL_SECONDS)
