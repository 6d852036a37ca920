import asyncio
import ipaddress
from types import SimpleNamespace

import pytest
from docker.errors import NotFound
from traitlets.config import Config

from labhub import network, settings
from labhub.settings import SettingError

from contexts import hub_context
from labhub.stack import Stack

STACK = Stack(project="lab", hub_alias="hub", hub_image="img", hub_image_name="labhub/hub:latest", context_dir="/c")


def net(text):
    return ipaddress.ip_network(text)


def test_each_server_gets_the_first_free_29_of_the_range():
    pool = net("10.213.0.0/16")
    assert network.free_subnet(pool, []) == net("10.213.0.0/29")
    assert network.free_subnet(pool, [net("10.213.0.0/29"), net("10.213.0.16/28")]) == net("10.213.0.8/29")
    # Another network on the engine covering the whole range leaves nothing.
    assert network.free_subnet(pool, [net("10.0.0.0/8")]) is None


def test_in_swarm_mode_each_server_gets_a_28():
    # Each node a server's overlay network reaches takes an address there too.
    pool = net("10.213.0.0/16")
    assert network.free_subnet(pool, [net("10.213.0.0/29")], network.SWARM_SUBNET_PREFIX) == net("10.213.0.16/28")


def test_used_subnets_are_every_ipv4_subnet_on_the_engine():
    listed = [{"IPAM": {"Config": [{"Subnet": "172.18.0.0/16"}, {"Subnet": "fd00::/64"}]}},
              {"IPAM": {"Config": None}}, {"IPAM": None}]
    engine = SimpleNamespace(api=SimpleNamespace(networks=lambda: listed))
    assert network.used_subnets(engine) == [net("172.18.0.0/16")]


def test_a_servers_network_is_named_after_its_container_and_sorts_after_the_compose_network():
    name = network.server_network(STACK, SimpleNamespace(container_name="lab-user-jo-2danne--project"))
    assert name == "lab_user-jo-2danne--project" and name > "lab_default"


def fake_server_networks(monkeypatch, **methods):
    """ServerNetworks with an engine of nothing: its methods replaced (recover by default)."""
    def init(self, engine, stack, pool, with_proxy, swarm=False, encryption=None):
        self.with_proxy = with_proxy
    for name, fake in {"__init__": init, "recover": lambda self: None, "front_ip": lambda self: "172.20.0.3",
                       **methods}.items():
        monkeypatch.setattr(network.ServerNetworks, name, fake)


def test_servers_reach_the_hub_as_hub_on_their_network(monkeypatch):
    fake_server_networks(monkeypatch)
    c = Config()
    network.configure(c, hub_context())
    assert (c.Spawner.hub_connect_url, c.JupyterHub.hub_ip) == ("http://hub:8081", "0.0.0.0")
    assert "bind_url" not in c.JupyterHub  # nothing of the hub's proxy: chp serves (labhub.chp)
    assert callable(c.Spawner.pre_spawn_hook) and callable(c.Spawner.post_stop_hook)


def test_hub_direct_mode_serves_its_own_proxy_where_its_port_is_published(monkeypatch):
    fake_server_networks(monkeypatch)
    c = Config()
    network.configure(c, hub_context(settings.load({"LABHUB_HUB_SSL": "true"})))
    assert c.JupyterHub.bind_url == "http://172.20.0.3:8000"


class FakeNetwork:
    def __init__(self, name, containers):
        self.name, self.removed, self.aliases = name, False, {}
        self.attrs = {"Containers": {c: {"IPv4Address": "10.213.0.5/29"} for c in containers},
                      "IPAM": {"Config": [{"Subnet": "10.213.0.0/29", "Gateway": "10.213.0.1"}]}}

    def connect(self, container, aliases, ipv4_address=None):
        self.attrs["Containers"][container.id] = {"IPv4Address": f"{ipv4_address or '10.213.0.6'}/29"}
        self.aliases[container.id] = aliases

    def disconnect(self, container, force):
        self.attrs["Containers"].pop(container.id)

    def reload(self):
        pass

    def remove(self):
        self.removed = True


