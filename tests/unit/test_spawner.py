"""A started server is noticed as soon as it answers, and a burst of spawns is limited by the
machine's CPUs (the real spawn: tests/integration/test_spawn.py)."""

import asyncio
import socket
import threading
import time
from types import SimpleNamespace

from traitlets.config import Config

from tornado.web import Application, RequestHandler

from labhub import spawner


class Status(RequestHandler):
    code = 200

    def get(self):
        self.set_status(self.code)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def answer_after(delay: float, port: int, code: int):
    await asyncio.sleep(delay)
    Status.code = code
    return Application([(r"/user/jo/api", Status)]).listen(port, "127.0.0.1")


def test_a_server_is_noticed_within_a_poll_of_answering():
    async def scenario():
        port = free_port()
        late = asyncio.create_task(answer_after(1.0, port, 200))
        start = time.monotonic()
        assert await spawner.until_answers(f"http://127.0.0.1:{port}/user/jo/api", 10)
        (await late).stop()
        return time.monotonic() - start

    assert 1.0 <= asyncio.run(scenario()) < 1.0 + 5 * spawner.POLL_SECONDS


def test_a_server_that_answers_only_errors_is_left_to_jupyterhub():
    async def scenario():
        port = free_port()
        server = await answer_after(0, port, 503)
        answered = await spawner.until_answers(f"http://127.0.0.1:{port}/user/jo/api", 0.5)
        server.stop()
        return answered

    assert asyncio.run(scenario()) is False


def test_spawns_at_once_follow_the_cpus_and_the_rest_are_told_to_try_again_soon():
    c = Config()
    spawner.configure(c, SimpleNamespace(info=lambda: {"NCPU": 2}))
    assert c.JupyterHub.spawner_class is spawner.PromptDockerSpawner
    assert c.JupyterHub.concurrent_spawn_limit == 2 * spawner.SPAWNS_PER_CPU
    low, high = c.JupyterHub.spawn_throttle_retry_range
    assert 0 < low < high <= 60  # JupyterHub's default suggests 30 to 60 seconds


def test_engine_calls_of_several_spawns_run_side_by_side():
    """DockerSpawner's own single worker would make a burst's container starts queue."""
    calls = spawner.PromptDockerSpawner().executor
    all_in = threading.Barrier(4, timeout=10)  # broken unless four calls run at once
    assert all(f.result(timeout=20) is not None for f in [calls.submit(all_in.wait) for _ in range(4)])
