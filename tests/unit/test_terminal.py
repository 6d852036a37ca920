from labhub.terminal import printable


def test_what_a_terminal_would_act_on_is_escaped_and_the_rest_left_as_it_is():
    assert printable("zoë jo-anne d'arcy 王") == "zoë jo-anne d'arcy 王"
    assert printable("a\x1b[2Jb\rc\nd\te\u202ef\u200bg\x7f") == r"a\x1b[2Jb\rc\nd\te\u202ef\u200bg\x7f"
    assert printable("a\\x1b") == r"a\\x1b"  # a backslash typed in a name cannot pass for an escape
