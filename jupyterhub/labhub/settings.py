"""Deployment settings: one table of every LABHUB_* setting, read from the environment.

Compose hands the hub and its setup step the admin's `.env` (absent on a fresh clone, so every
setting has a safe default here and nowhere else). Anything wrong becomes a SettingError whose
message is one line naming the setting and the fix.
"""

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "LABHUB_"

# Paths inside the hub image / containers; compose mounts the repo's folders there.
CONTEXT_DIR = Path("/srv/jupyterhub/context")
SECRET_DIR = Path("/srv/jupyterhub/secret")
DATA_DIR = Path("/srv/jupyterhub/data")
DATABASE = DATA_DIR / "jupyterhub.sqlite"
SITE_DIR = Path("/srv/labhub")  # the whole LabHub folder, for the admin command only

TLS_MODES = ("auto", "provided", "self-signed", "acme")
ACME_CHALLENGES = ("http-01", "tls-alpn-01")
AUTH_METHODS = ("native", "shared-password", "github", "oidc", "ldap")
USER_ID_MODES = ("shared", "per-user")
GPU_MODES = ("auto", "on", "off")
LDAP_TLS_MODES = ("starttls", "ldaps", "none")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def site_or_template(site: Path) -> Path:
    """The admin's copy of a shipped file when there is one, else the shipped *.template."""
    return site if site.exists() else site.with_name(site.name + ".template")


class SettingError(SystemExit):
    """A setting is wrong; str() is the one line shown to the admin.

    A SystemExit, so that wherever it is raised (the labhub command, or the hub's config file,
    whose ordinary exceptions would end up as a traceback) the process stops with just this line.
    """

    def __init__(self, message: str):
        super().__init__(f"labhub: error: {message}")
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Setting:
    default: str
    help: str


# The one table of settings. .env.template documents each with the same default (a unit test
# keeps the two in step); the README explains them by login method.
SETTINGS = {
    "HOSTNAME": Setting("localhost", "host name users type in the browser; the certificate is made for it"),
    "HTTP_PORT": Setting("80", "host port for http://, which only redirects to https://"),
    "HTTPS_PORT": Setting("443", "host port for https://"),
    "TLS": Setting("auto", "certificate: auto (the lab's in secret/tls/ if there, else self-signed), " + ", ".join(TLS_MODES[1:])),
    "ACME_EMAIL": Setting("", "acme: contact e-mail for the certificate authority (expiry notices)"),
    "ACME_SERVER": Setting("https://acme-v02.api.letsencrypt.org/directory", "acme: the certificate authority's directory URL"),
    "ACME_CHALLENGE": Setting("http-01", "acme: how the host proves it is reachable: " + ", ".join(ACME_CHALLENGES)),
    "HUB_SSL": Setting("false", "true: no Traefik, the hub serves TLS itself on HTTPS_PORT (docker-compose.hub-ssl.yml sets it)"),
    "AUTH": Setting("native", "login method: " + ", ".join(AUTH_METHODS)),
    "ADMIN_USERS": Setting("admin", "comma-separated admin user names"),
    "ALLOWED_USERS": Setting("", "comma-separated user names who may log in (github, oidc, ldap)"),
    "NATIVE_TOTP": Setting("false", "true: users may protect their account with a TOTP code (native)"),
    "GITHUB_ORGS": Setting("", "GitHub organizations, or org:team, whose members may log in"),
    "OIDC_ISSUER": Setting("", "issuer URL of the OpenID Connect provider"),
    "OIDC_USERNAME_CLAIM": Setting("preferred_username", "claim that holds the user name"),
    "OIDC_GROUPS_CLAIM": Setting("groups", "claim that holds the user's groups"),
    "OIDC_ALLOWED_GROUPS": Setting("", "comma-separated groups whose members may log in"),
    "OIDC_ADMIN_GROUPS": Setting("", "comma-separated groups whose members are admins"),
    "OIDC_EMAIL_DOMAIN": Setting("", "only e-mail addresses @ this domain may log in; the user name is the part before @"),
    "OIDC_SCOPES": Setting("openid profile email", "scopes to ask for, space-separated"),
    "LDAP_SERVER": Setting("", "LDAP server host name"),
    "LDAP_PORT": Setting("", "LDAP port; default 389, or 636 with LDAP_TLS=ldaps"),
    "LDAP_TLS": Setting("starttls", "TLS to the LDAP server: " + ", ".join(LDAP_TLS_MODES)),
    "LDAP_BIND_DN_TEMPLATE": Setting("", "DN to bind as, with {username}, e.g. uid={username},ou=people,dc=example,dc=edu"),
    "LDAP_SEARCH_BASE": Setting("", "where to search for the user's DN, instead of a template"),
    "LDAP_USER_ATTRIBUTE": Setting("uid", "attribute that holds the user name, when searching"),
    "LDAP_SEARCH_USER": Setting("", "DN to search as (password in secret/ldap-password); empty: anonymous"),
    "LDAP_ALLOWED_GROUPS": Setting("", "group DNs whose members may log in, separated by ;"),
    "LDAP_ADMIN_GROUPS": Setting("", "group DNs whose members are admins, separated by ;"),
    "HOME_ROOT": Setting("", "host folder holding a home folder per user; empty: a Docker volume per user"),
    "DATA_MOUNTS": Setting("", "host folders for every user, host:container[:ro|rw], comma-separated"),
    "SHARED_DIR": Setting("", "host folder every user can write to, at ~/shared; its group is mapped in"),
    "CLUSTER_DIR": Setting("", "host tree mounted read-only, with each user's own subfolder writable"),
    "USER_IDS": Setting("shared", "shared: every user is uid 1000; per-user: each gets its own host uid"),
    "FIRST_UID": Setting("20000", "first host uid given out with USER_IDS=per-user"),
    "MEM_LIMIT": Setting("", "memory per server, e.g. 8G; empty: a quarter of the machine's"),
    "CPU_LIMIT": Setting("", "CPUs per server, e.g. 2; empty: half of the machine's"),
    "PIDS_LIMIT": Setting("4096", "processes and threads one server may run at once"),
    "IDLE_TIMEOUT": Setting("3600", "seconds without activity before a server is stopped; 0: never"),
    "NAMED_SERVERS": Setting("2", "named servers a user may run besides their default one; 0: none"),
    "GPUS": Setting("auto", "GPUs for servers: " + ", ".join(GPU_MODES)),
    "GPUS_PER_SERVER": Setting("all", "all: every server sees all GPUs; N: each GPU-flavor server gets N of its own"),
    "GPU_SHARING": Setting("false", "true: with GPUS_PER_SERVER=N, share GPUs when none is free"),
    "SUDO_USERS": Setting("", "comma-separated user names who may use sudo in their server (needs USER_IDS=shared)"),
    "BLOCK_PRIVATE_NETWORKS": Setting("false", "true: servers cannot reach private address ranges (the LAN, the host, cloud metadata)"),
    "USER_SUBNETS": Setting("10.213.0.0/16", "IPv4 range the servers' own networks are cut from (a /29 each)"),
}


