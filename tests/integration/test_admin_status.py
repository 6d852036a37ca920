"""`labhub status` and `labhub homes` on the real stack: what a user chose as their name reaches
the admin's terminal escaped (the tables themselves: tests/unit/test_status.py)."""

from urllib.parse import quote

import harness

# A name native sign-up takes: Tornado turns the other C0 controls of a form (ESC among them) into
# spaces, which NativeAuthenticator refuses; an OAuth or LDAP provider's names pass no such filter.
NAME = "eve\x0b\r\u202elive"  # a vertical tab, back to the line's start, the rest turned around
SHOWN = r"eve\x0b\r\u202elive"


def test_a_user_name_with_control_characters_is_printed_escaped(stack, admin):
    eve = harness.HubClient(stack)
    eve.sign_up(NAME, "Lab-Notebook-2026")
    # NativeAuthenticator approves her, then answers 500: it redirects to a URL with her raw name,
    # and Tornado refuses control characters in a header. The approval holds: she logs in.
    admin.http.get(admin.url("/hub/authorize/" + quote(NAME, safe="")))
    assert "/hub/login" not in eve.login(NAME, "Lab-Notebook-2026").url
    eve.start_server()
    try:
        # status has her name from her server's environment; homes from her volume's name, unescaped:
        # escapism writes bytes below 0x10 with one hex digit (-B, -D), which unescape leaves as they are.
        for command, shown in (("status", SHOWN), ("homes", r"eve-b-d\u202elive")):
            result = stack.compose("run", "--rm", "-T", "admin", command, check=False)
            assert result.returncode == 0, result.stdout
            rows = [row for row in result.stdout.split("\n") if "eve" in row]
            assert rows and all(row.isprintable() for row in rows), (command, rows)
            assert any(row.startswith(shown + " ") for row in rows), (command, rows)
    finally:
        eve.stop_server()
