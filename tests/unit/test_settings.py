import pytest

from labhub import settings
from labhub.settings import SettingError


def test_defaults_need_no_env_file():
    s = settings.load({})
    assert (s.hostname, s.auth, s.admin_users) == ("localhost", "native", ("admin",))


def test_values_are_normalised():
    s = settings.load({"LABHUB_HOSTNAME": " Lab.Example.EDU ", "LABHUB_ADMIN_USERS": "Alice, bob,alice"})
    assert s.hostname == "lab.example.edu"
    assert s.admin_users == ("alice", "bob")


def test_other_variables_are_ignored():
    assert settings.load({"PATH": "/bin", "COMPOSE_PROJECT_NAME": "x"}).auth == "native"


@pytest.mark.parametrize("env, message", [
    ({"LABHUB_AUTH": "kerberos"}, "LABHUB_AUTH: unknown login method 'kerberos'; set it to one of native"),
    ({"LABHUB_HOSTNAME": "lab example"}, "LABHUB_HOSTNAME: 'lab example' is not a host name"),
    ({"LABHUB_ADMIN_USERS": "Ad Min"}, "LABHUB_ADMIN_USERS: 'Ad Min' is not a list of user names"),
    ({"LABHUB_HOSTNAMES": "x"}, "LABHUB_HOSTNAMES: unknown setting; use one of LABHUB_HOSTNAME, LABHUB_AUTH"),
])
def test_bad_values_give_one_line_naming_setting_and_fix(env, message):
    with pytest.raises(SettingError) as e:
        settings.load(env)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value) and "(in .env, see .env.template)" in str(e.value)
    assert e.value.code == f"labhub: error: {e.value}"  # what the process prints when it exits


def test_env_template_documents_every_setting_with_its_default():
    text = (settings.Path(__file__).parents[2] / ".env.template").read_text()
    documented = dict(line.lstrip("#").split("=", 1) for line in text.splitlines()
                      if line.startswith("#LABHUB_"))
    assert documented == {settings.PREFIX + name: s.default for name, s in settings.SETTINGS.items()}
