"""The private-network guard (LABHUB_BLOCK_PRIVATE_NETWORKS, on by default in swarm mode): a user
server reaches the hub and name servers, but no private address range (the lab's network, the
host's addresses, a cloud's metadata address) and, in swarm mode, no node of the swarm at any of
its addresses, public ones too: not the nodes' Docker control ports (2377, 7946), not the overlay
networks' VXLAN port (4789, through which a forged frame would reach another user's server), not
shared storage served from a node.

Just after a server's container starts, a short-lived helper container (the hub's image, with
NET_ADMIN only) joins its network namespace and adds the rules to that namespace's own firewall:
they live and die with the container, the user (without capabilities) cannot change them, and the
host's own firewall is left alone. The server's start command (labhub.bootstrap) waits until they
are in force, and gives up, not starting the server, after a minute.

watch() runs the helper for each server container labelled for it (LABEL) as it starts, on its
own engine: on one machine in a thread of the hub; in swarm mode, where a server runs on whichever
node Swarm picks, in the guard agent, a global Swarm service (`python -m labhub.guard`: one task
on every node, with that node's Docker socket), which the hub makes, or makes anew for a new hub
image, at its start. What the rules let through is in the server's environment, set by the hub:
the hub's address on the server's network; and what they shut off besides: the nodes' addresses.
"""

import logging
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import docker
from docker.errors import NotFound
from docker.types import ContainerSpec, Mount, RestartPolicy, ServiceMode, TaskTemplate

from . import hooks, swarm

if TYPE_CHECKING:
    from .context import HubContext

log = logging.getLogger("JupyterHub")

LABEL = "org.labhub.guard"  # on each server container to guard: its LabHub's compose project
AGENT_LABEL = "org.labhub.guard-agent"  # on the agent service: the hub image it runs
DOCKER_SOCKET = "/var/run/docker.sock"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
# In the server's environment: its gateway (the start command's probe), the hub's address, the nodes'.
PROBE, HUB, BLOCK = "LABHUB_GUARD_PROBE", "LABHUB_GUARD_HUB", "LABHUB_GUARD_BLOCK"
# Run by the helper in the server's network namespace: one iptables-restore, so the rules take
# force together (and in a fraction of the time of one iptables command each); a second helper for
# the same container (the agent looks again after a restart) leaves them be. Replies go out (to
# the hub's and the proxy's requests), never a connection the server opens; TCP is reset, so that
# connections fail at once rather than hang.
RULES = f"""set -e
! iptables -w -n -L labhub-guard >/dev/null 2>&1 || exit 0
shut() {{
  echo "-A labhub-guard -d $1 -p tcp -j REJECT --reject-with tcp-reset"
  echo "-A labhub-guard -d $1 -j DROP"
}}
{{
  echo "*filter"
  echo ":labhub-guard - [0:0]"
  echo "-A labhub-guard -o lo -j RETURN"
  echo "-A labhub-guard -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
  echo "-A labhub-guard -d $HUB -j RETURN"
  for node in $BLOCK; do shut "$node"; done
  echo "-A labhub-guard -p udp --dport 53 -j RETURN"
  echo "-A labhub-guard -p tcp --dport 53 -j RETURN"
  for range in {' '.join(PRIVATE_RANGES)}; do shut "$range"; done
  echo "-A OUTPUT -j labhub-guard"
  echo COMMIT
}} | iptables-restore -w --noflush
"""
# The head of a server's start command (labhub.bootstrap): with PROBE set, nothing runs until a
# datagram to the gateway is refused with EPERM, which only a local DROP rule gives; looked at
# every 50 ms by one process, for a minute at most.
WAIT = f"""
if [ -n "${{{PROBE}:-}}" ]; then
  python3 -I -c 'import socket, sys, time
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(1200):
    try:
        probe.sendto(b"", (sys.argv[1], 9))
    except PermissionError:
        sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)' "${PROBE}" || {{ echo "labhub: private networks were not shut off; not starting" >&2; exit 1; }}
fi
"""
RECENT_SECONDS = 90  # a container started longer ago has its rules, or gave up waiting for them