@dataclass(frozen=True)
class DataMount:
    host: str
    container: str
    read_only: bool


@dataclass(frozen=True)
class Settings:
    hostname: str
    https_port: int
    tls: str
    acme_email: str
    acme_server: str
    acme_challenge: str
    hub_ssl: bool
    auth: str
    admin_users: tuple[str, ...]
    allowed_users: tuple[str, ...]
    native_totp: bool
    github_orgs: tuple[str, ...]
    oidc_issuer: str
    oidc_username_claim: str
    oidc_groups_claim: str
    oidc_allowed_groups: tuple[str, ...]
    oidc_admin_groups: tuple[str, ...]
    oidc_email_domain: str
    oidc_scopes: tuple[str, ...]
    ldap_server: str
    ldap_port: int
    ldap_tls: str
    ldap_bind_dn_template: str
    ldap_search_base: str
    ldap_user_attribute: str
    ldap_search_user: str
    ldap_allowed_groups: tuple[str, ...]
    ldap_admin_groups: tuple[str, ...]
    home_root: str
    data_mounts: tuple["DataMount", ...]
    shared_dir: str
    cluster_dir: str
    user_ids: str
    first_uid: int
    mem_limit: str
    cpu_limit: float | None
    idle_timeout: int
    named_servers: int
    gpus: str
    gpus_per_server: str
    gpu_sharing: bool
    pids_limit: int
    sudo_users: tuple[str, ...]
    user_subnets: ipaddress.IPv4Network
    block_private_networks: bool

    @property
    def public_url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.hostname}{port}"


def fail(name: str, problem: str, fix: str) -> SettingError:
    return SettingError(f"{PREFIX}{name}: {problem}; {fix} (in .env, see .env.template)")


