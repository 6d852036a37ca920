"""Deployment settings: one table of every LABHUB_* setting, read from the environment.

Compose hands the hub and its setup step the admin's `.env` (absent on a fresh clone, so every
setting has a safe default here; the compose files repeat the few they need, checked equal by a
unit test). Anything wrong becomes a SettingError whose message is one line naming the setting and
the fix.
"""

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREFIX = "LABHUB_"

# Paths inside the hub image / containers; compose mounts the repo's folders there.
CONTEXT_DIR = Path("/srv/jupyterhub/context")
SECRET_DIR = Path("/srv/jupyterhub/secret")
DATA_DIR = Path("/srv/jupyterhub/data")
DATABASE = DATA_DIR / "jupyterhub.sqlite"
SITE_DIR = Path("/srv/labhub")  # the whole LabHub folder, for the admin command only

TLS_MODES = ("auto", "provided", "self-signed", "acme")
ACME_CHALLENGES = ("http-01", "tls-alpn-01", "dns-01")
# dns-01: lego (Traefik's ACME client) lists the DNS providers' codes and the credentials each needs,
# which the admin puts in secret/acme-dns.env, given to Traefik alone (docker-compose.yml).
LEGO_DNS_PROVIDERS = "https://go-acme.github.io/lego/dns/"
ACME_DNS_ENV = "acme-dns.env"
# Monitoring: Prometheus keeps metrics for MONITORING_RETENTION but never more than this.
MONITORING_MAX_SIZE = "2GB"
SMTP_PASSWORD = "smtp-password"
AUTH_METHODS = ("native", "shared-password", "github", "oidc", "ldap")
USER_ID_MODES = ("shared", "per-user")
GPU_MODES = ("auto", "on", "off")
LDAP_TLS_MODES = ("starttls", "ldaps", "none")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def site_or_template(site: Path) -> Path:
    """The admin's copy of a shipped file when there is one, else the shipped *.template."""
    return site if site.exists() else site.with_name(site.name + ".template")


class SettingError(SystemExit):
    """A setting is wrong; str() is the one line shown to the admin (a line per problem, where a
    command finds several at once, e.g. restore in an archive).

    A SystemExit, so that wherever it is raised (the labhub command, or the hub's config file,
    whose ordinary exceptions would end up as a traceback) the process stops with just this line.
    """

    def __init__(self, message: str):
        super().__init__("\n".join(f"labhub: error: {line}" for line in message.splitlines()))
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class DataMount:
    host: str
    container: str
    read_only: bool


def fail(name: str, problem: str, fix: str) -> SettingError:
    return SettingError(f"{PREFIX}{name}: {problem}; {fix} (in .env, see .env.template)")


