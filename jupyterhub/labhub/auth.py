"""Logins: one method chosen by LABHUB_AUTH, each a documented upstream authenticator set up from
the settings, with its secrets read from secret/.

- native: NativeAuthenticator (sign up, an admin approves). Its one gap, that an admin name in
  admin_users is approved for whoever signs up with it first, is closed by creating every
  admin's account, with a password from secret/admin-passwords/, before the hub serves.
- shared-password: JupyterHub's SharedPasswordAuthenticator, for trials.
- github, oidc: OAuthenticator; client id and secret from secret/oauth.env.
- ldap: LDAPAuthenticator.
"""

import asyncio
import json
import logging
import secrets
import ssl
import urllib.request
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from nativeauthenticator.orm import UserInfo
from tornado import web

from .files import write_atomic
from .settings import DATA_DIR, SECRET_DIR, Settings, SettingError, fail

if TYPE_CHECKING:
    from .context import HubContext

ADMIN_PASSWORDS = "admin-passwords"
SHARED_PASSWORD = "shared-password"
OAUTH_ENV = "oauth.env"
LDAP_PASSWORD = "ldap-password"
LDAP_CA = "ldap-ca.crt"
FAILED_LOGINS_FILE = DATA_DIR / "failed-logins.json"

# NativeAuthenticator hardening: lock an account for 10 minutes after 5 wrong passwords;
# passwords of at least 8 characters that are not on its list of common passwords.
NATIVE_FAILED_LOGINS = 5
NATIVE_LOCKOUT_SECONDS = 600
MIN_PASSWORD_LENGTH = 8
# SharedPasswordAuthenticator's own minimum for the admin password.
SHARED_ADMIN_PASSWORD_LENGTH = 32


def _secret_fail(name: str, problem: str, fix: str) -> SettingError:
    return SettingError(f"secret/{name}: {problem}; {fix} (see README, Logins)")


def _read_secret(secret_dir: Path, name: str) -> str:
    try:
        return (secret_dir / name).read_text().strip()
    except FileNotFoundError:
        return ""


# --- native ---------------------------------------------------------------------------------


def admin_password_file(secret_dir: Path, admin: str) -> Path:
    return secret_dir / ADMIN_PASSWORDS / admin


def ensure_admin_passwords(secret_dir: Path, admins) -> list[str]:
    """Makes each admin's first password once (mode 0600); returns the admins it made one for."""
    made = []
    for admin in admins:
        path = admin_password_file(secret_dir, admin)
        if not path.exists():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.touch(mode=0o600)
            # Long enough for SharedPasswordAuthenticator's admin password too.
            path.write_text(secrets.token_urlsafe(33) + "\n")
            made.append(admin)
    return made


class _NoStatsd:
    """Stands in for the statsd client JupyterHub 6 removed (jupyterhub#5407), which
    NativeAuthenticator 1.3.0 still times its login with."""

    def timer(self, _name):
        return self

    def start(self):
        return self

    def stop(self, send=True):
        pass


class _LoginHandler(NativeLoginHandler):
    """NativeAuthenticator 1.3.0's login page, made to work with JupyterHub 6.

    Drop it once NativeAuthenticator supports JupyterHub 6 itself."""

    statsd = _NoStatsd()

    def render_template(self, name, **ns):
        # JupyterHub 6 renders a failed POST's error page with _render(**ns), a call
        # NativeAuthenticator's _render does not accept: show the plain error page.
        if name == "error.html":
            return BaseHandler.render_template(self, name, **ns)
        return super().render_template(name, **ns)