def shut_off(engine: docker.DockerClient, image: str, container_id: str) -> None:
    """Runs the helper (of image) in the container's network namespace, with what its environment says."""
    container = engine.containers.get(container_id)
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] or [])
    engine.containers.run(image, ["sh", "-c", RULES], environment={"HUB": env[HUB], "BLOCK": env.get(BLOCK, "")},
                          network_mode=f"container:{container.id}", cap_drop=["ALL"], cap_add=["NET_ADMIN"],
                          remove=True)
    log.info("Private networks shut off for %s", container.name)


def _shut_off(engine: docker.DockerClient, image: str, container_id: str) -> None:
    try:
        shut_off(engine, image, container_id)
    except (docker.errors.DockerException, KeyError) as e:  # the server then refuses to start
        log.error("Could not shut private networks off for %s: %s", container_id[:12], e)


def watch(engine: docker.DockerClient, project: str, image: str) -> None:
    """Forever: shuts private networks off in each of the project's server containers on this
    engine as it starts, and in those that started just before (a restart of this watch)."""
    label = f"{LABEL}={project}"
    with ThreadPoolExecutor(4, thread_name_prefix="labhub-guard") as pool:
        while True:
            since = int(time.time()) - 1
            try:
                for container in engine.api.containers(filters={"label": label}):
                    if container["Created"] > since - RECENT_SECONDS:
                        pool.submit(_shut_off, engine, image, container["Id"])
                for event in engine.events(decode=True, since=since,
                                           filters={"type": "container", "event": "start", "label": label}):
                    pool.submit(_shut_off, engine, image, event["id"])
            except Exception as e:  # the engine restarted, say: look again
                log.warning("Watching for servers to guard: %s", e)
                time.sleep(2)


def agent_name(project: str) -> str:
    return f"{project}-guard"


def ensure_agents(engine: docker.DockerClient, project: str, image_name: str, image_id: str, on: bool) -> None:
    """Swarm mode: the guard agent runs on every node, of this hub's image, when the guard is on;
    its service is made anew for a new hub image (an upgrade), and removed when the guard is off."""
    try:
        service = engine.services.get(agent_name(project))
    except NotFound:
        service = None
    if service and (not on or service.attrs["Spec"].get("Labels", {}).get(AGENT_LABEL) != image_id):
        service.remove()
        service = None
    if on and not service:
        spec = ContainerSpec(image_name, command=["python", "-m", "labhub.guard", project], cap_drop=["ALL"],
                             mounts=[Mount(DOCKER_SOCKET, DOCKER_SOCKET, type="bind")])
        engine.api.create_service(TaskTemplate(spec, restart_policy=RestartPolicy("any", delay=2 * 10**9)),
                                  name=agent_name(project), mode=ServiceMode("global"), labels={AGENT_LABEL: image_id})


def configure(c, ctx: "HubContext") -> None:
    s, stack = ctx.settings, ctx.stack
    if s.swarm:
        ensure_agents(ctx.engine, stack.project, stack.hub_image_name, stack.hub_image, s.block_private_networks)
    if not s.block_private_networks:
        return
    hooks.merge(c, "extra_create_kwargs", {"labels": {LABEL: stack.project}})
    if not s.swarm:
        threading.Thread(target=watch, args=(ctx.engine, stack.project, stack.hub_image), name="labhub-guard",
                         daemon=True).start()

    async def protect(spawner):
        hub_ip, gateway = spawner.network_addresses  # labhub.network's pre-spawn hook, just before
        nodes = swarm.node_addresses(await spawner.docker("nodes")) if s.swarm else []
        spawner.environment = hooks.merged(spawner.environment, {PROBE: gateway, HUB: hub_ip, BLOCK: " ".join(nodes)})

    hooks.add_hook(c, "pre_spawn_hook", protect)


def main(argv: list[str] | None = None) -> None:
    """The guard agent on a swarm node: `python -m labhub.guard PROJECT`."""
    (project,) = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    engine = docker.from_env()
    image = engine.containers.get(socket.gethostname()).image.id  # its own, for the helpers
    log.info("Guarding the servers of %s on this node", project)
    watch(engine, project, image)


if __name__ == "__main__":
    main()
