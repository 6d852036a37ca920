"""Each login method's configuration, as the hub would load it (the real logins run in
tests/integration/test_auth_*.py)."""

import asyncio
import ssl
import stat

import pytest
from tornado import web
from traitlets.config import Config

from labhub import auth, settings
from labhub.settings import SettingError

from contexts import hub_context

OAUTH_ENV = {"OAUTH_CLIENT_ID": "id", "OAUTH_CLIENT_SECRET": "secret"}


def configured(tmp_path, environ=None, **labhub):
    s = settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})
    c = Config()
    auth.configure(c, hub_context(s, secret_dir=tmp_path, environ=environ))
    return c


def refusal(tmp_path, environ=None, **labhub) -> str:
    with pytest.raises(SettingError) as e:
        configured(tmp_path, environ, **labhub)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_admin_passwords_are_made_once_and_private(tmp_path):
    assert auth.ensure_admin_passwords(tmp_path, ["admin", "alice"]) == ["admin", "alice"]
    first = auth.admin_password_file(tmp_path, "admin").read_text()
    assert len(first.strip()) >= auth.SHARED_ADMIN_PASSWORD_LENGTH
    assert stat.S_IMODE(auth.admin_password_file(tmp_path, "admin").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / auth.ADMIN_PASSWORDS).stat().st_mode) == 0o700
    assert auth.ensure_admin_passwords(tmp_path, ["admin"]) == []
    assert auth.admin_password_file(tmp_path, "admin").read_text() == first


def test_native_is_the_default_and_hardened(tmp_path):
    c = configured(tmp_path)
    assert c.JupyterHub.authenticator_class is auth.LabHubNativeAuthenticator
    assert c.NativeAuthenticator.allowed_failed_logins == 5
    assert c.NativeAuthenticator.seconds_before_next_try == 600
    assert c.NativeAuthenticator.minimum_password_length >= 8
    assert c.NativeAuthenticator.check_common_password is True
    assert c.NativeAuthenticator.allow_2fa is False
    assert configured(tmp_path, native_totp="true").NativeAuthenticator.allow_2fa is True
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allow_existing_users is False


@pytest.mark.parametrize("method", ["native", "shared-password"])
def test_names_that_would_share_a_home_are_refused_by_every_method(tmp_path, method):
    from escapism import escape
    from jupyterhub.auth import Authenticator

    (tmp_path / "shared-password").write_text("a-long-enough-password\n")
    authenticator = Authenticator(config=configured(tmp_path, auth=method))
    # DockerSpawner's escaping (escapism, lower-cased) gives these two one name: one home.
    twin, name = "\x0c3\x0bc", "\u00fc"
    assert escape(twin, escape_char="-").lower() == escape(name, escape_char="-").lower()
    assert not authenticator.validate_username(twin)
    for refused in ("ann\n", "a\x00b", "esc\x1b[2J", "del\x7f", "tab\tbed"):
        assert not authenticator.validate_username(refused), refused
    for allowed in (name, "jo-anne", "d'arcy", "mary.kate", "zoë", "李"):
        assert authenticator.validate_username(allowed), allowed


def test_native_login_handler_is_replaced_by_the_jupyterhub_6_shim():
    handlers = dict(auth.LabHubNativeAuthenticator(add_new_table=False).get_handlers(None))
    assert handlers["/login"] is auth._LoginHandler
    assert handlers["/signup"].__module__ == "nativeauthenticator.handlers"


def test_shared_password_needs_a_password_of_eight_characters(tmp_path):
    assert refusal(tmp_path, auth="shared-password").startswith(
        "secret/shared-password: missing, or shorter than 8 characters; put the password users share there")
    (tmp_path / "shared-password").write_text("short\n")
    assert refusal(tmp_path, auth="shared-password").startswith("secret/shared-password: missing, or shorter")
    (tmp_path / "shared-password").write_text("long enough\n")
    auth.ensure_admin_passwords(tmp_path, ["admin"])
    c = configured(tmp_path, auth="shared-password")
    assert c.JupyterHub.authenticator_class == "shared-password"
    assert c.SharedPasswordAuthenticator.user_password == "long enough"
    assert len(c.SharedPasswordAuthenticator.admin_password) >= 32
    assert c.Authenticator.allow_all is True