class _Reader:
    """Parses raw values, each failure naming its setting."""

    def __init__(self, environ):
        self.raw = {name: environ.get(PREFIX + name, "").strip() or s.default for name, s in SETTINGS.items()}

    def text(self, name: str) -> str:
        return self.raw[name]

    def hostname(self, name: str) -> str:
        value = self.raw[name].lower()
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", value):
            raise fail(name, f"{value!r} is not a host name", "set it to e.g. labhub.example.edu")
        return value

    def domain(self, name: str) -> str:
        return self.raw[name].lower().lstrip("@")

    def code(self, name: str) -> str:
        """A code as lego names its DNS providers (lower case); which codes exist is Traefik's to say."""
        value = self.raw[name].lower()
        if value and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
            raise fail(name, f"{self.raw[name]!r} is not a DNS provider's code", f"write it as {LEGO_DNS_PROVIDERS} does, e.g. cloudflare")
        return value

    def choice(self, name: str, choices, what: str) -> str:
        value = self.raw[name].lower()
        if value not in choices:
            raise fail(name, f"unknown {what} {self.raw[name]!r}", f"set it to one of {', '.join(choices)}")
        return value

    def flag(self, name: str) -> bool:
        return self.choice(name, ("true", "false"), "value") == "true"

    def flag_or_auto(self, name: str) -> bool | None:
        """None for auto: load() decides from the other settings."""
        return {"auto": None, "true": True, "false": False}[self.choice(name, ("auto", "true", "false"), "value")]

    def items(self, name: str, sep: str | None = ",") -> tuple[str, ...]:
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

    def sharing(self, name: str) -> str | tuple[str, ...]:
        """on, off, or the groups whose members may share (JupyterHub's group names)."""
        value = self.raw[name]
        if value.lower() in ("on", "off"):
            return value.lower()
        groups = self.items(name)
        bad = [g for g in groups if not _GROUP_NAME.match(g)]
        if bad:
            raise fail(name, f"{bad[0]!r} is neither on, off nor a group name",
                       "set on, off, or group names (letters, digits, . _ -) separated by commas")
        return groups

    def gpu_count(self, name: str) -> str:
        value = self.raw[name].lower()
        if value != "all" and not (value.isdigit() and int(value) > 0):
            raise fail(name, f"{value!r} is neither all nor a number of GPUs", "set all, or e.g. 1")
        return value

    def size(self, name: str) -> str:
        value = self.raw[name].upper().removesuffix("B")
        if value and not re.fullmatch(r"[0-9]+[KMGT]?", value):
            raise fail(name, f"{self.raw[name]!r} is not a size", "write e.g. 8G or 512M, or leave it empty")
        return value

    def quota(self, name: str) -> str:
        """A size, or none: quotas on, but only those set per user or group."""
        return "none" if self.raw[name].lower() == "none" else self.size(name)

    def duration(self, name: str) -> str:
        """A span as Prometheus writes it: a number and one of h, d, w, y."""
        value = self.raw[name].lower()
        if not re.fullmatch(r"[1-9][0-9]*[hdwy]", value):
            raise fail(name, f"{self.raw[name]!r} is not a duration", "write e.g. 30d, 12w or 1y")
        return value

    def email(self, name: str) -> str:
        value = self.raw[name]
        if value and not _EMAIL.fullmatch(value):
            raise fail(name, f"{value!r} is not an e-mail address", "write e.g. lab-admin@example.edu")
        return value

    def emails(self, name: str) -> tuple[str, ...]:
        bad = [a for a in self.items(name) if not _EMAIL.fullmatch(a)]
        if bad:
            raise fail(name, f"{bad[0]!r} is not an e-mail address", "write addresses separated by commas")
        return self.items(name)

    def host_port(self, name: str) -> str:
        value = self.raw[name].lower()
        if value and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?:[1-9][0-9]{0,4}", value):
            raise fail(name, f"{self.raw[name]!r} is not host:port", "write e.g. smtp.example.edu:587")
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

    def port(self, name: str) -> int | None:
        """None when empty (only a setting whose default is empty can be): load() fills it in."""
        value = self.raw[name]
        if not value:
            return None
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise fail(name, f"{value!r} is not a port number", "set a number from 1 to 65535, or leave it empty")
        return int(value)


@dataclass(frozen=True)
class Setting:
    """One row of the table: the raw default (as .env.template shows it), the help text, and how
    the raw value becomes the Settings field: parse(reader, name)."""
    default: str
    help: str
    parse: Callable[[_Reader, str], Any]


def _row(default: str, help: str, parse, *args) -> Any:
    """A Settings field that is a row of the table; parse is a _Reader method, given *args."""
    return field(metadata={"setting": Setting(default, help, lambda r, name: parse(r, name, *args))})