class _Reader:
    """Parses raw values, each failure naming its setting."""

    def __init__(self, environ):
        self.raw = {name: environ.get(PREFIX + name, "").strip() or s.default for name, s in SETTINGS.items()}

    def text(self, name: str) -> str:
        return self.raw[name]

    def choice(self, name: str, choices, what: str) -> str:
        value = self.raw[name].lower()
        if value not in choices:
            raise fail(name, f"unknown {what} {self.raw[name]!r}", f"set it to one of {', '.join(choices)}")
        return value

    def flag(self, name: str) -> bool:
        return self.choice(name, ("true", "false"), "value") == "true"

    def items(self, name: str, sep: str = ",") -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.strip() for item in self.raw[name].split(sep) if item.strip()))

    def users(self, name: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(u.lower() for u in self.items(name)))
        bad = [u for u in names if not _USERNAME.match(u)]
        if bad:
            raise fail(name, f"{bad[0]!r} is not a user name",
                       "use lower-case names (letters, digits, . _ -) separated by commas")
        return names

    def url(self, name: str) -> str:
        value = self.raw[name].rstrip("/")
        parts = urlsplit(value)
        if value and (parts.scheme not in ("https", "http") or not parts.hostname):
            raise fail(name, f"{value!r} is not an http(s) URL", "set it to e.g. https://login.example.edu")
        return value

    def host_path(self, name: str) -> str:
        value = self.raw[name].rstrip("/")
        if value and (not value.startswith("/") or "{" in value or "," in value or ":" in value):
            raise fail(name, f"{self.raw[name]!r} is not an absolute host path", "write it like /srv/data")
        return value

    def data_mounts(self, name: str) -> tuple[DataMount, ...]:
        mounts = []
        for item in self.items(name):
            host, _, rest = item.partition(":")
            container, _, mode = rest.partition(":")
            mode = mode or "ro"
            if not (host.startswith("/") and container.startswith("/") and mode in ("ro", "rw")):
                raise fail(name, f"{item!r} is not host:container[:ro|rw]", "write e.g. /data:/home/jovyan/data:ro")
            mounts.append(DataMount(host.rstrip("/") or "/", container.rstrip("/"), mode == "ro"))
        return tuple(mounts)

    def number(self, name: str, low: int, high: int) -> int:
        value = self.raw[name]
        if not value.isdigit() or not low <= int(value) <= high:
            raise fail(name, f"{value!r} is not a number from {low} to {high}", "set a number in that range")
        return int(value)

    def size(self, name: str) -> str:
        value = self.raw[name].upper().removesuffix("B")
        if value and not re.fullmatch(r"[0-9]+[KMGT]?", value):
            raise fail(name, f"{self.raw[name]!r} is not a size", "write e.g. 8G or 512M, or leave it empty")
        return value

    def cpus(self, name: str) -> float | None:
        value = self.raw[name]
        if not value:
            return None
        try:
            cpus = float(value)
        except ValueError:
            cpus = 0
        if cpus <= 0:
            raise fail(name, f"{value!r} is not a number of CPUs", "write e.g. 2 or 0.5, or leave it empty")
        return cpus

    def subnet(self, name: str, max_prefix: int) -> ipaddress.IPv4Network:
        try:
            net = ipaddress.IPv4Network(self.raw[name], strict=False)
        except ValueError:
            net = None
        if net is None or net.prefixlen > max_prefix:
            raise fail(name, f"{self.raw[name]!r} is not an IPv4 range of /{max_prefix} or larger",
                       "write e.g. 10.213.0.0/16, a range your lab's network does not use")
        return net

    def port(self, name: str, default: int) -> int:
        value = self.raw[name]
        if not value:
            return default
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise fail(name, f"{value!r} is not a port number", "set a number from 1 to 65535, or leave it empty")
        return int(value)


def unknown(environ) -> list[str]:
    """One line for each LABHUB_* variable that is no setting (a typo, or one from elsewhere)."""
    return [f"{key}: unknown setting; use one of {', '.join(PREFIX + n for n in SETTINGS)} "
            "or remove it (in .env, see .env.template)"
            for key in sorted(environ) if key.startswith(PREFIX) and key[len(PREFIX):] not in SETTINGS]


