import asyncio
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from labhub import containers, hooks, settings
from labhub.settings import SettingError

from contexts import hub_context


def spawner(name):
    return SimpleNamespace(user=SimpleNamespace(name=name))


def test_users_are_confined_and_listed_sudoers_are_not():
    s = settings.load({"LABHUB_SUDO_USERS": "maint", "LABHUB_PIDS_LIMIT": "512"})
    assert containers.host_config(s, "ann") == {
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "pids_limit": 512,
        "sysctls": {"net.ipv4.ip_unprivileged_port_start": "1024"}}  # ports below 1024: root's
    sudoer = containers.host_config(s, "maint")
    assert "security_opt" not in sudoer and sudoer["group_add"] == ["27"] and "NET_RAW" in sudoer["cap_drop"]


def test_sudo_needs_the_images_own_user():
    with pytest.raises(SettingError, match="^LABHUB_SUDO_USERS: sudo needs the image's own user"):
        settings.load({"LABHUB_SUDO_USERS": "maint", "LABHUB_USER_IDS": "per-user", "LABHUB_HOME_ROOT": "/homes"})


def test_every_concerns_host_config_is_kept_lists_joined():
    c = Config()
    c.DockerSpawner.extra_host_config = {"group_add": ["1234"]}  # e.g. the shared folder's group
    containers.configure(c, hub_context(settings.load({"LABHUB_SUDO_USERS": "maint"})))
    hooks.merge(c, "extra_host_config", lambda sp: {"device_requests": ["gpu"]} if sp.user.name == "maint" else {})
    config = c.DockerSpawner.extra_host_config
    assert config(spawner("ann")) == {"group_add": ["1234"], "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
                                      "pids_limit": 4096, "sysctls": containers.PRIVILEGED_PORTS}
    assert config(spawner("maint"))["group_add"] == ["1234", "27"]
    assert config(spawner("maint"))["device_requests"] == ["gpu"]


def test_hooks_all_run_in_the_order_added():
    c, ran = Config(), []

    async def later(spawner):
        ran.append("async")

    hooks.add_hook(c, "pre_spawn_hook", lambda spawner: ran.append("plain"))
    hooks.add_hook(c, "pre_spawn_hook", later)
    asyncio.run(c.Spawner.pre_spawn_hook(spawner("ann")))
    assert ran == ["plain", "async"]