@dataclass(frozen=True)
class Settings:
    """The one table of settings: each field is LABHUB_<FIELD NAME>, with its default, help and
    parser. .env.template documents each with the same default, and the compose files' ${...}
    defaults agree with it (unit tests keep them in step); the README explains them by login
    method. load() fills the fields."""
    hostname: str = _row("localhost", "host name users type in the browser; the certificate is made for it",
                         _Reader.hostname)
    http_port: int = _row("80", "host port for http://, which only redirects to https://", _Reader.port)
    https_port: int = _row("443", "host port for https://", _Reader.port)
    user_subdomains: bool = _row("false", "true: each user's servers on a host of their own, <user>.HOSTNAME, so no "
                                          "user's page runs on the hub's site (needs DNS for *.HOSTNAME)", _Reader.flag)
    tls: str = _row("auto", "certificate: auto (the lab's in secret/tls/ if there, else self-signed), " + ", ".join(TLS_MODES[1:]),
                    _Reader.choice, TLS_MODES, "certificate mode")
    acme_email: str = _row("", "acme: contact e-mail for the certificate authority (expiry notices)", _Reader.text)
    acme_server: str = _row("https://acme-v02.api.letsencrypt.org/directory", "acme: the certificate authority's directory URL",
                            _Reader.url)
    acme_challenge: str = _row("http-01", "acme: how the authority checks the name is the lab's: " + ", ".join(ACME_CHALLENGES) +
                               " (port 80, port 443, a DNS record; USER_SUBDOMAINS needs dns-01)",
                               _Reader.choice, ACME_CHALLENGES, "challenge")
    acme_dns_provider: str = _row("", "acme with dns-01: code of the DNS provider that holds HOSTNAME's records, as lego "
                                      f"names it (e.g. cloudflare); its credentials go in secret/{ACME_DNS_ENV}", _Reader.code)
    hub_ssl: bool = _row("false", "true: no Traefik, the hub serves TLS itself on HTTPS_PORT (docker-compose.hub-ssl.yml sets it)",
                         _Reader.flag)
    auth: str = _row("native", "login method: " + ", ".join(AUTH_METHODS), _Reader.choice, AUTH_METHODS, "login method")
    admin_users: tuple[str, ...] = _row("admin", "comma-separated admin user names", _Reader.users)
    allowed_users: tuple[str, ...] = _row("", "comma-separated user names who may log in (github, oidc, ldap)",
                                          _Reader.users)
    native_totp: bool = _row("false", "true: users may protect their account with a TOTP code (native)", _Reader.flag)
    github_orgs: tuple[str, ...] = _row("", "GitHub organizations, or org:team, whose members may log in",
                                        _Reader.items)
    oidc_issuer: str = _row("", "issuer URL of the OpenID Connect provider", _Reader.url)
    oidc_username_claim: str = _row("preferred_username", "claim that holds the user name", _Reader.text)
    oidc_groups_claim: str = _row("groups", "claim that holds the user's groups", _Reader.text)
    oidc_allowed_groups: tuple[str, ...] = _row("", "comma-separated groups whose members may log in", _Reader.items)
    oidc_admin_groups: tuple[str, ...] = _row("", "comma-separated groups whose members are admins", _Reader.items)
    oidc_email_domain: str = _row("", "only e-mail addresses @ this domain may log in; the user name is the part before @",
                                  _Reader.domain)
    oidc_scopes: tuple[str, ...] = _row("openid profile email", "scopes to ask for, space-separated",
                                        _Reader.items, None)
    ldap_server: str = _row("", "LDAP server host name", _Reader.text)
    ldap_port: int = _row("", "LDAP port; default 389, or 636 with LDAP_TLS=ldaps", _Reader.port)
    ldap_tls: str = _row("starttls", "TLS to the LDAP server: " + ", ".join(LDAP_TLS_MODES),
                         _Reader.choice, LDAP_TLS_MODES, "TLS mode")
    ldap_bind_dn_template: str = _row("", "DN to bind as, with {username}, e.g. uid={username},ou=people,dc=example,dc=edu",
                                      _Reader.text)
    ldap_search_base: str = _row("", "where to search for the user's DN, instead of a template", _Reader.text)
    ldap_user_attribute: str = _row("uid", "attribute that holds the user name, when searching", _Reader.text)
    ldap_search_user: str = _row("", "DN to search as (password in secret/ldap-password); empty: anonymous",
                                 _Reader.text)
    ldap_allowed_groups: tuple[str, ...] = _row("", "group DNs whose members may log in, separated by ;",
                                                _Reader.items, ";")
    ldap_admin_groups: tuple[str, ...] = _row("", "group DNs whose members are admins, separated by ;",
                                              _Reader.items, ";")
    home_root: str = _row("", "host folder holding a home folder per user; empty: a Docker volume per user",
                          _Reader.host_path)
    home_quota: str = _row("", "disk each user's home may take, e.g. 20G; none: only the quotas set per user (./labhub "
                            "quota) or group (its home_quota property); empty: no quotas (needs HOME_ROOT on XFS, "
                            "btrfs or ZFS, README: Disk and quotas)", _Reader.quota)
    data_mounts: tuple[DataMount, ...] = _row("", "host folders for every user, host:container[:ro|rw], comma-separated",
                                              _Reader.data_mounts)
    shared_dir: str = _row("", "host folder every user can write to, at ~/shared; its group is mapped in",
                           _Reader.host_path)
    cluster_dir: str = _row("", "host tree mounted read-only, with each user's own subfolder writable (theirs alone)",
                            _Reader.host_path)
    user_ids: str = _row("shared", "shared: every user is uid 1000; per-user: each gets its own host uid",
                         _Reader.choice, USER_ID_MODES, "mode")
    first_uid: int = _row("20000", "first host id given out to users: the group of their cluster area, and with "
                          "USER_IDS=per-user their uid", _Reader.number, 1001, 2**31 - 2)
    mem_limit: str = _row("", "memory per server, e.g. 8G; empty: a quarter of the machine's", _Reader.size)
    cpu_limit: float | None = _row("", "CPUs per server, e.g. 2; empty: half of the machine's", _Reader.cpus)
    pids_limit: int = _row("4096", "processes and threads one server may run at once", _Reader.number, 64, 10**6)
    idle_timeout: int = _row("3600", "seconds without activity before a server is stopped; 0: never",
                             _Reader.number, 0, 10**7)
    named_servers: int = _row("2", "named servers a user may run besides their default one; 0: none",
                              _Reader.number, 0, 100)
    sharing: str | tuple[str, ...] = _row("on", "who may share their servers with named users and groups: on (every user), off, "
                                                 "or comma-separated groups whose members may (README, Working together)",
                                          _Reader.sharing)
    share_link_seconds: int = _row("86400", "seconds an invitation link to a shared server lasts at most",
                                   _Reader.number, 60, 365 * 86400)
    collaboration: bool = _row("false", "true: JupyterLab's real-time collaboration, everyone in a server editing the same "
                               "documents at once (README, Working together)", _Reader.flag)
    gpus: str = _row("auto", "GPUs for servers: " + ", ".join(GPU_MODES), _Reader.choice, GPU_MODES, "GPU mode")
    gpus_per_server: str = _row("all", "all: every server sees all GPUs; N: each GPU-flavor server gets N of its own",
                                _Reader.gpu_count)
    gpu_sharing: bool = _row("false", "true: with GPUS_PER_SERVER=N, share GPUs when none is free", _Reader.flag)
    sudo_users: tuple[str, ...] = _row("", "comma-separated user names who may use sudo in their server (needs USER_IDS=shared)",
                                       _Reader.users)
    block_private_networks: bool = _row("auto", "true: servers reach no private address range (the LAN, the host, cloud metadata) "
                                        "and no swarm node; auto: true with SWARM, else false", _Reader.flag_or_auto)
    user_subnets: ipaddress.IPv4Network = _row("10.213.0.0/16", "IPv4 range the servers' own networks are cut from (a /29 each, a /28 with SWARM)",
                                               _Reader.subnet, 28)
    monitoring_retention: str = _row("30d", "monitoring (COMPOSE_PROFILES=monitoring, README: Monitoring): how long "
                                             f"Prometheus keeps metrics, e.g. 15d or 12w; at most {MONITORING_MAX_SIZE} "
                                             "of disk whatever this says", _Reader.duration)
    alert_webhook: str = _row("", "monitoring: a URL that receives each alert as JSON (Alertmanager's webhook; chat "
                                  "tools take those)", _Reader.url)
    alert_email: tuple[str, ...] = _row("", "monitoring: comma-separated e-mail addresses that receive alerts (needs "
                                            "SMTP_SERVER and SMTP_FROM)", _Reader.emails)
    smtp_server: str = _row("", "mail server for alert e-mails, host:port, e.g. smtp.example.edu:587", _Reader.host_port)
    smtp_from: str = _row("", "sender address of alert e-mails", _Reader.email)
    smtp_user: str = _row("", f"login at the mail server, its password in secret/{SMTP_PASSWORD}; empty: none",
                          _Reader.text)
    smtp_starttls: bool = _row("true", "false: send alert e-mails unencrypted (only to a mail server on the lab's "
                                       "own network)", _Reader.flag)
    swarm: bool = _row("false", "true: servers run as Docker Swarm services on the swarm's nodes; the hub's engine must be a manager (README, More than one machine)",
                       _Reader.flag)

    @property
    def public_url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.hostname}{port}"


