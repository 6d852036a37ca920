"""The one rule by which configure steps add to the same spawner setting."""

from types import SimpleNamespace

from traitlets.config import Config

from labhub import hooks


def test_values_stay_values_dicts_take_keys_and_lists_are_joined():
    c = Config()
    hooks.merge(c, "volumes", {"home": "/home/jovyan"})
    hooks.merge(c, "volumes", {"/ctx": {"bind": "/opt/labhub/context", "mode": "ro"}})
    hooks.merge(c, "mounts", [{"target": "/data"}])
    hooks.merge(c, "mounts", [{"target": "/shared"}])
    hooks.merge(c, "tornado_settings", {"a": 1}, section="JupyterHub")
    assert c.DockerSpawner.volumes == {"home": "/home/jovyan", "/ctx": {"bind": "/opt/labhub/context", "mode": "ro"}}
    assert c.DockerSpawner.mounts == [{"target": "/data"}, {"target": "/shared"}]
    assert c.JupyterHub.tornado_settings == {"a": 1}


def test_a_function_of_the_spawner_makes_the_setting_one_evaluated_per_server_in_order():
    c = Config()
    hooks.merge(c, "extra_host_config", {"group_add": ["1234"], "pids_limit": 10})
    hooks.merge(c, "extra_host_config", lambda spawner: {"group_add": [spawner.gid], "pids_limit": 20})
    hooks.merge(c, "extra_host_config", {"cap_drop": ["ALL"]})
    config = c.DockerSpawner.extra_host_config
    assert config(SimpleNamespace(gid="27")) == {"group_add": ["1234", "27"], "pids_limit": 20, "cap_drop": ["ALL"]}
    assert config(SimpleNamespace(gid="5"))["group_add"] == ["1234", "5"]  # nothing carried over between servers


def test_dicts_within_are_merged_too():
    c = Config()
    hooks.merge(c, "extra_create_kwargs", {"labels": {"org.labhub.guard": "lab"}, "user": "1000:1000"})
    hooks.merge(c, "extra_create_kwargs", lambda spawner: {"labels": {"org.labhub.gpus": spawner.gpus}})
    assert c.DockerSpawner.extra_create_kwargs(SimpleNamespace(gpus="0")) == {
        "labels": {"org.labhub.guard": "lab", "org.labhub.gpus": "0"}, "user": "1000:1000"}
