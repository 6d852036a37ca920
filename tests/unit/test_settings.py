import pytest

from labhub import settings
from labhub.settings import SettingError


def test_defaults_need_no_env_file():
    s = settings.load({})
    assert (s.hostname, s.auth, s.admin_users) == ("localhost", "native", ("admin",))


def test_values_are_normalised():
    s = settings.load({"LABHUB_HOSTNAME": " Lab.Example.EDU ", "LABHUB_ADMIN_USERS": "Alice, bob,alice"})
    assert s.hostname == "lab.example.edu"
    assert s.admin_users == ("alice", "bob")


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
