"""What servers get of the site's files (tests/integration/test_bootstrap.py runs bootstrap.sh for
real; test_security.py and test_swarm.py look for the rest of the site's files from a server)."""

from dataclasses import replace
from types import SimpleNamespace

from traitlets.config import Config

from labhub import bootstrap, settings

from contexts import hub_context


def started(c, spawner) -> list[tuple[str, str]]:
    """(source, target) of the site's mounts that a start of the spawner gets."""
    c.Spawner.pre_spawn_hook(spawner)
    return [(m["source"], m["target"]) for m in spawner.mounts if m["target"].startswith(bootstrap.CONTEXT_MOUNT)]


def test_servers_get_the_script_and_welcome_only_and_the_sites_own_script_from_its_next_start(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap, "CONTEXT_DIR", tmp_path)
    c = Config()
    ctx = hub_context()
    bootstrap.configure(c, ctx)
    home = {"type": "bind", "source": "/homes/{username}", "target": "/home/jovyan"}
    spawner = SimpleNamespace(mounts=[home])
    site = ctx.stack.context_dir
    assert started(c, spawner) == [(f"{site}/bootstrap.sh.template", "/opt/labhub/context/bootstrap.sh"),
                                   (f"{site}/welcome", "/opt/labhub/context/welcome")]
    (tmp_path / "bootstrap.sh").write_text("echo the lab's own\n")  # no hub restart needed
    assert started(c, spawner)[0] == (f"{site}/bootstrap.sh", "/opt/labhub/context/bootstrap.sh")
    assert spawner.mounts[0] == home and len(spawner.mounts) == 3 and all(m["read_only"] for m in spawner.mounts[1:])


def test_in_swarm_mode_servers_mount_a_copy_of_those_two_in_the_home_root(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap, "CONTEXT_DIR", tmp_path)
    helpers = []
    stack = SimpleNamespace(context_dir="/lab/jupyterhub/context",
                            run_helper=lambda engine, command, **kw: helpers.append((command, kw)))
    ctx = replace(hub_context(settings.load({"LABHUB_SWARM": "true", "LABHUB_HOME_ROOT": "/srv/homes"})), stack=stack)
    c = Config()
    bootstrap.configure(c, ctx)
    (command, options), = helpers
    assert options["environment"] == {"SCRIPT": "bootstrap.sh.template"}
    assert "cp -r /context/welcome" in command[-1] and "jupyterhub_config.d" not in command[-1]
    assert started(c, SimpleNamespace(mounts=[])) == [
        ("/srv/homes/.labhub-site/bootstrap.sh", "/opt/labhub/context/bootstrap.sh"),
        ("/srv/homes/.labhub-site/welcome", "/opt/labhub/context/welcome")]
