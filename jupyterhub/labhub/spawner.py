"""The spawner: DockerSpawner, with a started server noticed as soon as it answers, and bursts of
spawns (a class logging in at once) kept to what the machine can start in good time.

After Spawner.start returns, JupyterHub asks the new server whether it is up with exponential
backoff and random jitter (pauses of up to 0.2, 0.4, 0.8, 1.6, 3.2 s ...), so a server that takes
2 s to start is noticed on average about a second late. DockerSpawner offers no hook between
starting the container and that first question, so start() itself asks, every POLL_SECONDS, for
up to PROMPT_SECONDS: JupyterHub's first question then finds the server up. A server slower than
that is left to JupyterHub's own waiting (Spawner.http_timeout), exactly as before.

When a class logs in at once, a server's start is CPU-bound Python imports, and starting them
all together makes each cost more (twenty at once on two cores: 0.95 CPU-seconds each, against
0.67 one per core), so every user waited for nearly the slowest. So STARTING_PER_CPU servers per
CPU start at a time, and the others wait their turn (none is refused): the first are in within
seconds, the last sooner than before. A server still starting after START_SLOT_SECONDS (a long
bootstrap.sh) lets the next one begin, and nobody waits more than QUEUE_SECONDS for a turn, so
the queue never eats into a spawn's start_timeout (60 s) for long.

DockerSpawner sends every engine call of every spawner through one worker thread, so when a
class logs in at once, each container start (a few tenths of a second) waits for all those
before it. The engine does many at once: this spawner gives the calls DOCKER_THREADS workers.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import dockerspawner
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from . import hooks
from .stack import SERVER_LABEL

if TYPE_CHECKING:
    from .context import HubContext

POLL_SECONDS = 0.05
PROMPT_SECONDS = 20
# A server's start is mostly Python imports, about a CPU-second: ten spawns per CPU all start
# within a minute even on a busy machine. Beyond that, the hub answers "Too many users trying to
# log in right now. Try again in 20 seconds" (429) instead of slowing every spawn toward its
# timeout; the suggested wait is drawn from RETRY_SECONDS.
SPAWNS_PER_CPU = 10
RETRY_SECONDS = (10, 30)
STARTING_PER_CPU = 1
START_SLOT_SECONDS = 3
QUEUE_SECONDS = 15
DOCKER_THREADS = 8


def server_name(spawner) -> str:
    """A server's user and name, as SERVER_LABEL holds it: user/name ("user/" for the default server)."""
    return f"{spawner.user.name}/{spawner.name}"


class PromptDockerSpawner(dockerspawner.DockerSpawner):
    _docker_calls = ThreadPoolExecutor(DOCKER_THREADS, thread_name_prefix="docker")
    starting: asyncio.Semaphore  # the start slots, made by configure() for the engine's CPUs
    # What the user must know before going on to this start's server (labhub.storage: a full home),
    # set by the start's pre-spawn hook: the spawn page shows it and waits for them
    # (templates/spawn_pending.html).
    notice = ""

    @property
    def executor(self):
        return self._docker_calls

    async def start(self):
        began = time.monotonic()
        has_turn = await self._wait_for_turn()
        try:
            ip, port = await super().start()
            url = f"http://{ip}:{port}{self.server.base_url}api"
            # start() counts against Spawner.start_timeout: keep at least half of it in hand.
            budget = min(PROMPT_SECONDS, self.start_timeout / 2 - (time.monotonic() - began))
            answered = await until_answers(url, min(budget, START_SLOT_SECONDS))
        finally:
            if has_turn:
                self.starting.release()
        if not answered:
            await until_answers(url, budget - START_SLOT_SECONDS)
        return ip, port

    async def _wait_for_turn(self) -> bool:
        """Whether this start got one of the start slots (False: it waited QUEUE_SECONDS, and goes)."""
        try:
            await asyncio.wait_for(self.starting.acquire(), QUEUE_SECONDS)
            return True
        except TimeoutError:
            return False


async def until_answers(url: str, seconds: float) -> bool:
    """Whether the server at url answered (anything but a 5xx, as JupyterHub counts it) within seconds."""
    http = AsyncHTTPClient()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            response = await http.fetch(url, raise_error=False, follow_redirects=False,
                                        request_timeout=max(0.1, deadline - time.monotonic()))
            if response.code < 500:
                return True
        except (OSError, HTTPClientError):  # not listening yet
            pass
        await asyncio.sleep(POLL_SECONDS)
    return False


def configure(c, ctx: "HubContext") -> None:
    cpus, s = ctx.facts.cpus, ctx.settings
    if s.swarm:
        # By name, as JupyterHub imports it: labhub.swarmspawner builds on this module, which must not import it back.
        c.JupyterHub.spawner_class = "labhub.swarmspawner.SwarmServerSpawner"
        # A failed node's servers show as stopped within a poll of its being marked down (12-15 s).
        c.Spawner.poll_interval = 10
    else:
        c.JupyterHub.spawner_class = PromptDockerSpawner
    c.DockerSpawner.prefix = ctx.stack.container_prefix
    c.DockerSpawner.remove = True
    c.Spawner.default_url = "/lab"
    # Besides the default server, a few named ones (e.g. one per project or image).
    c.JupyterHub.allow_named_servers = s.named_servers > 0
    c.JupyterHub.named_server_limit_per_user = s.named_servers
    PromptDockerSpawner.starting = asyncio.Semaphore(STARTING_PER_CPU * cpus)
    c.JupyterHub.concurrent_spawn_limit = SPAWNS_PER_CPU * cpus
    # JupyterHub 6 reads the suggested wait from its tornado settings; its own
    # spawn_throttle_retry_range trait is not configurable ("not recognized"), so it goes there.
    hooks.merge(c, "tornado_settings", {"spawn_throttle_retry_range": RETRY_SECONDS}, section="JupyterHub")
