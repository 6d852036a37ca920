import pytest

from labhub import cli

COMMANDS = ("setup", "proxy-config", "check", "backup", "restore", "status", "homes", "upgrade", "init")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main([command, "--help"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: labhub {command}")


def test_paths_must_be_inside_the_labhub_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "SITE_DIR", tmp_path)
    assert cli._in_site("backups") == tmp_path / "backups"
    with pytest.raises(cli.SettingError, match="not inside the LabHub folder"):
        cli._in_site("../elsewhere")
