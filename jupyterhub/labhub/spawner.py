"""The spawner: DockerSpawner, with a started server noticed as soon as it answers, and bursts of
spawns (a class logging in at once) kept to what the machine can start in good time.

After Spawner.start returns, JupyterHub asks the new server whether it is up with exponential
backoff and random jitter (pauses of up to 0.2, 0.4, 0.8, 1.6, 3.2 s ...), so a server that takes
2 s to start is noticed on average about a second late. DockerSpawner offers no hook between
starting the container and that first question, so start() itself asks, every POLL_SECONDS, for
up to PROMPT_SECONDS: JupyterHub's first question then finds the server up. A server slower than
that is left to JupyterHub's own waiting (Spawner.http_timeout), exactly as before.

DockerSpawner sends every engine call of every spawner through one worker thread, so when a
class logs in at once, each container start (a few tenths of a second) waits for all those
before it. The engine does many at once: this spawner gives the calls DOCKER_THREADS workers.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import dockerspawner
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

POLL_SECONDS = 0.1
PROMPT_SECONDS = 20
# A server's start is mostly Python imports, about a CPU-second: ten spawns per CPU all start
# within a minute even on a busy machine. Beyond that, the hub answers "Too many users trying to
# log in right now. Try again in 20 seconds" (429) instead of slowing every spawn toward its
# timeout; the suggested wait is drawn from RETRY_SECONDS.
SPAWNS_PER_CPU = 10
RETRY_SECONDS = (10, 30)
DOCKER_THREADS = 8


class PromptDockerSpawner(dockerspawner.DockerSpawner):
    _docker_calls = ThreadPoolExecutor(DOCKER_THREADS, thread_name_prefix="docker")

    @property
    def executor(self):
        return self._docker_calls

    async def start(self):
        began = time.monotonic()
        ip, port = await super().start()
        # start() counts against Spawner.start_timeout: keep at least half of it in hand.
        budget = min(PROMPT_SECONDS, self.start_timeout / 2 - (time.monotonic() - began))
        await until_answers(f"http://{ip}:{port}{self.server.base_url}api", budget)
        return ip, port


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


def configure(c, engine: docker.DockerClient) -> None:
    c.JupyterHub.spawner_class = PromptDockerSpawner
    c.JupyterHub.concurrent_spawn_limit = SPAWNS_PER_CPU * engine.info()["NCPU"]
    c.JupyterHub.spawn_throttle_retry_range = RETRY_SECONDS
