import dataclasses
import re

import pytest
import yaml

from labhub import settings
from labhub.settings import SettingError


def test_defaults_need_no_env_file():
    s = settings.load({})
    assert (s.hostname, s.auth, s.admin_users) == ("localhost", "native", ("admin",))


def test_values_are_normalised():
    s = settings.load({"LABHUB_HOSTNAME": " Lab.Example.EDU ", "LABHUB_ADMIN_USERS": "Alice, bob,alice"})
    assert s.hostname == "lab.example.edu"
    assert s.admin_users == ("alice", "bob")


def test_sharing_is_on_off_or_the_groups_whose_members_may():
    assert settings.load({}).sharing == "on"
    assert settings.load({"LABHUB_SHARING": "OFF"}).sharing == "off"
    assert settings.load({"LABHUB_SHARING": "bio-lab, Imaging"}).sharing == ("bio-lab", "Imaging")


def test_ldap_groups_are_separated_by_semicolons_and_ports_follow_tls():
    s = settings.load({"LABHUB_LDAP_ALLOWED_GROUPS": "cn=a,dc=x; cn=b,dc=x", "LABHUB_LDAP_TLS": "ldaps"})
    assert s.ldap_allowed_groups == ("cn=a,dc=x", "cn=b,dc=x")
    assert s.ldap_port == 636
    assert settings.load({}).ldap_port == 389


def test_other_variables_are_ignored():
    assert settings.load({"PATH": "/bin", "COMPOSE_PROJECT_NAME": "x"}).auth == "native"


@pytest.mark.parametrize("env, message", [
    ({"LABHUB_AUTH": "kerberos"}, "LABHUB_AUTH: unknown login method 'kerberos'; set it to one of native, shared-password"),
    ({"LABHUB_LDAP_TLS": "maybe"}, "LABHUB_LDAP_TLS: unknown TLS mode 'maybe'; set it to one of starttls, ldaps, none"),
    ({"LABHUB_LDAP_PORT": "99999"}, "LABHUB_LDAP_PORT: '99999' is not a port number"),
    ({"LABHUB_OIDC_ISSUER": "oidc.example.edu"}, "LABHUB_OIDC_ISSUER: 'oidc.example.edu' is not an http(s) URL"),
    ({"LABHUB_NATIVE_TOTP": "yes"}, "LABHUB_NATIVE_TOTP: unknown value 'yes'; set it to one of true, false"),
    ({"LABHUB_ALLOWED_USERS": "alice,Bob Smith"}, "LABHUB_ALLOWED_USERS: 'bob smith' is not a user name"),
    ({"LABHUB_HOSTNAME": "lab example"}, "LABHUB_HOSTNAME: 'lab example' is not a host name"),
    ({"LABHUB_ADMIN_USERS": "Ad Min"}, "LABHUB_ADMIN_USERS: 'ad min' is not a user name"),
    ({"LABHUB_ADMIN_USERS": " , "}, "LABHUB_ADMIN_USERS: no admin; name at least one admin"),
    ({"LABHUB_SHARING": "yes please"}, "LABHUB_SHARING: 'yes please' is neither on, off nor a group name"),
    ({"LABHUB_SHARE_LINK_SECONDS": "30"}, "LABHUB_SHARE_LINK_SECONDS: '30' is not a number from 60 to 31536000"),
    ({"LABHUB_HOSTNAMES": "x"}, "LABHUB_HOSTNAMES: unknown setting; use one of LABHUB_HOSTNAME, LABHUB_HTTP_PORT"),
])
def test_bad_values_give_one_line_naming_setting_and_fix(env, message):
    with pytest.raises(SettingError) as e:
        settings.load(env)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value) and "(in .env, see .env.template)" in str(e.value)
    assert e.value.code == f"labhub: error: {e.value}"  # what the process prints when it exits


def test_env_template_documents_every_setting_with_its_default():
    text = (settings.Path(__file__).parents[2] / ".env.template").read_text()
    documented = dict(line.lstrip("#").split("=", 1) for line in text.splitlines()
                      if line.startswith("#LABHUB_"))
    assert documented == {settings.PREFIX + name: s.default for name, s in settings.SETTINGS.items()}


def test_settings_fields_and_the_table_correspond_one_to_one():
    names = [f.name for f in dataclasses.fields(settings.Settings)]
    assert [name.upper() for name in names] == list(settings.SETTINGS)
    assert set(vars(settings.load({}))) == set(names)


COMPOSE_FILES = ("docker-compose.yml", "docker-compose.hub-ssl.yml", "docker-compose.jlabs.yml")
# ${LABHUB_X:-default} or ${LABHUB_X-default}: the default when .env does not set X.
COMPOSE_DEFAULT = re.compile(r"\$\{(LABHUB_\w+)(:?-)([^}]*)\}")
# A default of its own mode: the hub-direct overlay sets LABHUB_HUB_SSL=true and serves on 8000
# (README: Hub-direct mode), so its HTTPS_PORT default differs from the table's on purpose.
MODE_DEFAULTS = {("docker-compose.hub-ssl.yml", "HTTPS_PORT"): "8000"}


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_defaults_agree_with_the_table(name):
    """Compose repeats a default where it needs a value (a port to publish, a variable handed on),
    and each must be the table's. An empty default counts only where the table's is empty too:
    `${LABHUB_X:-}` hands on "", which load() would read as the default, but Traefik (which
    reads some of them itself) and an admin reading `docker compose config` would not."""
    text = (settings.Path(__file__).parents[2] / name).read_text()
    found = COMPOSE_DEFAULT.findall(text)
    assert len(found) == text.count("${LABHUB_"), f"{name}: every ${{LABHUB_...}} needs a default (:-)"
    for variable, _, default in found:
        setting = variable.removeprefix(settings.PREFIX)
        assert setting in settings.SETTINGS, f"{name}: {variable} is no setting"
        expected = MODE_DEFAULTS.get((name, setting), settings.SETTINGS[setting].default)
        assert default == expected, f"{name}: ${{{variable}:-{default}}}, but the default is {expected!r}"
    if name == "docker-compose.hub-ssl.yml":
        assert 'LABHUB_HUB_SSL: "true"' in text  # what MODE_DEFAULTS relies on


