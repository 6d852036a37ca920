"""First-login content from bootstrap.sh: once per user, in the home the user sees, never holding
up anyone else, and a failure shown to the user without costing them their server."""

import threading

import escapism

import harness

NAMES = ["jo-anne", "o'brien", "zoë"]  # escaped by DockerSpawner: jo-2danne, o-27brien, zo-c3-ab


def escaped(name: str) -> str:
    return escapism.escape(name, safe=set("abcdefghijklmnopqrstuvwxyz0123456789"), escape_char="-").lower()


def home_listing(stack, name) -> list[str]:
    volume = f"{stack.project}-home-{escaped(name)}"
    return harness.docker("run", "--rm", "-v", f"{volume}:/h", "--entrypoint", "ls", "labhub/jupyterlab-base", "/h").split()


def test_content_lands_in_the_home_the_user_sees_and_deleted_files_stay_deleted(stack, admin):
    for name in NAMES:
        user = harness.native_user(stack, admin, name)
        user.start_server()
        assert "Welcome to the lab's JupyterHub" in user.read_file("HowTo.md")
        assert user.read_file("Resources.md")
        assert user.read_file("tutorials/01-first-notebook.ipynb")
        assert {"HowTo.md", "Resources.md", "tutorials"} <= set(home_listing(stack, name))

    assert user.server_api("DELETE", "/contents/HowTo.md").status_code == 204
    user.stop_server()
    user.start_server()
    assert user.read_file("HowTo.md") is None
    assert user.read_file("Resources.md")


SLOW_AND_SOMETIMES_FAILING = """#!/bin/sh
set -eu
date +%s.%N > "$HOME/bootstrap-started"
if [ "$JUPYTERHUB_USER" = unlucky ]; then echo "cannot reach the tutorials server" >&2; exit 3; fi
sleep 4
cp -n "$LABHUB_CONTEXT/welcome/HowTo.md" "$HOME/"
date +%s.%N > "$HOME/bootstrap-ended"
"""


def test_bootstraps_run_side_by_side_and_a_failure_keeps_the_server(stack, admin):
    site_script = stack.dir / "jupyterhub/context/bootstrap.sh"
    site_script.write_text(SLOW_AND_SOMETIMES_FAILING)  # read at each start: no restart needed
    try:
        first, second = (harness.native_user(stack, admin, name) for name in ("kepler", "brahe"))
        starts = [threading.Thread(target=u.start_server) for u in (first, second)]
        for t in starts:
            t.start()
        for t in starts:
            t.join()
        spans = [[float(u.read_file(f)) for f in ("bootstrap-started", "bootstrap-ended")] for u in (first, second)]
        # Each ran while the other was running: neither waited for the other.
        assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
        assert all(u.read_file("HowTo.md") for u in (first, second))

        unlucky = harness.native_user(stack, admin, "unlucky")
        unlucky.start_server()
        assert "cannot reach the tutorials server" in unlucky.read_file("BOOTSTRAP-FAILED.txt")
        assert unlucky.execute(unlucky.start_kernel(), "1+1") == "2"
    finally:
        site_script.unlink()

    unlucky.stop_server()
    unlucky.start_server()  # the template now: it runs again, succeeds, and clears the notice
    assert unlucky.read_file("HowTo.md")
    assert unlucky.read_file("BOOTSTRAP-FAILED.txt") is None
