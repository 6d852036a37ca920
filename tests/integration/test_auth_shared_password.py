"""The trial login: one shared password, chosen explicitly, with a loud warning."""

import harness

SHARED = "trial-password-2026"


def test_shared_password_logs_anyone_in_and_admins_with_theirs(stack):
    (stack.secret / "shared-password").write_text(SHARED + "\n")
    try:
        with stack.configured(auth="shared-password"):
            assert "anyone who knows the shared password can log in" in stack.service_log("hub")

            visitor = harness.HubClient(stack)
            assert "/hub/login" in visitor.login("visitor", "not-the-password").url
            assert "/hub/login" not in visitor.login("visitor", SHARED).url
            assert visitor.api("GET", "/user").json()["admin"] is False

            admin = harness.HubClient(stack)
            assert "/hub/login" in admin.login("admin", SHARED).url  # admins need the admin password
            admin.login("admin", stack.admin_password())
            assert admin.api("GET", "/user").json()["admin"] is True
    finally:
        (stack.secret / "shared-password").unlink()
