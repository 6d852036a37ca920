"""`./labhub init` without questions writes a site that `docker compose up -d` starts as said; a
second init changes nothing without --force, and with it keeps the old files."""

import os
import stat

import harness


def init(deployment, *args) -> str:
    env = {**os.environ, "COMPOSE_PROJECT_NAME": deployment.project}
    result = harness.run("./labhub", "init", "--yes", *args, cwd=deployment.dir, check=False, env=env)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_init_writes_a_site_that_starts():
    deployment = harness.Deployment("init", harness.free_ports())  # beside the session's stack
    try:
        (deployment.dir / ".env").unlink(missing_ok=True)  # a fresh clone
        ports = [f"--set={name}={value}" for name, value in zip(("HTTP_PORT", "HTTPS_PORT"), deployment.ports)]
        out = init(deployment, "--auth", "shared-password", "--shared-password", "a-trial-password",
                   "--admin-users", "admin,boss", "--set", "IDLE_TIMEOUT=600", *ports)
        assert "labhub init: wrote .env" in out and "labhub init: wrote secret/shared-password" in out, out
        env = (deployment.dir / ".env").read_text()
        assert "LABHUB_AUTH=shared-password\n" in env and "LABHUB_ADMIN_USERS=admin,boss\n" in env
        assert "LABHUB_IDLE_TIMEOUT=600\n" in env and "#LABHUB_HOSTNAME=localhost\n" in env  # the rest stays documented
        password = deployment.secret / "shared-password"
        assert stat.S_IMODE(password.stat().st_mode) == 0o600

        assert deployment.up(check=False).returncode == 0
        user = harness.HubClient(deployment)
        assert "/hub/login" not in user.login("someone", "a-trial-password").url

        written = {p: p.read_bytes() for p in (deployment.dir / ".env", password)}
        again = init(deployment, "--auth", "native", "--shared-password", "another-password")
        assert "kept .env" in again and "kept secret/shared-password" in again, again
        assert {p: p.read_bytes() for p in written} == written

        forced = init(deployment, "--force", "--auth", "native", *ports)
        assert "wrote .env (the old one is now .env." in forced, forced
        assert "LABHUB_AUTH=native\n" in (deployment.dir / ".env").read_text()
        assert [p.read_bytes() for p in deployment.dir.glob(".env.*.bak")] == [written[deployment.dir / ".env"]]
    finally:
        deployment.destroy()
