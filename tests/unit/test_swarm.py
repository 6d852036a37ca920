"""Swarm mode's logic as data: what the settings refuse, how LabHub's confinement becomes a
service's spec, the reasons a start fails, GPUs as generic resources. tests/integration/test_swarm.py
runs it on a real two-node swarm."""

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from labhub import containers, gpu, hooks, settings, swarm
from labhub.settings import SettingError

from contexts import hub_context


def load(**labhub):
    return settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})


@pytest.mark.parametrize("env, message", [
    ({}, "LABHUB_SWARM: swarm mode needs homes that every node reaches, but homes are Docker volumes"),
    ({"home_root": "/srv/homes", "block_private_networks": "true"},
     "LABHUB_BLOCK_PRIVATE_NETWORKS: not available in swarm mode yet; set it to false"),
    ({"home_root": "/srv/homes", "hub_ssl": "true"}, "LABHUB_SWARM: hub-direct mode"),
])
def test_swarm_mode_refuses_what_it_cannot_do_in_one_line(env, message):
    with pytest.raises(SettingError) as e:
        load(swarm="true", **env)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_hub_engine_must_be_a_swarm_manager():
    with pytest.raises(SettingError, match="LABHUB_SWARM: true, but the hub's Docker engine is not a swarm manager; "
                                           "run `docker swarm init`"):
        swarm.check_manager({"Swarm": {"LocalNodeState": "inactive"}})
    swarm.check_manager({"Swarm": {"ControlAvailable": True}})


@pytest.mark.parametrize("user, sudo", [("ann", False), ("root-ish", True)])
def test_the_confinement_of_one_machine_becomes_the_services(user, sudo):
    s = load(sudo_users="root-ish" if sudo else "")
    # What the hub's steps merge for one server: labhub.containers', and the shared folder's group.
    options = swarm.container_options(hooks.merged(containers.host_config(s, user), {"group_add": ["100"]}))
    ports = {"sysctls": containers.PRIVILEGED_PORTS}
    if sudo:
        assert options == {"cap_drop": ["NET_RAW", "MKNOD"], "groups": [containers.SUDO_GID, "100"], **ports}
    else:
        assert options == {"cap_drop": ["ALL"], "privileges": {"NoNewPrivileges": True}, "groups": ["100"], **ports}


def test_host_config_a_service_cannot_carry_is_refused_not_dropped():
    with pytest.raises(SettingError, match="extra_host_config shm_size: not supported in swarm mode"):
        swarm.container_options({"cap_drop": ["ALL"], "shm_size": "1G"})
    with pytest.raises(SettingError, match="seccomp=unconfined"):
        swarm.container_options({"security_opt": ["seccomp=unconfined"]})


def test_a_refused_task_says_what_to_do():
    assert swarm.explained("No such image: labhub/x:latest").endswith(
        "(copy the user images to every node with `./labhub nodes push`; README, More than one machine)")
    assert "every node needs the host folders" in swarm.explained(
        'invalid mount config for type "bind": bind source path does not exist: /srv/homes/ann')
    assert swarm.explained("task: non-zero exit (1)") == "task: non-zero exit (1)"


def node(hostname, role="worker", labels=None, gpus=(), state="ready", availability="active"):
    generic = [{"NamedResourceSpec": {"Kind": swarm.GPU_KIND, "Value": g}} for g in gpus]
    return {"ID": hostname + "-id", "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
            "Status": {"State": state},
            "Description": {"Hostname": hostname, "Resources": {"NanoCPUs": 4e9, "MemoryBytes": 16 * 2**30,
                                                                "GenericResources": generic}}}


ENGINE = SimpleNamespace(api=SimpleNamespace(nodes=lambda: [
    node("gpu-box", gpus=("GPU-a", "GPU-b")), node("main", role="manager"),
    node("old", labels={swarm.SERVERS_LABEL: "no"}, gpus=("GPU-c",)), node("gone", state="down", gpus=("GPU-d",))]))


def test_nodes_manager_first_and_only_those_taking_servers_count():
    assert [n.hostname for n in swarm.nodes(ENGINE)] == ["main", "gone", "gpu-box", "old"]
    assert [n.hostname for n in swarm.server_nodes(ENGINE)] == ["main", "gpu-box"]


def test_gpus_are_the_generic_resources_of_nodes_that_take_servers():
    s = load(swarm="true", home_root="/srv/homes", gpus_per_server="1")
    assert gpu.available({}, ENGINE, None, s) == ["gpu-box:GPU-a", "gpu-box:GPU-b"]
    with pytest.raises(SettingError, match="LABHUB_GPUS_PER_SERVER: all, but in swarm mode .*; set a number, e.g. 1"):
        gpu.available({}, ENGINE, None, load(swarm="true", home_root="/srv/homes"))


def test_a_gpu_flavor_asks_swarm_for_its_gpus():
    s = load(swarm="true", home_root="/srv/homes", gpus_per_server="2")
    catalog = SimpleNamespace(chosen=lambda spawner: SimpleNamespace(gpu=spawner.gpu_flavor))
    c = Config()
    gpu.configure(c, hub_context(s, catalog=catalog, gpus=["gpu-box:GPU-a", "gpu-box:GPU-b"]))
    resources = c.SwarmServerSpawner.generic_resources
    assert resources(SimpleNamespace(gpu_flavor=True)) == {swarm.GPU_KIND: 2}
    assert resources(SimpleNamespace(gpu_flavor=False)) == {}
    assert "extra_host_config" not in c.DockerSpawner  # no device requests: services have none


def test_gpus_named_by_id_or_counted():
    assert swarm.gpu_ids([{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-1"}},
                          {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}},
                          {"DiscreteResourceSpec": {"Kind": "FPGA", "Value": 1}}]) == ("GPU-1", "0", "1")


def test_drained_nodes_are_kept_off_by_id_fixed_at_the_start():
    assert swarm.placement_constraints(ENGINE.api.nodes()) == ["node.id!=old-id"]


def test_swarm_mode_picks_the_swarm_spawner():
    from labhub import spawner
    c = Config()
    spawner.configure(c, hub_context(load(swarm="true", home_root="/srv/homes")))
    assert c.JupyterHub.spawner_class is swarm.SwarmServerSpawner and c.Spawner.poll_interval == 10
    c = Config()
    spawner.configure(c, hub_context())
    assert c.JupyterHub.spawner_class is spawner.PromptDockerSpawner
