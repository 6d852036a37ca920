"""`./labhub upgrade` on the real stack: a hub database made by JupyterHub 5 is migrated to this
JupyterHub's schema and its user keeps working; an upgrade with a server running leaves it running
and answering."""

import os

import harness

OLD_HUB_IMAGE = "labhub-test/jupyterhub5:latest"
SCHEMA = ("python3", "-c", "import sqlite3; print(sqlite3.connect('/srv/jupyterhub/data/jupyterhub.sqlite')"
                           ".execute('select version_num from alembic_version').fetchone()[0])")


def old_hub(deployment, *command) -> str:
    """Runs the JupyterHub 5 image on the deployment's hub-data volume."""
    return harness.docker("run", "--rm", "--network", "none", "-v", f"{deployment.project}_hub-data:/srv/jupyterhub/data",
                          OLD_HUB_IMAGE, *command)


def upgrade(deployment) -> str:
    env = {**os.environ, "COMPOSE_PROJECT_NAME": deployment.project}
    result = harness.run("./labhub", "upgrade", cwd=deployment.dir, check=False, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:]
    return result.stdout


def test_upgrade_from_jupyterhub_5_keeps_users_and_servers():
    harness.docker("build", "--quiet", "-f", str(harness.REPO / "tests/peers/jupyterhub5/Dockerfile"),
                   "-t", OLD_HUB_IMAGE, str(harness.REPO))
    deployment = harness.Deployment("upgrade", harness.free_ports())  # beside the session's stack
    try:
        # The hub-data volume as compose makes it, holding a JupyterHub 5 database with a user and token.
        deployment.compose("run", "--rm", "-T", "admin", "--help")
        token = old_hub(deployment, "python3", "make-db.py").splitlines()[-1]
        old_schema = old_hub(deployment, *SCHEMA)

        out = upgrade(deployment)
        assert "labhub upgrade: backed up to backups/" in out and "database upgraded" in out, out
        assert list((deployment.dir / "backups").glob("*.tar"))
        # This JupyterHub refuses to start on an older schema: a healthy hub means it was migrated.
        assert old_hub(deployment, *SCHEMA) != old_schema

        user = harness.HubClient(deployment)
        user.http.headers["Authorization"] = f"token {token}"
        user.user = "olduser"
        assert user.api("GET", "/user").json()["name"] == "olduser"
        user.request_server()
        user.wait_ready()
        status = user.http.get(user.url("/user/olduser/api/status"))
        assert status.status_code == 200, status.text[:500]
        server = deployment.user_container("olduser")

        # Again, with the server running: the hub restarts on its image, the server carries on,
        # answering all through the upgrade (its route lives in chp, which the upgrade leaves be).
        with harness.Watch(deployment, user.url("/user/olduser/api/status"), dict(user.http.headers)) as watch:
            upgrade(deployment)
        assert watch.failures == [] and len(watch.looks) > 5, watch.failures[:10]
        assert deployment.user_container("olduser") == server
        assert user.http.get(user.url("/user/olduser/api/status")).status_code == 200
        assert user.api("GET", "/users/olduser").json()["servers"][""]["ready"]
    finally:
        deployment.destroy()
