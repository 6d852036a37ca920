"""LDAP logins against a real OpenLDAP (slapd) in a container on the stack's network, over
StartTLS verified with the server's CA, through Traefik over HTTPS."""

import pytest

import harness
import peers


@pytest.fixture(scope="module")
def ldap(stack):
    server = peers.start_ldap(f"{stack.project}_default", f"{stack.project}-ldap")
    (stack.secret / "ldap-ca.crt").write_text(server.ca_pem)
    try:
        yield server
    finally:
        server.remove()
        for name in ("ldap-ca.crt", "ldap-password"):
            (stack.secret / name).unlink(missing_ok=True)


def login(stack, user, password):
    client = harness.HubClient(stack)
    landed = client.login(user, password)
    return client, "/hub/login" not in landed.url


def test_bind_template_allowed_group_and_admin_group(stack, ldap):
    settings = dict(auth="ldap", ldap_server=ldap.host,
                    ldap_bind_dn_template=f"uid={{username}},ou=people,{ldap.base_dn}",
                    ldap_allowed_groups=ldap.group_dn("jupyter-users"),
                    ldap_admin_groups=ldap.group_dn("jupyter-admins"))
    with stack.configured(**settings):
        alice, ok = login(stack, "alice", ldap.passwords["alice"])
        assert ok
        assert alice.api("GET", "/user").json()["admin"] is False
        assert not login(stack, "alice", "wrong-password")[1]
        assert not login(stack, "bob", ldap.passwords["bob"])[1]  # in no allowed group
        carol, ok = login(stack, "carol", ldap.passwords["carol"])
        assert ok and carol.api("GET", "/user").json()["admin"] is True
        assert login(stack, "jo-anne", ldap.passwords["jo-anne"])[1]


def test_search_for_the_users_dn(stack, ldap):
    (stack.secret / "ldap-password").write_text(ldap.admin_password + "\n")
    settings = dict(auth="ldap", ldap_server=ldap.host, ldap_search_base=f"ou=people,{ldap.base_dn}",
                    ldap_search_user=ldap.admin_dn, allowed_users="alice")
    with stack.configured(**settings):
        assert login(stack, "alice", ldap.passwords["alice"])[1]
        assert not login(stack, "carol", ldap.passwords["carol"])[1]  # not in LABHUB_ALLOWED_USERS
