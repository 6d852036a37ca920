"""University single sign-on: the hub against a real OpenID Connect provider (oidc-provider-mock)
in a container on the stack's network, through Traefik over HTTPS. GitHub uses the same
OAuthenticator flow; GitHub itself is not reachable from here (see tests/unit/test_auth.py)."""

import pytest

import harness
import peers


@pytest.fixture(scope="module")
def oidc(stack):
    provider = peers.start_oidc(f"{stack.project}_default", f"{stack.project}-oidc")
    (stack.secret / "oauth.env").write_text("OAUTH_CLIENT_ID=labhub\nOAUTH_CLIENT_SECRET=oidc-test-secret\n")
    try:
        yield provider
    finally:
        provider.remove()
        (stack.secret / "oauth.env").unlink()


def sso_login(stack, oidc, user, **claims) -> tuple[harness.HubClient, object]:
    client = harness.HubClient(stack)
    client.user = user
    form = client.http.get(client.url("/hub/oauth_login"))  # the hub sends the browser to the provider
    return client, oidc.login(client.http, form, f"sub-{user}", **claims)


def is_admin(client) -> bool:
    return client.api("GET", "/user").json()["admin"]


def test_group_members_log_in_outsiders_do_not_and_admin_group_is_admin(stack, oidc):
    settings = dict(auth="oidc", oidc_issuer=oidc.issuer, oidc_allowed_groups="jupyter-users",
                    oidc_admin_groups="jupyter-admins")
    with stack.configured(**settings):
        alice, landed = sso_login(stack, oidc, "alice", preferred_username="alice",
                                  email="alice@lab.example", groups=["jupyter-users"])
        assert landed.status_code == 200 and "/hub/login" not in landed.url, landed.url
        assert is_admin(alice) is False
        alice.start_server()
        assert alice.execute(alice.start_kernel(), "6*7") == "42"

        _, refused = sso_login(stack, oidc, "bob", preferred_username="bob", groups=["other"])
        assert refused.status_code == 403

        carol, landed = sso_login(stack, oidc, "carol", preferred_username="carol", groups=["jupyter-admins"])
        assert landed.status_code == 200
        assert is_admin(carol) is True


def test_email_domain_preset_strips_the_domain_and_refuses_others(stack, oidc):
    """The Gifford lab's MIT setup: user name from the @mit.edu address, one group allowed."""
    settings = dict(auth="oidc", oidc_issuer=oidc.issuer, oidc_email_domain="mit.edu",
                    oidc_allowed_groups="gifford-lab")
    with stack.configured(**settings):
        jo, landed = sso_login(stack, oidc, "jo-anne", email="Jo-Anne@mit.edu", email_verified=True,
                               groups=["gifford-lab"])
        assert landed.status_code == 200
        assert jo.api("GET", "/user").json()["name"] == "jo-anne"

        _, refused = sso_login(stack, oidc, "eve", email="eve@elsewhere.edu", groups=["gifford-lab"])
        assert refused.status_code == 403
        assert "Only verified @mit.edu accounts may log in" in refused.text