def test_github_needs_client_credentials_and_a_restriction(tmp_path):
    assert refusal(tmp_path, auth="github", github_orgs="mylab").startswith(
        "secret/oauth.env: OAUTH_CLIENT_ID is missing; add OAUTH_CLIENT_ID=... from the OAuth app "
        "registered for https://localhost/hub/oauth_callback")
    assert refusal(tmp_path, OAUTH_ENV, auth="github").startswith(
        "LABHUB_GITHUB_ORGS: nobody is allowed to log in with GitHub")
    c = configured(tmp_path, OAUTH_ENV, auth="github", hostname="lab.example.edu",
                   github_orgs="mylab,otherlab:students", allowed_users="alice", admin_users="bob")
    assert c.JupyterHub.authenticator_class == "github"
    assert c.OAuthenticator.oauth_callback_url == "https://lab.example.edu/hub/oauth_callback"
    assert c.GitHubOAuthenticator.allowed_organizations == {"mylab", "otherlab:students"}
    assert c.GitHubOAuthenticator.scope == ["read:org"]
    assert c.OAuthenticator.allowed_users == {"alice"}
    assert c.Authenticator.admin_users == {"bob"}


def test_github_configuration_loads_into_the_real_authenticator(tmp_path, monkeypatch):
    from oauthenticator.github import GitHubOAuthenticator

    monkeypatch.setenv("OAUTH_CLIENT_ID", "the-id")
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "the-secret")
    c = configured(tmp_path, OAUTH_ENV, auth="github", github_orgs="mylab")
    authenticator = GitHubOAuthenticator(config=c)
    assert (authenticator.client_id, authenticator.client_secret) == ("the-id", "the-secret")
    assert authenticator.allowed_organizations == {"mylab"}
    assert "read:org" in authenticator.scope


def test_oidc_needs_an_issuer_and_allowed_groups(tmp_path, monkeypatch):
    assert refusal(tmp_path, OAUTH_ENV, auth="oidc", oidc_allowed_groups="lab").startswith("LABHUB_OIDC_ISSUER: missing")
    assert refusal(tmp_path, OAUTH_ENV, auth="oidc", oidc_issuer="https://login.example.edu").startswith(
        "LABHUB_OIDC_ALLOWED_GROUPS: nobody is allowed to log in")
    monkeypatch.setattr(auth, "discover_oidc", lambda issuer: {
        "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo"})
    c = configured(tmp_path, OAUTH_ENV, auth="oidc", oidc_issuer="https://login.example.edu/",
                   oidc_allowed_groups="lab-members", oidc_admin_groups="lab-admins")
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.token_url == "https://login.example.edu/token"
    assert c.GenericOAuthenticator.manage_groups is True
    assert c.GenericOAuthenticator.auth_state_groups_key == "oauth_user.groups"
    assert c.GenericOAuthenticator.allowed_groups == {"lab-members"}
    assert c.GenericOAuthenticator.admin_groups == {"lab-admins"}
    assert c.GenericOAuthenticator.username_claim == "preferred_username"


def test_oidc_issuer_that_does_not_answer_is_named(tmp_path):
    message = refusal(tmp_path, OAUTH_ENV, auth="oidc", oidc_issuer="http://127.0.0.1:9", oidc_allowed_groups="x")
    assert message.startswith("LABHUB_OIDC_ISSUER: cannot read the provider's endpoints from "
                              "http://127.0.0.1:9/.well-known/openid-configuration")


def test_email_domain_becomes_the_username_and_restricts():
    username = auth.email_username("mit.edu")
    assert username({"email": "Jo-Anne@MIT.edu", "email_verified": True}) == "jo-anne"
    for info in ({"email": "eve@evil.edu"}, {"email": "bob@mit.edu", "email_verified": False}, {}):
        with pytest.raises(web.HTTPError) as e:
            username(info)
        assert e.value.status_code == 403


def test_ldap_needs_a_server_a_way_to_bind_and_allowed_groups(tmp_path):
    assert refusal(tmp_path, auth="ldap").startswith("LABHUB_LDAP_SERVER: missing")
    assert refusal(tmp_path, auth="ldap", ldap_server="ldap").startswith(
        "LABHUB_LDAP_BIND_DN_TEMPLATE: set exactly one of it and LABHUB_LDAP_SEARCH_BASE")
    assert refusal(tmp_path, auth="ldap", ldap_server="ldap", ldap_bind_dn_template="uid=x,dc=lab").startswith(
        "LABHUB_LDAP_BIND_DN_TEMPLATE: has no {username}")
    assert refusal(tmp_path, auth="ldap", ldap_server="ldap", ldap_bind_dn_template="uid={username},dc=lab").startswith(
        "LABHUB_LDAP_ALLOWED_GROUPS: nobody is allowed to log in")
    assert refusal(tmp_path, auth="ldap", ldap_server="ldap", ldap_search_base="ou=people,dc=lab",
                   ldap_search_user="cn=reader,dc=lab", allowed_users="alice").startswith("secret/ldap-password: missing")


