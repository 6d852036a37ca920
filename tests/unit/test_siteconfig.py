"""The site's additions to the hub config: jupyterhub_config.d files, and copies of the former
template (the real hub loads them in tests/integration/test_front_door.py)."""

import importlib.resources
from types import SimpleNamespace

import pytest
from traitlets.config import Config, PyFileConfigLoader

from labhub import siteconfig
from labhub.settings import SettingError

from contexts import hub_context

FORMER_TEMPLATE = importlib.resources.files("labhub").joinpath("former_template.txt").read_text()


def former_copy(tmp_path, own_lines: str):
    """An admin's copy of the former template with their own lines added, as it sits in context/."""
    copy = tmp_path / "jupyterhub_config.py"
    copy.write_text(FORMER_TEMPLATE + own_lines)
    return copy


def test_of_a_former_copy_only_the_admins_own_lines_run(tmp_path):
    own = 'c.Spawner.start_timeout = 300\nc.JupyterHub.template_vars = {"announcement": s.hostname}\n'
    copy = former_copy(tmp_path, own)
    first_own = FORMER_TEMPLATE.count("\n") + 1
    assert [st.lineno for st in siteconfig.own_statements(copy)] == [first_own, first_own + 1]
    c = Config()
    # The template's lines (old signatures, engine calls) would fail here: none of them runs.
    siteconfig.run_former_copy(c, hub_context(catalog=SimpleNamespace()), copy)
    assert c.Spawner.start_timeout == 300 and c.JupyterHub.template_vars == {"announcement": "localhost"}
    assert f"(line {first_own}, {first_own + 1})" in siteconfig.former_copy_advice(copy)


def test_a_former_copys_failing_line_is_named_in_one_line(tmp_path):
    copy = former_copy(tmp_path, "c.Spawner.start_timeout = undefined_name\n")
    with pytest.raises(SettingError) as refused:
        siteconfig.run_former_copy(Config(), hub_context(catalog=SimpleNamespace()), copy)
    line = FORMER_TEMPLATE.count("\n") + 1
    assert str(refused.value).startswith(f"jupyterhub/context/jupyterhub_config.py: line {line}: NameError: ")
    assert "move your own lines into jupyterhub/context/jupyterhub_config.d/site.py" in str(refused.value)


def site_dir(tmp_path, **files):
    folder = tmp_path / siteconfig.SITE_CONFIG_DIR
    folder.mkdir()
    for name, text in files.items():
        (folder / name.replace("_", "-", 1)).write_text(text)
    return tmp_path


def loaded(context_dir) -> Config:
    """The hub's config file's view, loaded by JupyterHub's loader: LabHub's values (a plain one,
    a dict, a function of the spawner), then the site files."""
    main = context_dir / "main.py"
    main.write_text("from labhub import hooks, siteconfig\nimport pathlib\n"
                    "c.Spawner.start_timeout = 60\nc.DockerSpawner.environment = {'A': '1'}\n"
                    "hooks.merge(c, 'extra_host_config', lambda spawner: {'cap_drop': ['ALL']})\n"
                    f"siteconfig.load_site_files(c, pathlib.Path({str(context_dir)!r}))\n")
    return PyFileConfigLoader("main.py", str(context_dir)).load_config()


def test_site_files_load_in_name_order_and_win(tmp_path):
    context = site_dir(tmp_path, **{
        "10_first.py": "c = get_config()\nc.Spawner.start_timeout = 200\n",
        "20_second.py": "c.Spawner.start_timeout = 300\nc.DockerSpawner.environment.update({'B': '2'})\n"
                        "from labhub import hooks\nhooks.merge(c, 'extra_host_config', {'pids_limit': 100})\n",
        "notes.md": "not loaded ("})
    c = loaded(context)
    assert c.Spawner.start_timeout == 300
    assert c.DockerSpawner.environment == {"A": "1", "B": "2"}  # added to, not replaced
    assert c.DockerSpawner.extra_host_config(None) == {"cap_drop": ["ALL"], "pids_limit": 100}


def test_a_broken_site_file_stops_the_hub_with_one_line(tmp_path):
    context = site_dir(tmp_path, **{"50_site.py": "c.Spawner.start_timeout = 300\nc.Spawner.cmd = unknown\n"})
    with pytest.raises(SettingError) as refused:
        loaded(context)
    assert str(refused.value) == ("jupyterhub/context/jupyterhub_config.d/50-site.py: line 2: NameError: "
                                  "name 'unknown' is not defined; fix it, or remove the file")
    (context / siteconfig.SITE_CONFIG_DIR / "50-site.py").write_text("if True\n")
    assert siteconfig.site_file_problems(context) == [
        "jupyterhub/context/jupyterhub_config.d/50-site.py: line 1: expected ':'; fix it, or remove the file"]
