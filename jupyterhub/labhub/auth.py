"""Logins. NativeAuthenticator (signup + admin approval) is the default; its one gap, that an
admin name listed in admin_users is approved for whoever signs up with it first, is closed by
creating every admin's account, with a password from secret/admin-passwords/, before the hub
serves."""

import secrets
from pathlib import Path

from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler

from .settings import SECRET_DIR, Settings

ADMIN_PASSWORDS = "admin-passwords"


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
            path.write_text(secrets.token_urlsafe(18) + "\n")
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


class LabHubNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator whose admin accounts exist from the first start, so none can be claimed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for admin in sorted(self.admin_users):
            if not self.user_exists(admin):
                password = admin_password_file(SECRET_DIR, admin).read_text().strip()
                self.create_user(admin, password)
                self.log.info("Created the admin account %r; its first password is in secret/%s/%s",
                              admin, ADMIN_PASSWORDS, admin)

    def get_handlers(self, app):
        return [(path, _LoginHandler if handler is NativeLoginHandler else handler)
                for path, handler in super().get_handlers(app)]


def configure(c, settings: Settings) -> None:
    c.JupyterHub.authenticator_class = LabHubNativeAuthenticator
    c.Authenticator.admin_users = set(settings.admin_users)
    # Every account needs an admin's approval before it can log in: approval is the allow list.
    c.Authenticator.allow_all = True