def kept_networks(proxy=None, encryption=None, **containers_by_name) -> tuple[network.ServerNetworks, dict]:
    """ServerNetworks on an engine holding these networks (name -> ids of containers on it), and
    the chp container `proxy` (an id) if given; a new one is recorded in the dict when made."""
    containers = {"hub": SimpleNamespace(id="hub", name="lab-hub-1")}
    if proxy:
        containers[proxy] = SimpleNamespace(id=proxy, name="lab-chp-1")
    made = {name: FakeNetwork(name, ids) for name, ids in containers_by_name.items()}

    def get(name):
        if name not in made:
            raise NotFound(name)
        return made[name]

    def create(name, options, ipam, **_):
        made[name] = FakeNetwork(name, [])
        made[name].options = options
        made[name].attrs["IPAM"]["Config"][0]["IPRange"] = ipam["Config"][0]["IPRange"]
        return made[name]

    engine = SimpleNamespace(containers=SimpleNamespace(get=lambda ref: containers.get(ref, containers["hub"])),
                             networks=SimpleNamespace(get=get, list=lambda filters: list(made.values()), create=create),
                             api=SimpleNamespace(networks=lambda: []))
    stack = SimpleNamespace(project="lab", hub_alias="hub",
                            service_containers=lambda engine, service: [containers[proxy]] if proxy else [])
    return network.ServerNetworks(engine, stack, net("10.213.0.0/16"), with_proxy=True, swarm=bool(encryption),
                                  encryption=encryption), made


def test_the_hub_keeps_one_address_the_engine_never_gives_out():
    networks, made = kept_networks(lab_user_jo=[])
    made["lab_user_jo"].attrs["IPAM"]["Config"][0]["IPRange"] = "10.213.0.4/30"
    assert networks.create("lab_user_jo")[0] == "10.213.0.2"  # the first after the gateway, below the range
    # A network made before: the hub goes where the engine puts it.
    networks, made = kept_networks(lab_user_al=[])
    assert networks.create("lab_user_al")[0] == "10.213.0.6"


def test_in_swarm_mode_a_network_is_encrypted_when_every_node_can():
    lacking = {}
    networks, made = kept_networks(encryption=SimpleNamespace(lacking=lambda: lacking))
    networks.create("lab_user_jo")
    lacking["gpu-box"] = "its kernel has no IPsec ESP with AES-GCM"
    networks.create("lab_user_al")
    assert (made["lab_user_jo"].options, made["lab_user_al"].options) == ({"encrypted": ""}, None)


class AllocatedLater(FakeNetwork):
    """A swarm's new overlay network as the engine shows it at first: with no subnet until Swarm's
    allocator has given it one (after `reloads` looks; never if negative)."""

    def __init__(self, name, reloads):
        super().__init__(name, [])
        self.config, self.attrs["IPAM"]["Config"], self.reloads = self.attrs["IPAM"]["Config"], None, reloads

    def reload(self):
        self.reloads -= 1
        if self.reloads == 0:
            self.attrs["IPAM"]["Config"] = self.config


@pytest.mark.parametrize("reloads", [2, -1])
def test_a_swarm_network_is_joined_once_swarm_has_given_it_its_subnet(monkeypatch, reloads):
    monkeypatch.setattr(network.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(network, "ALLOCATION_SECONDS", 1)
    networks, made = kept_networks(encryption=SimpleNamespace(lacking=lambda: {}))
    networks.engine.networks.create = lambda name, **_: made.setdefault(name, AllocatedLater(name, reloads))
    if reloads > 0:
        assert networks.create("lab_user_jo") == ("10.213.0.6", "10.213.0.1")
    else:  # a failed start that says so
        with pytest.raises(RuntimeError, match="Swarm gave network lab_user_jo no subnet within 1 s"):
            networks.create("lab_user_jo")


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


def test_the_hub_and_the_proxy_join_a_new_servers_network_and_leave_it_last():
    networks, made = kept_networks(proxy="chp1", lab_user_jo=[])
    networks.create("lab_user_jo")
    jo = made["lab_user_jo"]
    assert jo.aliases == {"hub": ["hub"], "chp1": []}  # the proxy has no name there: nothing to ask it for
    assert not networks._serves(jo)  # only the hub and the proxy: no server
    networks.keep("lab_user_jo", since=0.0)
    assert networks.remove_unused(network.KEEP_SECONDS) == ["lab_user_jo"]
    assert jo.removed and jo.attrs["Containers"] == {}


def test_a_proxy_started_anew_joins_every_servers_network():
    # chp was recreated: the new container is on none of the servers' networks yet.
    networks, made = kept_networks(proxy="chp2", lab_user_jo=["hub", "jo's server"], lab_user_al=["hub", "al's server"])
    networks.proxy_started("chp2")
    assert networks.proxy.id == "chp2"
    assert all(set(made[name].attrs["Containers"]) >= {"hub", "chp2"} for name in made)


def test_a_servers_stop_starts_its_networks_day(monkeypatch):
    kept, swept = [], []
    fake_server_networks(monkeypatch, keep=lambda self, name, since: kept.append(name),
                         remove_unused=lambda self, now: swept.append(now))
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
