"""Storage on the host: homes under a host folder, read-only and read-write data folders, the
group-shared folder, the cluster layout and per-user host uids, all checked on the host's files."""

import ast
import os
import shutil
import stat

import pytest

import harness

SHARED_GROUP = "users"  # exists on every Debian host: the test adds no host group


@pytest.fixture(scope="module")
def host(stack):
    root = harness.WORK / f"{stack.project}-host"
    shutil.rmtree(root, ignore_errors=True)
    folders = {name: root / name for name in ("homes", "data", "results", "shared", "cluster")}
    for path in folders.values():
        path.mkdir(parents=True)
    (folders["data"] / "measurements.csv").write_text("t,v\n0,1\n")
    folders["results"].chmod(0o1777)  # the admin's choice of who may write there: here, everyone
    (folders["cluster"] / "README").write_text("the cluster's tree\n")
    (folders["cluster"] / "README").chmod(0o666)  # so only the read-only mount can stop a write
    harness.run(str(harness.REPO / "host-setup"), "shared-folder", str(folders["shared"]), SHARED_GROUP)
    try:
        yield folders
    finally:
        shutil.rmtree(root, ignore_errors=True)


def python(user, code: str):
    """Runs code in the user's kernel; the last expression's value comes back as a Python value."""
    return ast.literal_eval(user.execute(user.start_kernel(), code))


WRITE = """
def write(path, text="x"):
    try:
        with open(path, "a") as f:
            f.write(text)
        return "ok"
    except OSError as e:
        return e.strerror
"""


def test_host_folders_shared_group_cluster_and_per_user_ids(stack, host, admin):
    settings = dict(home_root=host["homes"], shared_dir=host["shared"], cluster_dir=host["cluster"],
                    data_mounts=f"{host['data']}:/home/jovyan/data:ro,{host['results']}:/home/jovyan/results:rw",
                    user_ids="per-user")
    with stack.configured(**settings):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        ann, jo, obrien = (harness.native_user(stack, admin, name) for name in ("ann", "mary-kate", "d'arcy"))
        for user in (ann, jo, obrien):
            user.start_server()

        # Data: read-only stays read-only; read-write files on the host carry the user's own uid.
        assert python(ann, WRITE + "open('data/measurements.csv').read(), write('data/new.csv')") == \
            ("t,v\n0,1\n", "Read-only file system")
        wrote, uid_ann = python(ann, WRITE + "import os; write('results/ann.txt'), os.getuid()")
        assert wrote == "ok"
        wrote, uid_jo = python(jo, WRITE + "import os; write('results/jo.txt'), os.getuid()")
        assert wrote == "ok"
        assert uid_ann != uid_jo and min(uid_ann, uid_jo) >= 20000
        assert (host["results"] / "ann.txt").stat().st_uid == uid_ann
        assert (host["results"] / "jo.txt").stat().st_uid == uid_jo

        # Homes: one host folder per user, the escaped name, owned by the user, bootstrap inside.
        uid_obrien = python(obrien, "import os; os.getuid()")
        for name, uid in (("ann", uid_ann), ("mary-2dkate", uid_jo), ("d-27arcy", uid_obrien)):
            home = host["homes"] / name
            assert (home.stat().st_uid, stat.S_IMODE(home.stat().st_mode)) == (uid, 0o700)
            assert (home / "HowTo.md").exists()

        # Shared folder: ann's file and folder are editable by jo; all of it is the host group's.
        assert python(ann, WRITE + "import os; os.mkdir('shared/sub'); write('shared/notes.txt', 'ann\\n')") == "ok"
        assert python(jo, WRITE + "write('shared/notes.txt', 'jo\\n'), write('shared/sub/jo.txt')") == ("ok", "ok")
        assert (host["shared"] / "notes.txt").read_text() == "ann\njo\n"
        gid = host["shared"].stat().st_gid
        for path in ("notes.txt", "sub", "sub/jo.txt"):
            st = (host["shared"] / path).stat()
            assert st.st_gid == gid and st.st_mode & stat.S_IWGRP, path

        # Cluster: the tree is read-only, the user's own subfolder writable, its group the user's id.
        assert python(ann, WRITE + f"write('{host['cluster']}/README'), write('{host['cluster']}/ann/job.sh')") == \
            ("Read-only file system", "ok")
        assert (host["cluster"] / "ann" / "job.sh").stat().st_uid == uid_ann
        area = (host["cluster"] / "ann").stat()
        assert (area.st_uid, area.st_gid, stat.S_IMODE(area.st_mode)) == (0, uid_ann, 0o2770)
        assert python(jo, f"import os; os.access('{host['cluster']}/ann', os.R_OK)") is False

        # Stable: the same uid and home after the server and the hub restart.
        ann.write_file("keep.txt", "kept")
        ann.stop_server()
        stack.compose("restart", "hub")
        stack.up()
        again = harness.HubClient(stack)
        again.login("ann", "Lab-Notebook-2026")
        again.start_server()
        assert again.read_file("keep.txt") == "kept"
        assert python(again, "import os; os.getuid()") == uid_ann