def test_ldap_configuration(tmp_path):
    (tmp_path / "ldap-ca.crt").write_text("ca")
    c = configured(tmp_path, auth="ldap", ldap_server="ldap.example.edu",
                   ldap_bind_dn_template="uid={username},ou=people,dc=lab",
                   ldap_allowed_groups="cn=users,dc=lab", ldap_admin_groups="cn=admins,dc=lab")
    assert c.JupyterHub.authenticator_class == "ldapauthenticator.LDAPAuthenticator"
    assert (c.LDAPAuthenticator.server_address, c.LDAPAuthenticator.server_port) == ("ldap.example.edu", 389)
    assert c.LDAPAuthenticator.tls_strategy == "before_bind"
    assert c.LDAPAuthenticator.tls_kwargs == {"validate": ssl.CERT_REQUIRED, "ca_certs_file": str(tmp_path / "ldap-ca.crt")}
    assert c.LDAPAuthenticator.allowed_groups == ["cn=users,dc=lab", "cn=admins,dc=lab"]
    hook = c.Authenticator.post_auth_hook
    assert hook(None, None, {"name": "carol", "auth_state": {"ldap_groups": ["cn=admins,dc=lab"]}})["admin"] is True
    assert "admin" not in hook(None, None, {"name": "alice", "auth_state": {"ldap_groups": ["cn=users,dc=lab"]}})


def test_ldap_search_mode(tmp_path):
    (tmp_path / "ldap-password").write_text("reader-pw\n")
    c = configured(tmp_path, auth="ldap", ldap_server="ldap", ldap_tls="ldaps", ldap_search_base="ou=people,dc=lab",
                   ldap_search_user="cn=reader,dc=lab", ldap_user_attribute="sAMAccountName", allowed_users="alice")
    assert c.LDAPAuthenticator.lookup_dn is True
    assert c.LDAPAuthenticator.user_attribute == c.LDAPAuthenticator.lookup_dn_user_dn_attribute == "sAMAccountName"
    assert c.LDAPAuthenticator.lookup_dn_search_password == "reader-pw"
    assert (c.LDAPAuthenticator.tls_strategy, c.LDAPAuthenticator.server_port) == ("on_connect", 636)
    assert c.LDAPAuthenticator.tls_kwargs == {"validate": ssl.CERT_REQUIRED}


def test_failed_logins_survive_a_restart(tmp_path):
    from datetime import datetime
    store = auth.FailedLogins(tmp_path / "failed-logins.json")
    assert store.load() == {}
    when = datetime(2026, 11, 22, 4, 30)
    store.save({"ann": {"count": 5, "time": when}})
    assert auth.FailedLogins(tmp_path / "failed-logins.json").load() == {"ann": {"count": 5, "time": when}}


def test_a_native_password_is_hashed_while_the_hub_goes_on_serving(tmp_path, monkeypatch):
    """bcrypt takes a quarter of a CPU-second on purpose; the hub's event loop runs meanwhile,
    and the answers are upstream's: right password in, wrong one out and counted."""
    from jupyterhub import orm
    monkeypatch.setattr(auth.LabHubNativeAuthenticator, "failed_logins", auth.FailedLogins(tmp_path / "failed.json"))
    native = auth.LabHubNativeAuthenticator(db=orm.new_session_factory("sqlite://")())
    native.create_user("ann", "Lab-Notebook-2026").is_authorized = True

    async def login(password):
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        name = await native.authenticate(None, {"username": "ann", "password": password})
        ticker.cancel()
        return name, ticks

    name, ticks = asyncio.run(login("Lab-Notebook-2026"))
    assert name == "ann" and ticks > 10  # the loop went on while bcrypt ran
    assert asyncio.run(login("wrong-password-1"))[0] is None
    assert native.login_attempts["ann"]["count"] == 1
    assert "is_valid_password" not in vars(native.get_user("ann"))
