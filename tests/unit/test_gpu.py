"""GPU assignment against a simulated inventory, and the device requests the hub would send on a
GPU host, checked as data (this machine has no GPU; tests/integration covers the GPU-less path)."""

from types import SimpleNamespace

import pytest
from docker.types import DeviceRequest
from traitlets.config import Config

from labhub import gpu, nvidia, settings
from labhub.settings import SettingError

from contexts import STACK, hub_context


def spawner(user, server="", gpu_flavor=True):
    return SimpleNamespace(user=SimpleNamespace(name=user), name=server, gpu_flavor=gpu_flavor)


class Catalog:
    def chosen(self, spawner):
        return SimpleNamespace(gpu=spawner.gpu_flavor)


class Engine:
    def __init__(self, running=()):
        self.containers = SimpleNamespace(list=lambda filters: [SimpleNamespace(labels=labels) for labels in running])


def load(**labhub):
    return settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})


def test_no_two_servers_share_a_device_unless_sharing_is_allowed():
    pool = gpu.GpuPool(["0", "1", "2"], per_server=1)
    assert [pool.assign(s) for s in ("a/", "b/", "c/")] == [["0"], ["1"], ["2"]]
    assert pool.assign("a/") == ["0"]  # asking again changes nothing
    with pytest.raises(RuntimeError, match="all 3 GPUs are in use"):
        pool.assign("d/")
    pool.release("b/")
    assert pool.assign("d/") == ["1"]


def test_sharing_gives_the_least_used_devices():
    pool = gpu.GpuPool(["0", "1"], per_server=1, sharing=True)
    assert [pool.assign(s) for s in ("a/", "b/", "c/", "d/")] == [["0"], ["1"], ["0"], ["1"]]
    pool.release("a/")
    pool.release("c/")
    assert pool.assign("e/") == ["0"]


def test_two_per_server():
    pool = gpu.GpuPool(["0", "1", "2", "3"], per_server=2)
    assert pool.assign("a/") == ["0", "1"] and pool.assign("b/") == ["2", "3"]


def test_all_gpus_for_every_server_by_default():
    c = Config()
    c.DockerSpawner.extra_host_config = {"group_add": ["1234"]}
    gpu.configure(c, hub_context(load(), Engine(), Catalog(), gpus=["0", "1"]))
    assert c.DockerSpawner.extra_host_config == {  # the same for every server
        "group_add": ["1234"], "device_requests": [DeviceRequest(count=-1, capabilities=[["gpu"]])]}


def test_own_devices_per_gpu_server_as_the_hub_would_send_them():
    c = Config()
    c.DockerSpawner.extra_create_kwargs = lambda s: {"user": "20001:1000"}
    held = {"org.labhub.server": "old/", "org.labhub.gpus": "0"}  # a server from before a hub restart
    gpu.configure(c, hub_context(load(gpus_per_server="1"), Engine([held]), Catalog(), gpus=["0", "1"]))
    create, host = c.DockerSpawner.extra_create_kwargs, c.DockerSpawner.extra_host_config

    alice = spawner("alice")
    assert create(alice) == {"user": "20001:1000",
                             "labels": {"org.labhub.gpus": "1", "org.labhub.server": "alice/"}}
    assert host(alice) == {"device_requests": [DeviceRequest(device_ids=["1"], capabilities=[["gpu"]])]}

    plain = spawner("bob", gpu_flavor=False)  # a CPU flavor takes no device
    assert create(plain) == {"user": "20001:1000"} and host(plain) == {}

    c.Spawner.post_stop_hook(alice)
    assert create(spawner("carol", "big")) ["labels"]["org.labhub.gpus"] == "1"


def test_on_without_gpus_refuses_to_start(monkeypatch):
    monkeypatch.setattr(nvidia, "detect", lambda info, engine, image: [])
    with pytest.raises(SettingError, match="^LABHUB_GPUS: on, but the Docker engine offers no NVIDIA GPU"):
        gpu.available({}, None, STACK, load(gpus="on"))
    assert gpu.available({}, None, STACK, load(gpus="auto")) == []


def test_detect_asks_nothing_of_an_engine_without_the_nvidia_runtime():
    engine = SimpleNamespace(containers=SimpleNamespace(run=lambda *a, **k: pytest.fail("started a container")))
    assert nvidia.detect({"Runtimes": {"runc": {}}}, engine, None) == []