class FailedLogins:
    """NativeAuthenticator's count of failed logins per user, kept in the hub's state volume
    (it keeps it in memory only), so restarting the hub does not unlock an account under attack."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        return {name: {"count": a["count"], "time": datetime.fromisoformat(a["time"])}
                for name, a in json.loads(self.path.read_text()).items()}

    def save(self, attempts: dict) -> None:
        write_atomic(self.path, json.dumps({name: {"count": a["count"], "time": a["time"].isoformat()}
                                            for name, a in attempts.items()}))


class LabHubNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator whose admin accounts exist from the first start, so none can be
    claimed, and whose lockout after failed logins survives a hub restart."""

    failed_logins = FailedLogins(FAILED_LOGINS_FILE)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.login_attempts = self.failed_logins.load()
        for admin in sorted(self.admin_users):
            if not self.user_exists(admin):
                password = admin_password_file(SECRET_DIR, admin).read_text().strip()
                self.create_user(admin, password)
                self.log.info("Created the admin account %r; its first password is in secret/%s/%s",
                              admin, ADMIN_PASSWORDS, admin)

    async def authenticate(self, handler, data):
        """NativeAuthenticator's login, with the password's bcrypt hash (a quarter of a
        CPU-second, on purpose) computed in a worker thread: upstream hashes on the hub's event
        loop, where a class logging in at once would queue, and every spawn with it. Upstream
        then decides as always (approval, lockout, TOTP), told the result for this password."""
        user = self.get_user(data["username"])
        if user is None or not user.password:
            return await super().authenticate(handler, data)
        password = data["password"]
        # Upstream's own check, on the stored hash read here: the database session stays in this thread.
        stored = SimpleNamespace(password=user.password)
        verified = await asyncio.to_thread(UserInfo.is_valid_password, stored, password)
        user.is_valid_password = lambda given: (verified if given == password
                                                else UserInfo.is_valid_password(user, given))
        try:
            return await super().authenticate(handler, data)
        finally:
            del user.is_valid_password

    def add_login_attempt(self, username):
        super().add_login_attempt(username)
        self.failed_logins.save(self.login_attempts)

    def successful_login(self, username):
        super().successful_login(username)
        self.failed_logins.save(self.login_attempts)

    def get_handlers(self, app):
        return [(path, _LoginHandler if handler is NativeLoginHandler else handler)
                for path, handler in super().get_handlers(app)]


def _native(c, s: Settings, secret_dir: Path) -> None:
    c.JupyterHub.authenticator_class = LabHubNativeAuthenticator
    c.NativeAuthenticator.allowed_failed_logins = NATIVE_FAILED_LOGINS
    c.NativeAuthenticator.seconds_before_next_try = NATIVE_LOCKOUT_SECONDS
    c.NativeAuthenticator.minimum_password_length = MIN_PASSWORD_LENGTH
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.allow_2fa = s.native_totp
    # Every account needs an admin's approval before it can log in: approval is the allow list.
    c.Authenticator.allow_all = True


# --- shared password ------------------------------------------------------------------------


def _shared_password(c, s: Settings, secret_dir: Path) -> None:
    logging.getLogger("JupyterHub").warning(
        "LABHUB_AUTH=shared-password: anyone who knows the shared password can log in as any "
        "non-admin user and see their files. Use it for trials only.")
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = _read_secret(secret_dir, SHARED_PASSWORD)
    # Admins log in with the first admin's password from secret/admin-passwords/.
    c.SharedPasswordAuthenticator.admin_password = _read_secret(secret_dir, f"{ADMIN_PASSWORDS}/{s.admin_users[0]}")
    _allow(c, s)


# --- OAuth: GitHub and OpenID Connect -------------------------------------------------------


def _oauth_common(c, s: Settings) -> None:
    # Client id and secret come from secret/oauth.env (OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET),
    # which OAuthenticator reads from the environment itself.
    c.OAuthenticator.oauth_callback_url = f"{s.public_url}/hub/oauth_callback"
    c.OAuthenticator.allowed_users = set(s.allowed_users)


def _github(c, s: Settings, secret_dir: Path) -> None:
    c.JupyterHub.authenticator_class = "github"
    _oauth_common(c, s)
    c.GitHubOAuthenticator.allowed_organizations = set(s.github_orgs)
    if s.github_orgs:
        c.GitHubOAuthenticator.scope = ["read:org"]  # to see (private) org and team membership


