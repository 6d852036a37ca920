import argparse
import stat

import pytest

from labhub import init
from labhub.settings import SettingError

TEMPLATE = "# Host name\n#LABHUB_HOSTNAME=localhost\n\n#LABHUB_AUTH=native\n#LABHUB_IDLE_TIMEOUT=3600\n"


def options(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    init.add_arguments(parser)
    return parser.parse_args(["--yes", *argv])


@pytest.fixture
def site(tmp_path):
    (tmp_path / ".env.template").write_text(TEMPLATE)
    (tmp_path / "secret").mkdir()
    return tmp_path


def test_env_sets_chosen_values_in_place_and_keeps_the_rest_documented():
    text = init.env_text(TEMPLATE, {"AUTH": "ldap", "IDLE_TIMEOUT": "0", "GPUS": "off"})
    assert text == ("# Host name\n#LABHUB_HOSTNAME=localhost\n\nLABHUB_AUTH=ldap\nLABHUB_IDLE_TIMEOUT=0\n"
                    "LABHUB_GPUS=off\n")


def test_writes_env_and_secrets_owner_only(site):
    done = init.run(options("--auth", "github", "--set", "github_orgs=mylab", "--oauth-client-id", "id",
                            "--oauth-client-secret", "s3cret"), site)
    assert done == ["wrote .env", "wrote secret/oauth.env"]
    assert "LABHUB_AUTH=github\n" in (site / ".env").read_text()
    assert "LABHUB_GITHUB_ORGS=mylab\n" in (site / ".env").read_text()
    oauth = site / "secret/oauth.env"
    assert oauth.read_text() == "OAUTH_CLIENT_ID=id\nOAUTH_CLIENT_SECRET=s3cret\n"
    assert stat.S_IMODE(oauth.stat().st_mode) == 0o600


def test_keeps_existing_files_unless_forced_and_then_keeps_a_copy(site):
    init.run(options("--hostname", "one.example.edu"), site)
    assert init.run(options("--hostname", "two.example.edu"), site) == [
        "kept .env (it exists; --force replaces it, keeping a copy)"]
    assert "one.example.edu" in (site / ".env").read_text()
    done = init.run(options("--hostname", "two.example.edu", "--force"), site)
    assert done[0].startswith("wrote .env (the old one is now .env.")
    assert "two.example.edu" in (site / ".env").read_text()
    assert "one.example.edu" in next(site.glob(".env.*.bak")).read_text()


def test_nothing_is_written_when_the_answers_would_not_start(site):
    with pytest.raises(SettingError, match="secret/shared-password: missing"):
        init.run(options("--auth", "shared-password"), site)
    with pytest.raises(SettingError, match="LABHUB_HOSTNAME: 'not a host' is not a host name"):
        init.run(options("--hostname", "not a host"), site)
    with pytest.raises(SettingError, match="--set NOPE=1: not NAME=VALUE"):
        init.run(options("--set", "NOPE=1"), site)
    assert not (site / ".env").exists()


def test_asks_for_what_is_not_given(monkeypatch):
    answers, asked = iter(["lab.example.edu", "alice,bob", "", "", "", ""]), []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt.split(" ")[0]) or next(answers))
    parser = argparse.ArgumentParser()
    init.add_arguments(parser)
    values = init.chosen_settings(parser.parse_args(["--auth", "ldap"]), ask=True)
    assert values == {"HOSTNAME": "lab.example.edu", "AUTH": "ldap", "ADMIN_USERS": "alice,bob"}
    assert asked == ["LABHUB_" + name for name in init.ASKED if name != "AUTH"]
