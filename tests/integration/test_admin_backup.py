"""Backup and restore on the real stack: a backup taken while a user's kernel writes files and the
hub serves logins comes back on a fresh clone, after every volume is gone, with the same users,
passwords, sessions and tokens, and homes identical to the byte (content, mode, owner)."""

import os
import shutil
import sqlite3
import tarfile
import threading

import harness

# Lists every file and folder of a home with its type, mode, owner and size, and each file's SHA-256.
LISTING = "cd /h && find . -printf '%p %y %m %U:%G %s\\n' | sort && find . -type f -exec sha256sum {} + | sort -k2"
# Runs in carol's kernel during the backup: each file is written whole, then moved into place.
WRITER = """
import os, threading, time
def write():
    os.makedirs('stream', exist_ok=True)
    for i in range(400):
        with open('stream/.tmp', 'w') as f:
            f.write(f'{i}\\n' * 2000)
        os.replace('stream/.tmp', f'stream/{i:04}.txt')
        time.sleep(0.02)
threading.Thread(target=write, daemon=True).start()
'started'
"""


def home_listing(deployment, user: str) -> str:
    return harness.docker("run", "--rm", "--network", "none", "-v", f"{deployment.project}-home-{user}:/h:ro",
                          "debian:trixie-slim", "sh", "-c", LISTING)


def admin_command(deployment, *args) -> str:
    result = deployment.compose("run", "--rm", "-T", "admin", *args, check=False)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_backup_under_load_restores_on_a_fresh_clone(tmp_path):
    deployment = harness.Deployment("backup")
    try:
        assert deployment.up(check=False).returncode == 0
        admin = harness.HubClient(deployment)
        admin.login("admin", deployment.admin_password())
        users = {name: harness.native_user(deployment, admin, name) for name in ("alice", "bob", "carol")}
        for name, client in users.items():
            client.start_server()
            client.write_file("notes.txt", f"{name}'s notes: ünïcode\n")
            kernel = client.start_kernel()
            client.execute(kernel, "import os; os.makedirs('data/deep', exist_ok=True); "
                                   "open('data/deep/random.bin', 'wb').write(os.urandom(3_000_000)); "
                                   "os.chmod('data/deep/random.bin', 0o600); 'ok'")
        for name in ("alice", "bob"):
            users[name].stop_server()
        token = users["alice"].api("POST", "/users/alice/tokens", json={"note": "backup test"}).json()["token"]
        before = {name: home_listing(deployment, name) for name in ("alice", "bob")}

        # The backup runs while carol's kernel writes and people keep logging in.
        carol = users["carol"]
        carol.execute(carol.start_kernel(), WRITER)
        stop = threading.Event()
        logins = []

        def keep_logging_in():
            while not stop.is_set():
                logins.append(harness.HubClient(deployment).login("bob", "Lab-Notebook-2026").status_code)

        thread = threading.Thread(target=keep_logging_in)
        thread.start()
        try:
            out = admin_command(deployment, "backup")
        finally:
            stop.set()
            thread.join()
        assert logins and set(logins) == {200}, logins
        archive = deployment.dir / out.strip().splitlines()[-1].split()[2]

        # The database in the archive is whole: SQLite's own check, and every user is in it.
        with tarfile.open(archive) as tar:
            tar.extract("hub/jupyterhub.sqlite", tmp_path, filter="data")
        db = sqlite3.connect(tmp_path / "hub/jupyterhub.sqlite")
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        assert {"admin", "alice", "bob", "carol"} <= {row[0] for row in db.execute("select name from users")}
        db.close()
        shutil.copy(archive, tmp_path / "archive.tar")
        cookies = users["alice"].http.cookies.copy()

        # Everything goes: containers, volumes (homes, hub state), the whole folder.
        deployment.destroy()
        assert not harness.docker("volume", "ls", "-q", "--filter", f"name={deployment.project}")
        deployment = harness.Deployment("backup")
        (deployment.dir / ".env").unlink(missing_ok=True)  # comes back from the backup
        (deployment.dir / "backups").mkdir()
        shutil.copy(tmp_path / "archive.tar", deployment.dir / "backups/archive.tar")
        env = {**os.environ, "COMPOSE_PROJECT_NAME": deployment.project}
        restored = harness.run("./labhub", "restore", "backups/archive.tar", cwd=deployment.dir, check=False, env=env)
        assert restored.returncode == 0 and "labhub restore: restored the backup" in restored.stdout, restored.stdout

        assert {name: home_listing(deployment, name) for name in ("alice", "bob")} == before
        again = harness.run("./labhub", "restore", "backups/archive.tar", cwd=deployment.dir, check=False, env=env)
        assert again.returncode == 1 and "would overwrite the hub database" in again.stdout, again.stdout

        assert deployment.up(check=False).returncode == 0
        # The old session cookie and token still work; the same password logs in; servers start.
        session = harness.HubClient(deployment)
        session.http.cookies.update(cookies)
        assert session.api("GET", "/user").json()["name"] == "alice"
        with_token = harness.HubClient(deployment)
        assert with_token.http.get(with_token.url("/hub/api/user"), headers={"Authorization": f"token {token}"}).json()["name"] == "alice"
        for name in ("alice", "carol"):
            client = harness.HubClient(deployment)
            assert "/hub/login" not in client.login(name, "Lab-Notebook-2026").url
            client.start_server()
            assert client.read_file("notes.txt") == f"{name}'s notes: ünïcode\n"
        # What carol's kernel wrote during the backup came back whole, file by file.
        check = ("import os; bad = [n for n in os.listdir('stream') if n.endswith('.txt') and "
                 "open('stream/' + n).read() != f'{int(n[:4])}\\n' * 2000]; (len(os.listdir('stream')), bad)")
        carol = harness.HubClient(deployment)
        carol.login("carol", "Lab-Notebook-2026")
        count, bad = eval(carol.execute(carol.start_kernel(), check))  # noqa: S307 (a tuple we made)
        assert count > 0 and bad == [], (count, bad)
    finally:
        deployment.destroy()