# The table by setting name (LABHUB_ left off), in the order of the fields.
SETTINGS: dict[str, Setting] = {f.name.upper(): f.metadata["setting"] for f in fields(Settings)}


def unknown(environ) -> list[str]:
    """One line for each LABHUB_* variable that is no setting (a typo, or one from elsewhere)."""
    return [f"{key}: unknown setting; use one of {', '.join(PREFIX + n for n in SETTINGS)} "
            "or remove it (in .env, see .env.template)"
            for key in sorted(environ) if key.startswith(PREFIX) and key[len(PREFIX):] not in SETTINGS]


def _check_swarm(s: Settings) -> None:
    """What swarm mode cannot do: homes that only one node has, and hub-direct mode."""
    if not s.home_root:
        raise fail("SWARM", "swarm mode needs homes that every node reaches, but homes are Docker volumes, "
                            "which stay on one node", "set LABHUB_HOME_ROOT to a folder shared at the same path "
                                                     "on every node, e.g. over NFS (README, More than one machine)")
    if s.hub_ssl:
        raise fail("SWARM", "hub-direct mode (docker-compose.hub-ssl.yml) is not supported in swarm mode",
                   "start with docker-compose.yml alone, or set it to false")


def _check_subdomains(s: Settings) -> None:
    """Servers at <user>.HOSTNAME need a name with a domain under it, a wildcard certificate, and
    Traefik's routes (hub-direct mode has none of its own)."""
    if re.fullmatch(r"[0-9.]+", s.hostname) or "." not in s.hostname:
        raise fail("USER_SUBDOMAINS", f"user servers need names under LABHUB_HOSTNAME, but {s.hostname!r} has none a "
                   "certificate can cover (browsers refuse *.localhost)",
                   "set LABHUB_HOSTNAME to the lab's DNS name, or lab.localhost on this machine alone")
    if s.hub_ssl:
        raise fail("USER_SUBDOMAINS", "not available in hub-direct mode (docker-compose.hub-ssl.yml)",
                   "start with docker-compose.yml alone, or set it to false")
    if s.tls == "acme" and s.acme_challenge != "dns-01":
        raise fail("USER_SUBDOMAINS", f"acme's {s.acme_challenge} cannot certify *.HOSTNAME (only dns-01 can)",
                   "set LABHUB_ACME_CHALLENGE=dns-01 and LABHUB_ACME_DNS_PROVIDER (README: HTTPS), use the lab's own "
                   "wildcard certificate (LABHUB_TLS=provided) or LabHub's (self-signed), or set it to false")