def test_in_hub_direct_mode_every_service_that_reads_the_settings_sees_the_mode():
    """The mode is set by docker-compose.hub-ssl.yml, not .env: a service it misses would check
    and configure for Traefik (the monitoring would probe a front door that is not there)."""
    root = settings.Path(__file__).parents[2]
    base = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    overlay = yaml.safe_load((root / "docker-compose.hub-ssl.yml").read_text())["services"]
    reading = {name for name, service in base.items() if any(".env" in str(f) for f in service.get("env_file", []))}
    running = {name for name in reading if "traefik" not in overlay.get(name, {}).get("profiles", [])}
    assert running >= {"setup", "hub", "admin"}
    for name in running:
        assert overlay.get(name, {}).get("environment", {}).get("LABHUB_HUB_SSL") == "true", name


ACME = {"LABHUB_TLS": "acme", "LABHUB_HOSTNAME": "lab.example.edu", "LABHUB_ACME_EMAIL": "it@example.edu"}


@pytest.mark.parametrize("env,expected", [
    ({"LABHUB_USER_SUBDOMAINS": "true"}, "LABHUB_USER_SUBDOMAINS: user servers need names under LABHUB_HOSTNAME, but "
                                         "'localhost' has none a certificate can cover (browsers refuse *.localhost); set "
                                         "LABHUB_HOSTNAME to the lab's DNS name, or lab.localhost on this machine alone"),
    ({"LABHUB_USER_SUBDOMAINS": "true", "LABHUB_HOSTNAME": "10.1.2.3"}, "LABHUB_USER_SUBDOMAINS: user servers need names"),
    ({"LABHUB_USER_SUBDOMAINS": "true", "LABHUB_HOSTNAME": "lab.example.edu", "LABHUB_HUB_SSL": "true"},
     "LABHUB_USER_SUBDOMAINS: not available in hub-direct mode"),
    ({"LABHUB_USER_SUBDOMAINS": "true", **ACME}, "LABHUB_USER_SUBDOMAINS: acme's http-01 cannot certify *.HOSTNAME "
                                                 "(only dns-01 can); set LABHUB_ACME_CHALLENGE=dns-01 and LABHUB_ACME_DNS_PROVIDER"),
    ({"LABHUB_USER_SUBDOMAINS": "true", **ACME, "LABHUB_ACME_CHALLENGE": "tls-alpn-01"},
     "LABHUB_USER_SUBDOMAINS: acme's tls-alpn-01 cannot certify *.HOSTNAME"),
])
def test_user_subdomains_need_a_domain_traefik_and_a_certificate_that_can_cover_them(env, expected):
    with pytest.raises(SettingError) as e:
        settings.load(env)
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)
    assert settings.load({"LABHUB_USER_SUBDOMAINS": "true", "LABHUB_HOSTNAME": "lab.localhost"}).user_subdomains


def test_user_subdomains_get_their_certificate_by_acme_with_dns_01():
    s = settings.load({"LABHUB_USER_SUBDOMAINS": "true", **ACME, "LABHUB_ACME_CHALLENGE": "DNS-01",
                       "LABHUB_ACME_DNS_PROVIDER": "Cloudflare"})
    assert (s.user_subdomains, s.acme_challenge, s.acme_dns_provider) == (True, "dns-01", "cloudflare")


@pytest.mark.parametrize("env,expected", [
    ({"LABHUB_ACME_CHALLENGE": "dns-01"},
     "LABHUB_ACME_DNS_PROVIDER: dns-01 needs the DNS provider that holds the host name's records; set its code from "
     "https://go-acme.github.io/lego/dns/, e.g. cloudflare (its credentials go in secret/acme-dns.env)"),
    ({"LABHUB_ACME_DNS_PROVIDER": "cloudflare"},
     "LABHUB_ACME_DNS_PROVIDER: only used by dns-01, but LABHUB_ACME_CHALLENGE is http-01; "
     "set LABHUB_ACME_CHALLENGE=dns-01 too, or leave it empty"),
    ({"LABHUB_ACME_CHALLENGE": "dns-01", "LABHUB_ACME_DNS_PROVIDER": "Cloud Flare"},
     "LABHUB_ACME_DNS_PROVIDER: 'Cloud Flare' is not a DNS provider's code; write it as "
     "https://go-acme.github.io/lego/dns/ does, e.g. cloudflare"),
    ({"LABHUB_ACME_CHALLENGE": "dns01"}, "LABHUB_ACME_CHALLENGE: unknown challenge 'dns01'; set it to one of "
                                         "http-01, tls-alpn-01, dns-01"),
])
def test_dns_01_needs_the_dns_provider_and_only_it_takes_one(env, expected):
    with pytest.raises(SettingError) as e:
        settings.load({**ACME, **env})
    assert str(e.value) == expected + " (in .env, see .env.template)"
