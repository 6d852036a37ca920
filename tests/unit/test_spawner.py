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

import pages
from contexts import hub_context


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
    spawner.configure(c, hub_context(cpus=2))
    assert c.JupyterHub.spawner_class is spawner.PromptDockerSpawner
    assert c.JupyterHub.concurrent_spawn_limit == 2 * spawner.SPAWNS_PER_CPU
    assert spawner.PromptDockerSpawner.starting._value == 2 * spawner.STARTING_PER_CPU
    low, high = c.JupyterHub.tornado_settings["spawn_throttle_retry_range"]
    assert 0 < low < high < 60  # JupyterHub's default suggests 30 to 60 seconds


def test_engine_calls_of_several_spawns_run_side_by_side(monkeypatch):
    """DockerSpawner's own single worker would make a burst's container starts queue."""
    all_in = threading.Barrier(4, timeout=5)  # broken unless four calls run at once
    # Every engine call DockerSpawner makes goes through Spawner.docker(method, ...) to _docker.
    monkeypatch.setattr(spawner.PromptDockerSpawner, "_docker", lambda self, method: all_in.wait())

    async def burst():
        calls = [spawner.PromptDockerSpawner().docker("wait") for _ in range(4)]
        return await asyncio.gather(*calls, return_exceptions=True)

    # Barrier.wait gives each of the four calls its own place, 0 to 3, once all four are in.
    places = asyncio.run(burst())
    assert sorted(p for p in places if isinstance(p, int)) == [0, 1, 2, 3], f"calls queued: {places}"


def test_servers_of_a_burst_start_a_few_at_a_time_and_none_is_refused(monkeypatch):
    """With one start slot, the second server's container starts only once the first answers."""
    started = []

    async def container_start(self):  # DockerSpawner's part: the container runs, Python starts
        started.append((self.user.name, time.monotonic()))
        port = free_port()
        asyncio.get_running_loop().call_later(0.5, lambda: Application([(r"/user/.*/api", Status)]).listen(port, "127.0.0.1"))
        return "127.0.0.1", port

    monkeypatch.setattr(spawner.dockerspawner.DockerSpawner, "start", container_start)
    Status.code = 200

    def server_of(name):
        s = spawner.PromptDockerSpawner(start_timeout=60)
        s.user = SimpleNamespace(name=name)
        s.server = SimpleNamespace(base_url=f"/user/{name}/")
        return s

    async def burst():
        spawner.PromptDockerSpawner.starting = asyncio.Semaphore(1)
        return await asyncio.gather(*(server_of(name).start() for name in ("ann", "bob")))

    assert len(asyncio.run(burst())) == 2
    (first, began), (second, then) = started
    assert then - began >= 0.5, started  # bob's container waited for ann's server to answer

    # Nobody waits for a turn longer than QUEUE_SECONDS, even when no slot ever comes free.
    async def no_slot_free():
        spawner.PromptDockerSpawner.starting = asyncio.Semaphore(0)
        return await server_of("cy").start()

    monkeypatch.setattr(spawner, "QUEUE_SECONDS", 0.2)
    started.clear()
    assert asyncio.run(no_slot_free())
    assert [name for name, _ in started] == ["cy"]


def render_spawn_page(notice: str) -> str:
    starting = SimpleNamespace(notice=notice, name="", options_form="")
    user = SimpleNamespace(name="ann", admin=False, spawner=starting, server_url=lambda name="": f"/user/ann/{name}")
    return pages.render("spawn_pending.html", spawner=starting, user=user,
                        progress_url="/hub/api/users/ann/server/progress")


def test_the_spawn_page_with_a_notice_says_it_and_waits_and_without_one_is_jupyterhubs():
    page = render_spawn_page("Your home folder is 96 % full <b>")
    assert '<div id="labhub-notice" class="alert alert-warning" role="alert">Your home folder is 96 % full &lt;b&gt;</div>' in page
    assert '<a id="labhub-go-on" class="btn btn-primary" href="/user/ann/">' in page and "EventSource" not in page
    page = render_spawn_page("")
    assert "labhub-notice" not in page and 'new EventSource("/hub/api/users/ann/server/progress")' in page
