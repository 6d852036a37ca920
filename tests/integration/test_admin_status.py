"""`labhub status` and `labhub homes` on the real stack: what a user chose as their name reaches
the admin's terminal escaped (the tables themselves: tests/unit/test_status.py)."""

from urllib.parse import quote

import harness

# A name native sign-up takes: a right-to-left override turns the rest of the line around. (Control
# characters are refused at every login and sign-up: test_security; names an older LabHub let in, or
# a provider sends, are escaped as well: tests/unit/test_status.py.)
NAME = "eve\u202elive"
SHOWN = r"eve\u202elive"


def test_a_user_name_with_control_characters_is_printed_escaped(stack, admin):
    eve = harness.HubClient(stack)
    eve.sign_up(NAME, "Lab-Notebook-2026")
    admin.http.get(admin.url("/hub/authorize/" + quote(NAME, safe="")))
    assert "/hub/login" not in eve.login(NAME, "Lab-Notebook-2026").url
    eve.start_server()
    try:
        # status has her name from her server's environment; homes from her volume's name, unescaped.
        for command, shown in (("status", SHOWN), ("homes", SHOWN)):
            result = stack.compose("run", "--rm", "-T", "admin", command, check=False)
            assert result.returncode == 0, result.stdout
            rows = [row for row in result.stdout.split("\n") if "eve" in row]
            assert rows and all(row.isprintable() for row in rows), (command, rows)
            assert any(row.startswith(shown + " ") for row in rows), (command, rows)
    finally:
        eve.stop_server()