def load(environ: dict[str, str] | None = None) -> Settings:
    """Reads and validates every LABHUB_* setting; raises SettingError on the first problem.

    This checks each value's form, then how the values fit together; whether the chosen login
    method has what it needs is labhub.auth.check's job."""
    environ = os.environ if environ is None else environ
    for problem in unknown(environ):
        raise SettingError(problem)
    r = _Reader(environ)
    s = Settings(**{name.lower(): setting.parse(r, name) for name, setting in SETTINGS.items()})

    if s.tls == "acme":
        if s.hub_ssl:
            raise fail("TLS", "acme needs Traefik, which the hub-direct mode leaves out",
                       "set provided or self-signed, or start with docker-compose.yml alone")
        if s.hostname == "localhost" or re.fullmatch(r"[0-9.]+", s.hostname):
            raise fail("HOSTNAME", f"acme cannot certify {s.hostname!r}", "set the host's public DNS name")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", s.acme_email):
            raise fail("ACME_EMAIL", f"{s.acme_email!r} is not an e-mail address", "set the admin's, e.g. it-lab@example.edu")
        if s.acme_challenge == "dns-01" and not s.acme_dns_provider:
            raise fail("ACME_DNS_PROVIDER", "dns-01 needs the DNS provider that holds the host name's records",
                       f"set its code from {LEGO_DNS_PROVIDERS}, e.g. cloudflare (its credentials go in secret/{ACME_DNS_ENV})")
        if s.acme_dns_provider and s.acme_challenge != "dns-01":
            raise fail("ACME_DNS_PROVIDER", f"only used by dns-01, but LABHUB_ACME_CHALLENGE is {s.acme_challenge}",
                       "set LABHUB_ACME_CHALLENGE=dns-01 too, or leave it empty")
    if s.user_subdomains:
        _check_subdomains(s)
    if not s.admin_users:
        raise fail("ADMIN_USERS", "no admin", "name at least one admin, e.g. admin")
    if s.user_ids == "per-user" and not s.home_root:
        raise fail("USER_IDS", "per-user ids need home folders on the host",
                   "set LABHUB_HOME_ROOT too (Docker volumes cannot be owned per user)")
    if s.home_quota and not s.home_root:
        raise fail("HOME_QUOTA", "homes are Docker volumes, which Docker cannot limit in size",
                   "set LABHUB_HOME_ROOT to a folder on XFS (prjquota), btrfs or ZFS for homes (README, Disk and "
                   "quotas), or leave it empty")
    if s.alert_email and not (s.smtp_server and s.smtp_from):
        raise fail("ALERT_EMAIL", "alert e-mails need a mail server and a sender",
                   "set LABHUB_SMTP_SERVER (host:port) and LABHUB_SMTP_FROM too, or leave it empty")
    if s.sudo_users and s.user_ids == "per-user":
        raise fail("SUDO_USERS", "sudo needs the image's own user (per-user ids have no account in the image)",
                   "leave it empty, or set LABHUB_USER_IDS=shared")
    if s.swarm:
        _check_swarm(s)
    # Servers on a swarm's nodes could otherwise reach the nodes' control ports (README, Security).
    return replace(s, ldap_port=s.ldap_port or (636 if s.ldap_tls == "ldaps" else 389),
                   block_private_networks=s.swarm if s.block_private_networks is None else s.block_private_networks)
