"""The storage step's spawner settings: each user's cluster area kept from the others by a group
of its own, made (or, if an older LabHub made it open, closed) before their server starts. On the
host's files, with two users in the default mode: tests/integration/test_storage.py."""

import asyncio
import dataclasses
import logging
from types import SimpleNamespace

from traitlets.config import Config

from labhub import settings, storage

from contexts import STACK, hub_context


class Helpers:
    """The stack's helper containers, recorded; each prints `out`."""

    def __init__(self, out: bytes = b""):
        self.runs, self.out = [], out

    def __call__(self, engine, command, mounts):
        self.runs.append((command[4:], [(m["Target"], m["Source"]) for m in mounts]))
        return self.out


def configured(tmp_path, monkeypatch, helpers=None, **labhub) -> Config:
    monkeypatch.setattr(storage, "USER_IDS_FILE", tmp_path / "user-ids.json")
    stack = SimpleNamespace(home_volume=STACK.home_volume, run_helper=helpers or Helpers())
    ctx = dataclasses.replace(hub_context(settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})), stack=stack)
    c = Config()
    storage.configure(c, ctx)
    return c


def server(name: str):
    return SimpleNamespace(escaped_name=name, log=logging.getLogger("test"))


def test_in_the_default_mode_every_server_is_uid_1000_with_the_group_of_its_own_cluster_area(tmp_path, monkeypatch):
    c = configured(tmp_path, monkeypatch, cluster_dir="/cluster")
    groups = {name: c.DockerSpawner.extra_host_config(server(name))["group_add"] for name in ("ann", "bob", "ann")}
    assert groups == {"ann": ["20000"], "bob": ["20001"]}
    assert c.DockerSpawner.extra_create_kwargs(server("bob")) == {"user": "1000:1000"}
    assert (tmp_path / "user-ids.json").exists()  # kept in the hub's state: the same group after a restart


def test_without_a_cluster_tree_no_group_and_no_ids_are_given(tmp_path, monkeypatch):
    c = configured(tmp_path, monkeypatch, home_root="/homes")
    assert "extra_host_config" not in c.DockerSpawner
    asyncio.run(c.Spawner.pre_spawn_hook(server("ann")))
    assert not (tmp_path / "user-ids.json").exists()


def test_areas_are_made_in_one_helper_the_cluster_one_root_owned_with_the_users_group(tmp_path, monkeypatch):
    helpers = Helpers()
    c = configured(tmp_path, monkeypatch, helpers, home_root="/homes", cluster_dir="/cluster")
    asyncio.run(c.Spawner.pre_spawn_hook(server("jo-2danne")))
    assert helpers.runs == [(
        ["/area/0/jo-2danne", "1000", "1000", "0700", "",  # the home: the user's, as ever
         "/area/1/jo-2danne", "0", "20000", "2770", "1000:1000"],  # the area: its group's; uid 1000's before
        [("/area/0", "/homes"), ("/area/1", "/cluster")])]


def test_per_user_ids_are_the_uid_and_the_areas_group(tmp_path, monkeypatch):
    helpers = Helpers()
    c = configured(tmp_path, monkeypatch, helpers, home_root="/homes", cluster_dir="/cluster", user_ids="per-user")
    asyncio.run(c.Spawner.pre_spawn_hook(server("ann")))
    assert helpers.runs[0][0][:9] == ["/area/0/ann", "20000", "1000", "0700", "", "/area/1/ann", "0", "20000", "2770"]
    assert c.DockerSpawner.extra_create_kwargs(server("ann")) == {"user": "20000:1000"}
    assert c.DockerSpawner.extra_host_config(server("ann")) == {"group_add": ["20000"]}


def test_an_area_an_older_labhub_left_open_is_closed_and_logged(tmp_path, monkeypatch, caplog):
    c = configured(tmp_path, monkeypatch, Helpers(b"/area/0/ann\n"), cluster_dir="/cluster")
    with caplog.at_level(logging.WARNING):
        asyncio.run(c.Spawner.pre_spawn_hook(server("ann")))
    assert caplog.messages == ["labhub: /cluster/ann: made by an older LabHub, owned by 1000:1000 (open to every "
                               "server with that uid); now 0:20000 mode 2770, its user's alone"]