def load(environ: dict[str, str] | None = None) -> Settings:
    """Reads and validates every LABHUB_* setting; raises SettingError on the first problem.

    This checks each value's form; whether the chosen login method has what it needs is
    labhub.auth.check's job."""
    environ = os.environ if environ is None else environ
    for problem in unknown(environ):
        raise SettingError(problem)
    r = _Reader(environ)

    hostname = r.text("HOSTNAME").lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", hostname):
        raise fail("HOSTNAME", f"{hostname!r} is not a host name", "set it to e.g. labhub.example.edu")
    tls, hub_ssl = r.choice("TLS", TLS_MODES, "certificate mode"), r.flag("HUB_SSL")
    acme_email = r.text("ACME_EMAIL")
    if tls == "acme":
        if hub_ssl:
            raise fail("TLS", "acme needs Traefik, which the hub-direct mode leaves out",
                       "set provided or self-signed, or start with docker-compose.yml alone")
        if hostname == "localhost" or re.fullmatch(r"[0-9.]+", hostname):
            raise fail("HOSTNAME", f"acme cannot certify {hostname!r}", "set the host's public DNS name")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", acme_email):
            raise fail("ACME_EMAIL", f"{acme_email!r} is not an e-mail address", "set the admin's, e.g. it-lab@example.edu")
    admins = r.users("ADMIN_USERS")
    if not admins:
        raise fail("ADMIN_USERS", "no admin", "name at least one admin, e.g. admin")
    domain = r.text("OIDC_EMAIL_DOMAIN").lower().lstrip("@")
    ldap_tls = r.choice("LDAP_TLS", LDAP_TLS_MODES, "TLS mode")
    r.port("HTTP_PORT", 80)  # only compose uses it; checked here so a typo gets one line
    gpus_per_server = r.text("GPUS_PER_SERVER").lower()
    if gpus_per_server != "all" and not (gpus_per_server.isdigit() and int(gpus_per_server) > 0):
        raise fail("GPUS_PER_SERVER", f"{gpus_per_server!r} is neither all nor a number of GPUs", "set all, or e.g. 1")
    home_root = r.host_path("HOME_ROOT")
    user_ids = r.choice("USER_IDS", USER_ID_MODES, "mode")
    if user_ids == "per-user" and not home_root:
        raise fail("USER_IDS", "per-user ids need home folders on the host",
                   "set LABHUB_HOME_ROOT too (Docker volumes cannot be owned per user)")
    sudo_users = r.users("SUDO_USERS")
    if sudo_users and user_ids == "per-user":
        raise fail("SUDO_USERS", "sudo needs the image's own user (per-user ids have no account in the image)",
                   "leave it empty, or set LABHUB_USER_IDS=shared")

    return Settings(
        hostname=hostname,
        https_port=r.port("HTTPS_PORT", 443),
        tls=tls,
        acme_email=acme_email,
        acme_server=r.url("ACME_SERVER"),
        acme_challenge=r.choice("ACME_CHALLENGE", ACME_CHALLENGES, "challenge"),
        hub_ssl=hub_ssl,
        auth=r.choice("AUTH", AUTH_METHODS, "login method"),
        admin_users=admins,
        allowed_users=r.users("ALLOWED_USERS"),
        native_totp=r.flag("NATIVE_TOTP"),
        github_orgs=r.items("GITHUB_ORGS"),
        oidc_issuer=r.url("OIDC_ISSUER"),
        oidc_username_claim=r.text("OIDC_USERNAME_CLAIM"),
        oidc_groups_claim=r.text("OIDC_GROUPS_CLAIM"),
        oidc_allowed_groups=r.items("OIDC_ALLOWED_GROUPS"),
        oidc_admin_groups=r.items("OIDC_ADMIN_GROUPS"),
        oidc_email_domain=domain,
        oidc_scopes=tuple(r.text("OIDC_SCOPES").split()),
        ldap_server=r.text("LDAP_SERVER"),
        ldap_port=r.port("LDAP_PORT", 636 if ldap_tls == "ldaps" else 389),
        ldap_tls=ldap_tls,
        ldap_bind_dn_template=r.text("LDAP_BIND_DN_TEMPLATE"),
        ldap_search_base=r.text("LDAP_SEARCH_BASE"),
        ldap_user_attribute=r.text("LDAP_USER_ATTRIBUTE"),
        ldap_search_user=r.text("LDAP_SEARCH_USER"),
        ldap_allowed_groups=r.items("LDAP_ALLOWED_GROUPS", sep=";"),
        ldap_admin_groups=r.items("LDAP_ADMIN_GROUPS", sep=";"),
        home_root=home_root,
        data_mounts=r.data_mounts("DATA_MOUNTS"),
        shared_dir=r.host_path("SHARED_DIR"),
        cluster_dir=r.host_path("CLUSTER_DIR"),
        user_ids=user_ids,
        first_uid=r.number("FIRST_UID", 1001, 2**31 - 2),
        mem_limit=r.size("MEM_LIMIT"),
        cpu_limit=r.cpus("CPU_LIMIT"),
        idle_timeout=r.number("IDLE_TIMEOUT", 0, 10**7),
        named_servers=r.number("NAMED_SERVERS", 0, 100),
        gpus=r.choice("GPUS", GPU_MODES, "GPU mode"),
        gpus_per_server=gpus_per_server,
        gpu_sharing=r.flag("GPU_SHARING"),
        pids_limit=r.number("PIDS_LIMIT", 64, 10**6),
        sudo_users=sudo_users,
        user_subnets=r.subnet("USER_SUBNETS", 28),
        block_private_networks=r.flag("BLOCK_PRIVATE_NETWORKS"),
    )
