"""Backup and restore on the real stack: a backup taken while a user's kernel writes files and the
hub serves logins comes back on a fresh clone, after every volume is gone, with the same users,
passwords, sessions and tokens, and homes identical to the byte (content, mode, owner)."""

import os
import shutil
import stat
import sqlite3
import subprocess
import tarfile
import threading

import archives
import filesystems
import harness
from archives import folder, member
from labhub import quota

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


def listing(source: str) -> str:
    """LISTING of a volume or host folder."""
    return harness.docker("run", "--rm", "--network", "none", "-v", f"{source}:/h:ro", "debian:trixie-slim",
                          "sh", "-c", LISTING)


def home_listing(deployment, user: str) -> str:
    return listing(f"{deployment.project}-home-{user}")


def fresh_clone_with(archive, name: str, ports):
    """A new clone of the deployment (no .env: the backup brings it) with the archive in backups/."""
    deployment = harness.Deployment(name, ports)
    (deployment.dir / ".env").unlink(missing_ok=True)
    (deployment.dir / "backups").mkdir()
    shutil.copy(archive, deployment.dir / "backups/archive.tar")
    return deployment


def restore(deployment, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMPOSE_PROJECT_NAME": deployment.project}
    return harness.run("./labhub", "restore", "backups/archive.tar", *args, cwd=deployment.dir, check=False, env=env)


def admin_command(deployment, *args) -> str:
    result = deployment.compose("run", "--rm", "-T", "admin", *args, check=False)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_a_crafted_archive_writes_nothing_outside_its_areas():
    """An archive that climbs out of hub/ into the LabHub folder, and whose manifest sends the
    homes to a host folder the deployment does not use (restore binds it read-write): refused,
    a line each, before anything is written, on the host or in the LabHub folder (.env included)."""
    victim = harness.WORK / f"{harness.NAMESPACE}restore-victim"
    shutil.rmtree(victim, ignore_errors=True)
    victim.mkdir(parents=True)
    deployment = harness.Deployment("restorecraft", harness.free_ports())
    try:
        env = (deployment.dir / ".env").read_text()
        (deployment.dir / "backups").mkdir()
        archives.crafted(deployment.dir / "backups/archive.tar", [
            member("site/.env", data=b"LABHUB_AUTH=shared-password\n"),
            member("hub/../../labhub/escaped.txt", data=b"in the LabHub folder"),  # /srv/jupyterhub/data/../..
            folder("homes"), folder("homes/x"), member("homes/x/planted.txt", data=b"on the host")],
            homes=str(victim), users=[])
        restored = restore(deployment, "--force")  # even where the admin said it may overwrite
        assert restored.returncode == 1, restored.stdout
        assert [line for line in restored.stdout.splitlines() if line.startswith("labhub: error:")] == [
            "labhub: error: archive.tar: hub/../../labhub/escaped.txt: an absolute name, or one with . or .. in it, "
            "would be written outside its area; nothing was restored (use another backup)",
            f"labhub: error: archive.tar: manifest: homes in {victim}, but the archive's .env keeps them in volumes "
            "(LABHUB_HOME_ROOT); nothing was restored (use another backup)"]
        assert list(victim.iterdir()) == [] and not (deployment.dir / "escaped.txt").exists()
        assert (deployment.dir / ".env").read_text() == env
    finally:
        deployment.destroy()
        shutil.rmtree(victim, ignore_errors=True)


def test_backup_under_load_restores_on_a_fresh_clone(tmp_path):
    deployment = harness.Deployment("backup", harness.free_ports())  # beside the session's stack
    try:
        assert deployment.up(check=False).returncode == 0
        assert admin_command(deployment, "check").strip().endswith("no problems found")  # its own ports are fine
        # The hub's own check finds no problem either (a warning that the test machine's disk is
        # nearly full is the machine's, not this deployment's).
        problems = [line for line in deployment.service_log("hub").splitlines()
                    if "labhub check:" in line and "labhub check: warning:" not in line]
        assert problems == []
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
        status = admin_command(deployment, "status").splitlines()
        assert [line.split()[0] for line in status[-2:]] == ["carol", "1"], status
        homes = {line.split()[0]: quota.parse_size("".join(line.split()[1:3])) for line in
                 admin_command(deployment, "homes").splitlines()[1:-1]}  # USER  SIZE (e.g. 3.1 MiB) ... rows
        assert all(homes[name] >= 3_000_000 for name in users), homes  # each wrote 3 MB, running or not
        token = users["alice"].api("POST", "/users/alice/tokens", json={"note": "backup test"}).json()["token"]
        before = {name: home_listing(deployment, name) for name in ("alice", "bob")}

        # What a user may make in their home but no restore writes: left out, with a line each.
        carol = users["carol"]
        carol.execute(carol.start_kernel(), "import os; os.mkfifo('pipe'); os.symlink('../../..', 'up'); "
                                            "os.symlink('/opt/conda/bin/python3', 'py'); open('tool', 'w').close(); "
                                            "os.chmod('tool', 0o4755); 'ok'")

        # The backup runs while carol's kernel writes and people keep logging in.
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
        assert "labhub backup: left out homes/carol/pipe: a device or pipe: no backup of files holds one" in out
        assert "labhub backup: left out homes/carol/up: a link to ../../.., outside its area" in out
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
        deployment = fresh_clone_with(tmp_path / "archive.tar", "backup", deployment.ports)
        restored = restore(deployment)
        assert restored.returncode == 0 and "labhub restore: restored the backup" in restored.stdout, restored.stdout

        assert {name: home_listing(deployment, name) for name in ("alice", "bob")} == before
        again = restore(deployment)
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
        # Her venv-like link came back as it was; the setuid bit did not; the pipe and the link out did not.
        kept = "import os; os.readlink('py'), oct(os.stat('tool').st_mode & 0o7777), os.path.lexists('pipe'), os.path.lexists('up')"
        assert eval(carol.execute(carol.start_kernel(), kept)) == ("/opt/conda/bin/python3", "0o755", False, False)  # noqa: S307
    finally:
        deployment.destroy()


def test_host_folder_homes_and_the_shared_folder_come_back(tmp_path):
    """With LABHUB_HOME_ROOT and --shared: the host folders are deleted and restored as they were."""
    roots = harness.WORK / f"{harness.NAMESPACE}backup-host-folders"
    shutil.rmtree(roots, ignore_errors=True)
    homes, shared = roots / "homes", roots / "shared"
    homes.mkdir(parents=True, mode=0o711)
    shared.mkdir(mode=0o750)
    deployment = harness.Deployment("backuphost", harness.free_ports())
    try:
        deployment.set_env(home_root=homes, shared_dir=shared)
        assert deployment.up(check=False).returncode == 0
        # The hub runs check's engine checks at start and logs what they find.
        assert f"labhub check: LABHUB_SHARED_DIR: {shared} has mode 750" in deployment.service_log("hub")
        os.chmod(shared, 0o2770)
        admin = harness.HubClient(deployment)
        admin.login("admin", deployment.admin_password())
        alice = harness.native_user(deployment, admin, "alice")
        alice.start_server()
        alice.write_file("notes.txt", "on the host\n")
        alice.write_file("shared/team.txt", "for everyone\n")
        alice.stop_server()
        before = listing(str(homes)), listing(str(shared))

        out = admin_command(deployment, "backup", "--shared", "--exclude", ".cache")
        shutil.copy(deployment.dir / out.strip().splitlines()[-1].split()[2], tmp_path / "archive.tar")
        deployment.destroy()
        shutil.rmtree(roots)

        deployment = fresh_clone_with(tmp_path / "archive.tar", "backuphost", deployment.ports)
        restored = restore(deployment)
        assert restored.returncode == 0, restored.stdout
        assert (listing(str(homes)), listing(str(shared))) == before
        assert stat.S_IMODE(shared.stat().st_mode) == 0o2770 and stat.S_IMODE(homes.stat().st_mode) == 0o711

        assert deployment.up(check=False).returncode == 0
        alice = harness.HubClient(deployment)
        assert "/hub/login" not in alice.login("alice", "Lab-Notebook-2026").url
        alice.start_server()
        assert alice.read_file("notes.txt") == "on the host\n"
        assert alice.read_file("shared/team.txt") == "for everyone\n"
    finally:
        deployment.destroy()
        shutil.rmtree(roots, ignore_errors=True)


def test_quota_homes_come_back_held_to_their_quotas(tmp_path):
    """Homes on btrfs with quotas, restored onto a new file system: each is limited again at its
    user's next start, by the same rule (an admin's own quota for the user, a group's, the default)."""
    homes_fs = "backup-quota-homes"
    deployment = harness.Deployment("backupquota", harness.free_ports())
    try:
        with filesystems.btrfs_homes(homes_fs) as homes:
            deployment.set_env(home_root=homes, home_quota="48M")
            assert deployment.up(check=False).returncode == 0
            admin = harness.logged_in_admin(deployment)
            users = {name: harness.native_user(deployment, admin, name) for name in ("alice", "bob", "carol")}
            assert admin.api("POST", "/groups/imaging").status_code == 201
            assert admin.api("PUT", "/groups/imaging/properties", json={"home_quota": "200M"}).status_code == 200
            assert admin.api("POST", "/groups/imaging/users", json={"users": ["bob"]}).status_code == 200
            admin_command(deployment, "quota", "set", "alice", "64M")
            for name, user in users.items():
                user.start_server()
                user.write_file("notes.txt", f"{name}'s notes\n")
                user.stop_server()
            limits = {name: filesystems.qgroup(homes / name)[1] for name in users}
            assert limits == {"alice": 64 * 2**20, "bob": 200 * 2**20, "carol": 48 * 2**20}
            out = admin_command(deployment, "backup")
            shutil.copy(deployment.dir / out.strip().splitlines()[-1].split()[2], tmp_path / "archive.tar")
            deployment.destroy()
        # Another machine: a new btrfs file system at the same place, with quotas on and no home.
        with filesystems.btrfs_homes(homes_fs) as homes:
            assert list(homes.iterdir()) == []
            deployment = fresh_clone_with(tmp_path / "archive.tar", "backupquota", deployment.ports)
            restored = restore(deployment)
            assert restored.returncode == 0, restored.stdout
            assert deployment.up(check=False).returncode == 0
            for name in limits:
                user = harness.HubClient(deployment)
                assert "/hub/login" not in user.login(name, "Lab-Notebook-2026").url
                user.start_server()
                assert user.read_file("notes.txt") == f"{name}'s notes\n"
                user.stop_server()
            assert {name: filesystems.qgroup(homes / name)[1] for name in limits} == limits
            deployment.destroy()
    finally:
        deployment.destroy()
