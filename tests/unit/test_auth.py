import stat

from labhub import auth


def test_admin_passwords_are_made_once_and_private(tmp_path):
    assert auth.ensure_admin_passwords(tmp_path, ["admin", "alice"]) == ["admin", "alice"]
    first = auth.admin_password_file(tmp_path, "admin").read_text()
    assert len(first.strip()) >= 20
    assert stat.S_IMODE(auth.admin_password_file(tmp_path, "admin").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / auth.ADMIN_PASSWORDS).stat().st_mode) == 0o700
    assert auth.ensure_admin_passwords(tmp_path, ["admin"]) == []
    assert auth.admin_password_file(tmp_path, "admin").read_text() == first


def test_native_login_handler_is_replaced_by_the_jupyterhub_6_shim():
    handlers = dict(auth.LabHubNativeAuthenticator(add_new_table=False).get_handlers(None))
    assert handlers["/login"] is auth._LoginHandler
    assert handlers["/signup"].__module__ == "nativeauthenticator.handlers"
