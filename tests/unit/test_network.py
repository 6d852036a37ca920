import asyncio
import ipaddress
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from labhub import network, settings
from labhub.settings import SettingError

from contexts import hub_context
from labhub.stack import Stack

STACK = Stack(project="lab", hub_alias="hub", hub_image="img", context_dir="/c")


def net(text):
    return ipaddress.ip_network(text)


def test_each_server_gets_the_first_free_29_of_the_range():
    pool = net("10.213.0.0/16")
    assert network.free_subnet(pool, []) == net("10.213.0.0/29")
    assert network.free_subnet(pool, [net("10.213.0.0/29"), net("10.213.0.16/28")]) == net("10.213.0.8/29")
    # Another network on the engine covering the whole range leaves nothing.
    assert network.free_subnet(pool, [net("10.0.0.0/8")]) is None


def test_used_subnets_are_every_ipv4_subnet_on_the_engine():
    listed = [{"IPAM": {"Config": [{"Subnet": "172.18.0.0/16"}, {"Subnet": "fd00::/64"}]}},
              {"IPAM": {"Config": None}}, {"IPAM": None}]
    engine = SimpleNamespace(api=SimpleNamespace(networks=lambda: listed))
    assert network.used_subnets(engine) == [net("172.18.0.0/16")]


def test_a_servers_network_is_named_after_its_container_and_sorts_after_the_compose_network():
    name = network.server_network(STACK, SimpleNamespace(container_name="lab-user-jo-2danne--project"))
    assert name == "lab_user-jo-2danne--project" and name > "lab_default"


def test_proxy_api_on_loopback_and_its_public_side_where_traefik_is(monkeypatch):
    monkeypatch.setattr(network.ServerNetworks, "__init__", lambda self, *a: None)
    monkeypatch.setattr(network.ServerNetworks, "recover", lambda self: None)
    monkeypatch.setattr(network.ServerNetworks, "front_ip", lambda self: "172.20.0.3")
    c = Config()
    network.configure(c, hub_context())
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.JupyterHub.bind_url == "http://172.20.0.3:8000"
    assert (c.Spawner.hub_connect_url, c.JupyterHub.hub_connect_ip) == ("http://hub:8081", "127.0.0.1")
    assert callable(c.Spawner.pre_spawn_hook) and callable(c.Spawner.post_stop_hook)


class FakeNetwork:
    def __init__(self, name, containers):
        self.name, self.removed = name, False
        self.attrs = {"Containers": {c: {"IPv4Address": "10.213.0.2/29"} for c in containers},
                      "IPAM": {"Config": [{"Gateway": "10.213.0.1"}]}}

    def disconnect(self, container, force):
        self.attrs["Containers"].pop(container.id)

    def remove(self):
        self.removed = True


def kept_networks(**containers_by_name) -> tuple[network.ServerNetworks, dict]:
    """ServerNetworks on an engine holding these networks (name -> ids of containers on it)."""
    hub = SimpleNamespace(id="hub")
    made = {name: FakeNetwork(name, ids) for name, ids in containers_by_name.items()}
    engine = SimpleNamespace(containers=SimpleNamespace(get=lambda _: hub),
                             networks=SimpleNamespace(get=lambda name: made[name]))
    return network.ServerNetworks(engine, STACK, net("10.213.0.0/16")), made


def test_a_stopped_servers_network_is_kept_a_day_then_removed():
    networks, made = kept_networks(lab_user_jo=["hub"])
    networks.keep("lab_user_jo", since=1000.0)
    assert networks.remove_unused(1000.0 + network.KEEP_SECONDS - 1) == []
    assert networks.remove_unused(1000.0 + network.KEEP_SECONDS) == ["lab_user_jo"]
    assert made["lab_user_jo"].removed and made["lab_user_jo"].attrs["Containers"] == {}
    assert networks.remove_unused(1000.0 + 2 * network.KEEP_SECONDS) == []  # once


def test_a_network_used_again_is_not_removed():
    networks, made = kept_networks(lab_user_jo=["hub"], lab_user_al=["hub", "al's server"])
    networks.keep("lab_user_jo", since=0.0)
    networks.keep("lab_user_al", since=0.0)
    networks.create("lab_user_jo")  # jo starts again; al's server runs (a hub that missed its start)
    assert networks.remove_unused(network.KEEP_SECONDS) == []
    assert not made["lab_user_jo"].removed and not made["lab_user_al"].removed


def test_a_servers_stop_starts_its_networks_day(monkeypatch):
    kept, swept = [], []
    for name, fake in {"__init__": lambda self, *a: None, "recover": lambda self: None,
                       "front_ip": lambda self: "172.20.0.3", "keep": lambda self, name, since: kept.append(name),
                       "remove_unused": lambda self, now: swept.append(now)}.items():
        monkeypatch.setattr(network.ServerNetworks, name, fake)
    c = Config()
    network.configure(c, hub_context())

    async def stop():
        c.Spawner.post_stop_hook(SimpleNamespace(container_name="lab-user-jo"))
        await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()})  # the sweep, in a thread

    asyncio.run(stop())
    assert kept == ["lab_user-jo"] and len(swept) == 1


@pytest.mark.parametrize("value", ["10.213.0.0/29", "not-a-range", "fd00::/64"])
def test_user_subnets_must_be_an_ipv4_range_of_a_few_networks(value):
    with pytest.raises(SettingError, match="^LABHUB_USER_SUBNETS: .* is not an IPv4 range of /28 or larger"):
        settings.load({"LABHUB_USER_SUBNETS": value})