# Everything a user in a terminal might try on another's cluster area, run in their kernel as
# themselves: each way's result, or the error it met.
PRY = """
import glob, os, subprocess
def pry(cluster, victim, own):
    def tried(do):
        try:
            return do()
        except OSError as e:
            return e.strerror
    def run(*command):
        done = subprocess.run(command, capture_output=True, text=True)
        return done.stdout + done.stderr
    area = f"{cluster}/{victim}"
    link = f"{cluster}/{own}/to-{victim}"
    tried(lambda: os.symlink(f"{area}/secret.txt", link))
    return {
        "uid": os.getuid(),
        "listdir": tried(lambda: os.listdir(area)),
        "open": tried(lambda: open(f"{area}/secret.txt").read()),
        "write": tried(lambda: open(f"{area}/planted.txt", "w").close()),
        "ls": run("ls", "-la", area),
        "cat": run("cat", f"{area}/secret.txt"),
        "find": run("find", cluster, "-name", "*.txt"),
        "grep": run("grep", "-r", "secret", cluster),
        "symlink": tried(lambda: open(link).read()),
        "proc": glob.glob(f"/proc/*/root{area}/*") + glob.glob("/proc/*/cwd/secret.txt"),
        "tree": open(f"{cluster}/README").read(),
        "own": tried(lambda: open(f"{cluster}/{own}/secret.txt").read()),
    }
"""


def test_each_users_cluster_area_is_theirs_alone_though_every_server_is_uid_1000(stack, host):
    """The default mode: every server runs as uid 1000, so the user's own group keeps their area
    from the others: from an area made after the other's server started, from one an older
    LabHub made open (closed at its user's next start), whatever the other tries in a terminal."""
    cluster = host["cluster"]
    older = cluster / "walt"  # as an older LabHub made it: uid 1000's, mode 0700, a secret inside
    older.mkdir()
    (older / "secret.txt").write_text("walt's secret")
    os.chown(older, 1000, 1000)
    os.chown(older / "secret.txt", 1000, 1000)
    older.chmod(0o700)
    with stack.configured(cluster_dir=cluster):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        vera = harness.native_user(stack, admin, "vera")
        vera.start_server()
        users = {"vera": vera, "una": harness.native_user(stack, admin, "una"), "walt": harness.native_user(stack, admin, "walt")}
        for name in ("una", "walt"):  # their areas are made (or closed) after vera's server started
            users[name].start_server()
        for name in ("vera", "una"):
            assert python(users[name], WRITE + f"write('{cluster}/{name}/secret.txt', \"{name}'s secret\")") == "ok"

        for name, victim in (("vera", "una"), ("una", "vera"), ("vera", "walt"), ("walt", "una")):
            seen = python(users[name], PRY + f"pry({str(cluster)!r}, {victim!r}, {name!r})")
            assert seen["uid"] == 1000  # as themselves, the same uid as the victim's files
            assert seen["own"] == f"{name}'s secret"  # their own area: theirs to read
            assert seen["tree"] == "the cluster's tree\n"  # the read-only tree: everyone's
            for way in ("listdir", "open", "write", "symlink"):
                assert seen[way] == "Permission denied", (name, victim, way, seen[way])
            for way in ("ls", "cat", "find", "grep"):
                assert f"{victim}'s secret" not in seen[way] and "Permission denied" in seen[way], (name, victim, way, seen[way])
            assert f"{cluster}/{victim}/secret.txt" not in seen["find"]
            assert seen["proc"] == []
        assert not (cluster / "una" / "planted.txt").exists()

        groups = set()
        for name in ("vera", "una", "walt"):
            area = (cluster / name).stat()
            assert (area.st_uid, stat.S_IMODE(area.st_mode)) == (0, 0o2770), name
            groups.add(area.st_gid)
        assert len(groups) == 3 and min(groups) >= 20000
        assert f"labhub: {cluster}/walt: made by an older LabHub, owned by 1000:1000" in stack.service_log("hub")
        for user in users.values():
            user.stop_server()


def test_missing_host_folder_stops_the_hub_with_one_clear_line(stack):
    stack.set_env(data_mounts="/nonexistent-lab-data:/home/jovyan/data:ro")
    try:
        assert stack.up(check=False).returncode != 0
        lines = [line for line in stack.service_log("hub").splitlines() if "labhub: error" in line]
        assert lines[-1] == ("labhub: error: LABHUB_DATA_MOUNTS: host folder /nonexistent-lab-data does not "
                             "exist; create it (see README, Storage) or change the setting (in .env, see .env.template)")
    finally:
        stack.set_env()
        stack.up()
