"""Shared fixtures. One LabHub deployment (`stack`) runs for the whole session and is shared by
every test that can share it; tests that need a deployment of their own make one with
harness.Deployment and destroy it. Images are built once, before pytest, by tests/run."""

import os
from pathlib import Path

import pytest

import harness

ARTIFACTS = Path(os.environ.get("LABHUB_TEST_ARTIFACTS", harness.REPO / "artifacts"))


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
