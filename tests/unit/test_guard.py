"""The private-network guard's logic: its rules as the helper's shell runs them (against an
iptables that records), what the hub tells each server, and the agent service in swarm mode.
tests/integration/test_security.py and test_swarm.py attack it on the real stack."""

import asyncio
import os
import subprocess
from types import SimpleNamespace

import pytest
from docker.errors import NotFound
from traitlets.config import Config

from labhub import guard, settings

from contexts import STACK, hub_context

# iptables says whether the chain is there; iptables-restore records the rules it is given.
FAKE_IPTABLES = """#!/bin/sh
[ -e "$LOG.chain" ]
"""
FAKE_RESTORE = """#!/bin/sh
[ "$*" = "-w --noflush" ] || exit 2
cat >> "$LOG" && touch "$LOG.chain"
"""


def run_rules(tmp_path, hub: str, block: str) -> list[str]:
    """The rules the helper's shell hands iptables-restore, as lines."""
    for name, script in (("iptables", FAKE_IPTABLES), ("iptables-restore", FAKE_RESTORE)):
        (tmp_path / name).write_text(script)
        (tmp_path / name).chmod(0o755)
    log = tmp_path / "rules"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "LOG": str(log), "HUB": hub, "BLOCK": block}
    subprocess.run(["sh", "-c", guard.RULES], env=env, check=True)
    return log.read_text().splitlines() if log.exists() else []


def test_the_rules_let_the_hub_through_shut_the_nodes_before_dns_and_take_force_together(tmp_path):
    rules = run_rules(tmp_path, "10.213.0.2", "198.18.0.2 198.18.0.3")
    at = rules.index
    assert rules[:2] == ["*filter", ":labhub-guard - [0:0]"] and rules[-2:] == ["-A OUTPUT -j labhub-guard", "COMMIT"]
    assert at("-A labhub-guard -d 10.213.0.2 -j RETURN") < at("-A labhub-guard -d 198.18.0.2 -j DROP")
    # A node's name server is no way through: the nodes are shut before port 53 is let out.
    assert at("-A labhub-guard -d 198.18.0.3 -j DROP") < at("-A labhub-guard -p udp --dport 53 -j RETURN")
    for shut in ("198.18.0.2", "198.18.0.3", *guard.PRIVATE_RANGES):
        assert at(f"-A labhub-guard -d {shut} -p tcp -j REJECT --reject-with tcp-reset") > 0
    # A second helper for the same container (the agent looked again) changes nothing.
    assert run_rules(tmp_path, "10.213.0.2", "") == rules


def test_one_machine_has_no_nodes_to_shut(tmp_path):
    rules = run_rules(tmp_path, "10.213.0.2", "")
    assert not [rule for rule in rules if "198.18" in rule] and rules[-2] == "-A OUTPUT -j labhub-guard"


def configured(s, nodes=()):
    """The guard's configuration of a hub, and the environment its pre-spawn hook gives a server."""
    c = Config()
    made = []
    engine = SimpleNamespace(services=SimpleNamespace(get=lambda name: (_ for _ in ()).throw(NotFound(name))),
                             api=SimpleNamespace(create_service=lambda *a, **kw: made.append(kw["name"])))
    ctx = hub_context(s, engine=engine)
    spawner = SimpleNamespace(network_addresses=("10.213.0.2", "10.213.0.1"), environment={"A": "1"})

    async def docker(method):
        assert method == "nodes"
        return list(nodes)

    spawner.docker = docker
    guard.configure(c, ctx)
    if "pre_spawn_hook" in c.Spawner:
        asyncio.run(c.Spawner.pre_spawn_hook(spawner))
    return c, spawner.environment, made


def swarm_node(addr, manager=""):
    return {"Status": {"Addr": addr}, **({"ManagerStatus": {"Addr": manager}} if manager else {})}


def test_in_swarm_mode_servers_are_told_the_nodes_and_the_agent_runs_on_every_node():
    s = settings.load({"LABHUB_SWARM": "true", "LABHUB_HOME_ROOT": "/srv/homes"})
    c, env, made = configured(s, [swarm_node("198.18.0.2", "198.18.0.2:2377"), swarm_node("192.0.2.7"),
                                  swarm_node("0.0.0.0")])
    assert env == {"A": "1", guard.PROBE: "10.213.0.1", guard.HUB: "10.213.0.2", guard.BLOCK: "192.0.2.7 198.18.0.2"}
    assert c.DockerSpawner.extra_create_kwargs == {"labels": {guard.LABEL: STACK.project}}
    assert made == [guard.agent_name(STACK.project)]


def test_off_nothing_is_asked_of_servers():
    c, env, made = configured(settings.load({}))
    assert env == {"A": "1"} and made == [] and "extra_create_kwargs" not in c.DockerSpawner


class FakeService:
    def __init__(self, image_id):
        self.attrs = {"Spec": {"Labels": {guard.AGENT_LABEL: image_id}}}
        self.removed = False

    def remove(self):
        self.removed = True


@pytest.mark.parametrize("running, on, removed, made", [
    (None, True, False, True),  # the first start in swarm mode
    ("sha256:hub", True, False, False),  # a restart: the agents run on
    ("sha256:old", True, True, True),  # an upgrade: agents of the new hub image
    ("sha256:hub", False, True, False),  # the guard turned off
])
def test_the_agent_service_follows_the_hub_image_and_the_setting(running, on, removed, made):
    service, created = FakeService(running) if running else None, []

    def get(name):
        if service is None:
            raise NotFound(name)
        return service

    engine = SimpleNamespace(services=SimpleNamespace(get=get),
                             api=SimpleNamespace(create_service=lambda task, **kw: created.append((task, kw))))
    guard.ensure_agents(engine, "lab", "labhub/hub:latest", "sha256:hub", on)
    assert (service.removed if service else False) == removed and bool(created) == made
    if made:
        task, kw = created[0]
        assert kw["mode"].mode == "global" and kw["labels"] == {guard.AGENT_LABEL: "sha256:hub"}
        spec = task["ContainerSpec"]
        assert spec["Image"] == "labhub/hub:latest" and spec["Command"] == ["python", "-m", "labhub.guard", "lab"]
        assert [(m["Source"], m["Target"]) for m in spec["Mounts"]] == [(guard.DOCKER_SOCKET, guard.DOCKER_SOCKET)]
        assert "Healthcheck" not in spec  # the hub image has none (the hub's is its compose service's)


def test_the_watch_guards_servers_as_they_start_and_those_started_just_before(monkeypatch):
    now = 1_000_000
    listed = [{"Id": "fresh", "Created": now - 30}, {"Id": "old", "Created": now - 3600}]
    asked = []

    def events(decode, since, filters):
        asked.append((since, filters))
        yield {"id": "new"}
        raise ConnectionError("the engine went away")

    def sleep(seconds):
        raise KeyboardInterrupt  # ends the test's watch, which would look again for ever

    engine = SimpleNamespace(api=SimpleNamespace(containers=lambda filters: listed), events=events)
    guarded = []
    monkeypatch.setattr(guard, "shut_off", lambda engine, image, container_id: guarded.append(container_id))
    monkeypatch.setattr(guard.time, "time", lambda: now)
    monkeypatch.setattr(guard.time, "sleep", sleep)
    with pytest.raises(KeyboardInterrupt):
        guard.watch(engine, "lab", "sha256:hub")
    assert sorted(guarded) == ["fresh", "new"]
    assert asked == [(now - 1, {"type": "container", "event": "start", "label": f"{guard.LABEL}=lab"})]
