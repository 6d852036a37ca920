"""Shared fixtures. One LabHub deployment (`stack`) runs for the whole session and is shared by
every test that can share it; tests that need a deployment of their own make one with
harness.Deployment and destroy it. Images are built once, before pytest, by tests/run."""

import os
from pathlib import Path

import pytest

import harness

HUB_LOG_LINES = 40
ARTIFACTS = Path(os.environ.get("LABHUB_TEST_ARTIFACTS", harness.REPO / "artifacts"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed stack test's report ends with its hub's last log lines: a bare "Internal Server
    Error" from the hub is explained only there, and CI keeps nothing else."""
    report = yield
    if report.failed and call.when == "call":
        for deployment in {id(v): v for v in item.funcargs.values() if isinstance(v, harness.Deployment)}.values():
            try:
                tail = "\n".join(deployment.service_log("hub").splitlines()[-HUB_LOG_LINES:])
            except Exception as e:  # the hub container may be gone: the report must still be made
                tail = f"(no hub log: {e})"
            report.sections.append((f"{deployment.project}: the hub's last {HUB_LOG_LINES} log lines", tail))
    return report


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def stack():
    """A fresh-clone deployment with no .env, brought up with `docker compose up -d --wait`."""
    deployment = harness.Deployment("labhubtest")
    try:
        result = deployment.up(check=False)
        assert result.returncode == 0, f"docker compose up failed:\n{result.stdout}\n" + \
            deployment.compose("logs", check=False).stdout[-5000:]
        yield deployment
    finally:
        logs = deployment.compose("logs", "--no-color", check=False).stdout
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "stack.log").write_text(logs)
        deployment.destroy()


@pytest.fixture
def admin(stack) -> harness.HubClient:
    return harness.logged_in_admin(stack)
