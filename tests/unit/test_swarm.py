"""Swarm mode's logic as data: what the settings refuse, how LabHub's confinement becomes a
service's spec, the reasons a start fails, GPUs as generic resources. tests/integration/test_swarm.py
runs it on a real two-node swarm."""

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from labhub import containers, gpu, hooks, settings, swarm, swarmspawner
from labhub.settings import SettingError

from contexts import hub_context


def load(**labhub):
    return settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})


@pytest.mark.parametrize("env, message", [
    ({}, "LABHUB_SWARM: swarm mode needs homes that every node reaches, but homes are Docker volumes"),
    ({"home_root": "/srv/homes", "hub_ssl": "true"}, "LABHUB_SWARM: hub-direct mode"),
])
def test_swarm_mode_refuses_what_it_cannot_do_in_one_line(env, message):
    with pytest.raises(SettingError) as e:
        load(swarm="true", **env)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_private_network_guard_is_on_by_default_in_swarm_mode_only():
    assert load(swarm="true", home_root="/srv/homes").block_private_networks is True
    assert load(swarm="true", home_root="/srv/homes", block_private_networks="false").block_private_networks is False
    assert load().block_private_networks is False
    assert load(block_private_networks="true").block_private_networks is True


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
    assert swarmspawner.explained("No such image: labhub/x:latest").endswith(
        "(copy LabHub's images to every node with `./labhub nodes push`; README, More than one machine)")
    assert "every node needs the host folders" in swarmspawner.explained(
        'invalid mount config for type "bind": bind source path does not exist: /srv/homes/ann')
    assert swarmspawner.explained("task: non-zero exit (1)") == "task: non-zero exit (1)"


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
    from jupyterhub.app import JupyterHub

    from labhub import spawner
    c = Config()
    spawner.configure(c, hub_context(load(swarm="true", home_root="/srv/homes")))
    assert c.JupyterHub.spawner_class == "labhub.swarmspawner.SwarmServerSpawner" and c.Spawner.poll_interval == 10
    resolve = JupyterHub.class_traits()["spawner_class"].validate  # as JupyterHub reads the name
    assert resolve(None, c.JupyterHub.spawner_class) is swarmspawner.SwarmServerSpawner
    c = Config()
    spawner.configure(c, hub_context())
    assert c.JupyterHub.spawner_class is spawner.PromptDockerSpawner


def test_node_addresses_are_every_ipv4_one_nodes_are_reached_at():
    listed = [{"Status": {"Addr": "198.18.0.2"}, "ManagerStatus": {"Addr": "198.18.0.9:2377"}},
              {"Status": {"Addr": "0.0.0.0"}}, {"Status": {"Addr": "127.0.0.1"}}, {"Status": {"Addr": "fd00::2"}},
              {"Status": {"Addr": "10.0.0.12"}}, {"Status": {}}]
    assert swarm.node_addresses(listed) == ["10.0.0.12", "198.18.0.2", "198.18.0.9"]


HUB_IMAGE = "labhub/hub:latest"


def probed(monkeypatch, says):
    """swarm._probe answering says(node host name, image, folders, command) on ENGINE's nodes; the probes made."""
    made = []

    def probe(engine, node, image, command=("true",), folders=(), cap_add=None):
        made.append((node.hostname, image, tuple(folders), tuple(command)))
        return says(node.hostname, image, folders, command)

    monkeypatch.setattr(swarm, "_probe", probe)
    return made


def test_check_names_every_problem_of_a_node_at_once(monkeypatch):
    def says(host, image, folders, command):
        if host == "gpu-box" and image == "labhub/jupyterlab-r:latest":
            return "No such image: labhub/jupyterlab-r:latest"
        if host == "gpu-box" and folders:
            return 'invalid mount config for type "bind": bind source path does not exist: /srv/homes'
        if command != ("true",):  # the IPsec probe
            return "task: non-zero exit (3)" if host == "main" else ""
        return ""

    made = probed(monkeypatch, says)
    s = load(swarm="true", home_root="/srv/homes")
    problems = swarm.node_problems(ENGINE, s, ["labhub/jupyterlab-base:latest", "labhub/jupyterlab-r:latest"], HUB_IMAGE)
    assert problems == [
        "node gpu-box: has no image labhub/jupyterlab-r:latest (so servers of it cannot start there); copy LabHub's "
        "images to every node with `./labhub nodes push` (README, More than one machine)",
        "node main: cannot encrypt the servers' networks (its kernel has no IPsec ESP with AES-GCM), so their traffic "
        "between nodes (logins' cookies, API tokens, kernel messages) crosses the lab's network in clear; load its "
        "kernel's IPsec modules (modprobe esp4 xt_policy) (README, More than one machine)",
        "LABHUB_HOME_ROOT: host folder /srv/homes is missing on node gpu-box; mount the shared storage there at the "
        "same path (README, More than one machine) (in .env, see .env.template)"]
    # The folders are looked for with an image the node has: the hub's first.
    assert ("gpu-box", HUB_IMAGE, ("/srv/homes",), ("true",)) in made


def test_a_node_without_any_of_labhubs_images_is_told_so_once_per_image(monkeypatch):
    probed(monkeypatch, lambda host, image, folders, command: f"No such image: {image}" if host == "gpu-box" else "")
    problems = swarm.node_problems(ENGINE, load(swarm="true", home_root="/srv/homes"), [], HUB_IMAGE)
    assert problems == [
        f"node gpu-box: has no image {HUB_IMAGE} (the hub's: the private-network guard runs it there, and the IPsec "
        "probe); copy LabHub's images to every node with `./labhub nodes push` (README, More than one machine)",
        "node gpu-box: its host folders were not looked for, as it has none of LabHub's images; copy LabHub's images "
        "to every node with `./labhub nodes push`"]
    # With the monitoring on, its image too.
    problems = swarm.node_problems(ENGINE, load(swarm="true", home_root="/srv/homes"), [], HUB_IMAGE,
                                   "labhub/monitoring:latest")
    assert ("node gpu-box: has no image labhub/monitoring:latest (the monitoring's: node-exporter runs it there); "
            "copy LabHub's images to every node with `./labhub nodes push` (README, More than one machine)") in problems


def test_networks_are_encrypted_while_every_node_can_each_node_looked_at_once(monkeypatch):
    can = {"main": "", "gpu-box": ""}
    made = probed(monkeypatch, lambda host, image, folders, command: can[host])
    encryption = swarm.Encryption(ENGINE, HUB_IMAGE)
    assert encryption.lacking() == {} and encryption.lacking() == {}
    assert sorted(host for host, *_ in made) == ["gpu-box", "main"]
    assert all(image == HUB_IMAGE and command[0] == "sh" for _, image, _, command in made)
    # A node that cannot, found later (undrained, or new): networks made from then on are in clear.
    encryption.problems.pop("gpu-box-id")
    can["gpu-box"] = "No such image: labhub/hub:latest"  # the probe could not run there
    assert encryption.lacking() == {"gpu-box": "No such image: labhub/hub:latest"}
    can["gpu-box"] = "task: non-zero exit (4)"
    assert encryption.lacking() == {"gpu-box": "No such image: labhub/hub:latest"}  # looked at a while later
    monkeypatch.setattr(swarm.time, "monotonic", lambda: 10**9)
    assert encryption.lacking() == {"gpu-box": "its kernel has no iptables policy match"}
    assert len(made) == 4