def discover_oidc(issuer: str) -> dict:
    """The provider's endpoints, from its discovery document."""
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=10, context=ssl.create_default_context()) as r:
            doc = json.load(r)
        return {k: doc[k] for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")}
    except (OSError, ValueError, KeyError) as e:
        raise fail("OIDC_ISSUER", f"cannot read the provider's endpoints from {url} ({type(e).__name__})",
                   "check the issuer URL and that the hub can reach it") from None


def email_username(domain: str):
    """username_claim for an e-mail-domain restriction: the part before @, for that domain only."""

    def username(userinfo: dict) -> str:
        local, _, got = str(userinfo.get("email", "")).lower().rpartition("@")
        if got != domain or not local or userinfo.get("email_verified") is False:
            raise web.HTTPError(403, f"Only verified @{domain} accounts may log in.")
        return local

    return username


def _oidc(c, s: Settings, secret_dir: Path) -> None:
    c.JupyterHub.authenticator_class = "generic-oauth"
    _oauth_common(c, s)
    endpoints = discover_oidc(s.oidc_issuer)
    c.GenericOAuthenticator.authorize_url = endpoints["authorization_endpoint"]
    c.GenericOAuthenticator.token_url = endpoints["token_endpoint"]
    c.GenericOAuthenticator.userdata_url = endpoints["userinfo_endpoint"]
    c.GenericOAuthenticator.scope = list(s.oidc_scopes)
    c.GenericOAuthenticator.username_claim = (email_username(s.oidc_email_domain) if s.oidc_email_domain
                                              else s.oidc_username_claim)
    if s.oidc_allowed_groups or s.oidc_admin_groups:
        # The provider's groups become JupyterHub groups; membership decides access and admin.
        c.GenericOAuthenticator.manage_groups = True
        c.GenericOAuthenticator.auth_state_groups_key = f"oauth_user.{s.oidc_groups_claim}"
        c.GenericOAuthenticator.allowed_groups = set(s.oidc_allowed_groups)
        c.GenericOAuthenticator.admin_groups = set(s.oidc_admin_groups)


# --- LDAP -----------------------------------------------------------------------------------


def ldap_admin_by_group(admin_groups):
    """post_auth_hook: members of these groups (as LDAPAuthenticator found them) are admins."""

    def hook(authenticator, handler, authentication):
        found = set((authentication.get("auth_state") or {}).get("ldap_groups", []))
        if found & set(admin_groups):
            authentication["admin"] = True
        return authentication

    return hook


def _ldap(c, s: Settings, secret_dir: Path) -> None:
    c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
    c.LDAPAuthenticator.server_address = s.ldap_server
    c.LDAPAuthenticator.server_port = s.ldap_port
    c.LDAPAuthenticator.tls_strategy = {"starttls": "before_bind", "ldaps": "on_connect", "none": "insecure"}[s.ldap_tls]
    # ldap3 does not verify the server's certificate unless told to.
    tls = {"validate": ssl.CERT_REQUIRED}
    if (secret_dir / LDAP_CA).exists():
        tls["ca_certs_file"] = str(secret_dir / LDAP_CA)
    c.LDAPAuthenticator.tls_kwargs = tls
    if s.ldap_bind_dn_template:
        c.LDAPAuthenticator.bind_dn_template = [s.ldap_bind_dn_template]
    else:
        c.LDAPAuthenticator.lookup_dn = True
        c.LDAPAuthenticator.user_search_base = s.ldap_search_base
        c.LDAPAuthenticator.user_attribute = s.ldap_user_attribute
        # The user name is read back from the same attribute it was found by.
        c.LDAPAuthenticator.lookup_dn_user_dn_attribute = s.ldap_user_attribute
        if s.ldap_search_user:
            c.LDAPAuthenticator.lookup_dn_search_user = s.ldap_search_user
            c.LDAPAuthenticator.lookup_dn_search_password = _read_secret(secret_dir, LDAP_PASSWORD)
    c.LDAPAuthenticator.allowed_users = set(s.allowed_users)
    # Admin groups are looked up with the allowed ones; their members may log in too.
    c.LDAPAuthenticator.allowed_groups = list(dict.fromkeys(s.ldap_allowed_groups + s.ldap_admin_groups))
    if s.ldap_admin_groups:
        c.Authenticator.post_auth_hook = ldap_admin_by_group(s.ldap_admin_groups)


def _allow(c, s: Settings) -> None:
    if s.allowed_users:
        c.Authenticator.allowed_users = set(s.allowed_users)
    else:
        c.Authenticator.allow_all = True


# --- choosing and checking ------------------------------------------------------------------

METHODS = {"native": _native, "shared-password": _shared_password, "github": _github,
           "oidc": _oidc, "ldap": _ldap}


def check(s: Settings, secret_dir: Path, environ) -> None:
    """Does the chosen method have what it needs? Raises SettingError naming what is missing.
    Needs no network: it runs in the setup step too."""
    if s.auth == "shared-password":
        if len(_read_secret(secret_dir, SHARED_PASSWORD)) < MIN_PASSWORD_LENGTH:
            raise _secret_fail(SHARED_PASSWORD, f"missing, or shorter than {MIN_PASSWORD_LENGTH} characters",
                               f"put the password users share there ({MIN_PASSWORD_LENGTH} or more characters)")
        admin_file = f"{ADMIN_PASSWORDS}/{s.admin_users[0]}"
        if 0 < len(_read_secret(secret_dir, admin_file)) < SHARED_ADMIN_PASSWORD_LENGTH:
            raise _secret_fail(admin_file, f"shorter than {SHARED_ADMIN_PASSWORD_LENGTH} characters",
                               "use a longer admin password, or delete the file to get a new one")
    if s.auth in ("github", "oidc"):
        for var in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET"):
            if not environ.get(var, "").strip():
                raise _secret_fail(OAUTH_ENV, f"{var} is missing",
                                   f"add {var}=... from the OAuth app registered for {s.public_url}/hub/oauth_callback")
    if s.auth == "github" and not (s.github_orgs or s.allowed_users):
        raise fail("GITHUB_ORGS", "nobody is allowed to log in with GitHub",
                   "set LABHUB_GITHUB_ORGS (org or org:team) and/or LABHUB_ALLOWED_USERS")
    if s.auth == "oidc":
        if not s.oidc_issuer:
            raise fail("OIDC_ISSUER", "missing", "set it to the provider's issuer URL")
        if not (s.oidc_allowed_groups or s.oidc_admin_groups or s.allowed_users):
            raise fail("OIDC_ALLOWED_GROUPS", "nobody is allowed to log in",
                       "set LABHUB_OIDC_ALLOWED_GROUPS and/or LABHUB_ALLOWED_USERS")
    if s.auth == "ldap":
        if not s.ldap_server:
            raise fail("LDAP_SERVER", "missing", "set it to the LDAP server's host name")
        if bool(s.ldap_bind_dn_template) == bool(s.ldap_search_base):
            raise fail("LDAP_BIND_DN_TEMPLATE", "set exactly one of it and LABHUB_LDAP_SEARCH_BASE",
                       "use a template like uid={username},ou=people,dc=example,dc=edu, or a search base")
        if s.ldap_bind_dn_template and "{username}" not in s.ldap_bind_dn_template:
            raise fail("LDAP_BIND_DN_TEMPLATE", "has no {username}", "write {username} where the user name goes")
        if not (s.ldap_allowed_groups or s.ldap_admin_groups or s.allowed_users):
            raise fail("LDAP_ALLOWED_GROUPS", "nobody is allowed to log in",
                       "set LABHUB_LDAP_ALLOWED_GROUPS (group DNs) and/or LABHUB_ALLOWED_USERS")
        if s.ldap_search_user and not _read_secret(secret_dir, LDAP_PASSWORD):
            raise _secret_fail(LDAP_PASSWORD, "missing", f"put the password of {s.ldap_search_user} there")


# Every login and sign-up, whatever the method: no control characters. DockerSpawner's escaping
# writes the bytes below 0x10 with one hex digit, so "\x0c3\x0bc" would escape to -c3-bc, as "ü" does:
# two people with one home, one container name, one cluster area. (Names reach admins' terminals
# escaped anyway: labhub.terminal.)
USERNAME_PATTERN = r"[^\x00-\x1f\x7f]+\Z"


def needs_admin_passwords(s: Settings) -> bool:
    return s.auth in ("native", "shared-password")


def configure(c, ctx: "HubContext") -> None:
    s, secret_dir = ctx.settings, ctx.secret_dir
    check(s, secret_dir, ctx.environ)
    c.Authenticator.admin_users = set(s.admin_users)
    # Who may log in is what the settings say today: someone taken off LABHUB_ALLOWED_USERS or
    # out of an allowed group is refused, even though the hub has seen them before.
    c.Authenticator.allow_existing_users = False
    c.Authenticator.username_pattern = USERNAME_PATTERN
    METHODS[s.auth](c, s, secret_dir)
