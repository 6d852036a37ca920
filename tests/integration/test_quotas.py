"""Home quotas on real file systems, made by the test on image files: btrfs with quotas (qgroups),
which this machine's kernel has; ZFS datasets, through zfs-fuse (this kernel has no ZFS module);
XFS with project quotas where the kernel mounts it so, else skipped with the reason. A user fills
their home: their saves fail and say why, their server still starts and they can clean up, nobody
else notices, the admin sees it, and a user who tries to get out of their quota fails. (The
decisions and parsing: tests/unit/test_quota.py.)"""

import ast
import concurrent.futures
import contextlib
import os
import re
import subprocess
import time

import pytest

import filesystems
import harness

QUOTA = 48 * 2**20
THESIS = "thesis.tex"


@pytest.fixture(scope="module")
def btrfs_homes():
    with filesystems.btrfs_homes("quota-btrfs") as homes:
        yield homes


def python(user, code: str):
    return ast.literal_eval(user.execute(user.start_kernel(), code))


# Writes 1 MiB at a time (each flushed to disk) until the file system refuses: MiB written, why.
FILL = """
import os
def fill(path, most=400):
    written = 0
    try:
        with open(path, "wb") as f:
            while written < most:
                f.write(b"x" * 2**20)
                f.flush()
                os.fsync(f.fileno())
                written += 1
    except OSError as e:
        return written, e.strerror
    return written, "no error"
"""

# What a user can try to get out of their quota on btrfs: make a subvolume (a qgroup of its own) or
# snapshot their home, by every ioctl there is for it, with the request's upper bits set too.
ESCAPE = FILL + """
import fcntl, struct
def escape(home):
    tried = {}
    fd = os.open(home, os.O_RDONLY)
    for name, nr, args in (("subvolume", 14, struct.pack("q4088s", 0, b"sub1")),
                           ("subvolume v2", 24, struct.pack("qQQ32s4040s", 0, 0, 0, b"", b"sub2")),
                           ("snapshot", 1, struct.pack("q4088s", fd, b"snap1")),
                           ("snapshot v2", 23, struct.pack("qQQ32s4040s", fd, 0, 0, b"", b"snap2"))):
        for high in (0, 0xFFFFFFFF00000000):
            request = high | 1 << 30 | len(args) << 16 | 0x94 << 8 | nr
            try:
                fcntl.ioctl(fd, request, bytearray(args), True)
                tried[f"{name} {high:x}"] = "made"
            except OSError as e:
                tried[f"{name} {high:x}"] = e.strerror
    made = [d for d in os.listdir(home) if d.startswith(("sub", "snap"))]
    return tried, made, [fill(f"{home}/{d}/more.bin", 20) for d in made]
"""

# What a user can try to get out of a ZFS quota from their own server: reach ZFS's control device
# (to make a dataset or change a refquota), or make a snapshot through the home's .zfs folder.
ZFS_ESCAPE = """
import os
tried = {}
for name, attempt in (("/dev/zfs", lambda: os.close(os.open("/dev/zfs", os.O_RDWR))),
                      ("snapshot", lambda: os.mkdir(os.path.expanduser("~/.zfs/snapshot/escape")))):
    try:
        attempt()
        tried[name] = "done"
    except OSError as e:
        tried[name] = e.strerror
tried
"""

# A file of the user's own moved to project 0 (FS_IOC_FSGETXATTR, then FS_IOC_FSSETXATTR).
XFS_PROJECT_0 = """
import fcntl, os, struct
fd = os.open("escape.bin", os.O_CREAT | os.O_WRONLY)
attr = bytearray(28)
fcntl.ioctl(fd, 0x801C581F, attr, True)
struct.pack_into("I", attr, 12, 0)  # fsx_projid
try:
    fcntl.ioctl(fd, 0x401C5820, attr, True)
    result = "moved"
except OSError as e:
    result = e.strerror
result
"""

NOTEBOOK = {"type": "notebook", "content": {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "results"}],
                                            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}


def spawn_page_while_starting(user: harness.HubClient) -> str:
    """The spawn page (/hub/spawn-pending) as the user's browser gets it while their server starts,
    once it shows a notice."""
    page = user.url(f"/hub/spawn-pending/{user.user}")
    viewer = user.deployment.session()
    viewer.cookies.update(user.http.cookies)
    with concurrent.futures.ThreadPoolExecutor(1) as background:
        started = background.submit(user.request_server)
        while not started.done():
            r = viewer.get(page, allow_redirects=False, timeout=30)
            if r.status_code == 200 and 'id="labhub-notice"' in r.text:
                return r.text
            time.sleep(0.05)
    raise AssertionError(f"{user.user}'s server was up before its spawn page showed a notice: {started.result().text}")


def admin_command(stack, *args) -> str:
    result = stack.compose("run", "--rm", "-T", "admin", *args, check=False)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_btrfs_holds_each_home_to_its_quota_and_a_full_home_stops_nobody(stack, btrfs_homes):
    olaf = btrfs_homes / "olaf"  # a home from before quotas: a plain folder with the user's work
    olaf.mkdir(mode=0o700)
    (olaf / THESIS).write_text("chapter 1")
    (olaf / "passwd").symlink_to("/etc/passwd")  # planted: the conversion, run as root, must copy the link, not follow it
    for path in (olaf, olaf / THESIS, olaf / "passwd"):
        os.chown(path, 1000, 1000, follow_symlinks=False)
    with stack.configured(home_root=btrfs_homes, home_quota="48M"):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        users = {name: harness.native_user(stack, admin, name) for name in ("hana", "ivo", "olaf")}
        try:
            for user in users.values():
                user.start_server()
            hana, ivo = users["hana"], users["ivo"]
            # Every home is limited, the plain folder too: it is a subvolume now, its files and owner kept.
            for name in users:
                assert filesystems.qgroup(btrfs_homes / name)[1] == QUOTA, name
            assert os.stat(olaf).st_ino == 256 and (os.stat(olaf).st_uid, os.stat(olaf).st_mode & 0o777) == (1000, 0o700)
            assert users["olaf"].read_file(THESIS) == "chapter 1"
            assert os.readlink(olaf / "passwd") == "/etc/passwd" and os.lstat(olaf / "passwd").st_uid == 1000
            assert not list(btrfs_homes.glob("*.labhub-subvolume"))

            # The lab shows the home's disk next to memory and CPU (jupyter-resource-usage).
            metrics = hana.http.get(hana.url(f"{hana.server_path}api/metrics/v1"), timeout=30).json()
            assert metrics["disk_used"] > 0 and metrics["limits"]["disk"]["disk"] > 0, metrics

            # A user who tries to get out of their quota fails every way.
            tried, made, filled = python(hana, ESCAPE + "escape(os.path.expanduser('~'))")
            assert set(tried.values()) == {"Operation not permitted"} and made == [] and filled == [], (tried, made, filled)

            saved = hana.server_api("PUT", "/contents/results.ipynb", json=NOTEBOOK)
            assert saved.status_code == 201, saved.text
            # hana fills her home: the file system stops her at her quota.
            written, error = python(hana, FILL + "fill('fill.bin')")
            assert error == "Disk quota exceeded" and 30 <= written <= 48, (written, error)
            used, limit = filesystems.qgroup(btrfs_homes / "hana")
            assert used >= 0.95 * limit
            # Her save fails and says why; the lab shows the message.
            r = hana.server_api("PUT", "/contents/analysis.ipynb", json=NOTEBOOK)
            assert r.status_code == 500 and "Disk quota exceeded" in r.json()["message"], r.text

            # Nobody else pays: ivo saves, the hub answers.
            ivo.write_file("notes.txt", "ivo's notes")
            assert ivo.read_file("notes.txt") == "ivo's notes"
            assert admin.api("GET", "/users").status_code == 200

            # The admin sees it: homes fullest first with quota and use; status names her.
            homes = admin_command(stack, "homes").splitlines()
            assert homes[0].split() == ["USER", "SIZE", "QUOTA", "USE"]
            assert homes[1].split()[0] == "hana" and homes[1].split()[3:5] == ["48.0", "MiB"], homes
            assert int(homes[1].split()[-1].rstrip("%")) >= 95, homes
            assert "1 at 90% of their quota or more" in homes[-1]
            assert any(line.startswith("hana's home is ") and "full" in line for line in admin_command(stack, "status").splitlines())
            checked = admin_command(stack, "check")
            assert "HOME_QUOTA" not in checked and checked.rstrip().endswith("labhub check: no problems found"), checked

            # A full home still starts. Its spawn page says why saves fail and waits for her to go on
            # (JupyterHub's would go on to the server the moment it is up); the file browser and a
            # terminal work, and she can clean up.
            hana.stop_server()
            page = spawn_page_while_starting(hana)
            notice = re.search(r'<div id="labhub-notice"[^>]*>([^<]*)</div>', page)
            assert notice and re.match(r"Your home folder is (9\d|100) % full \(4\d\.\d MiB of its 48\.0 MiB quota\)\. "
                                       "When it is full, saving files fails with &#34;Disk quota exceeded&#34;", notice[1]), page
            assert 'id="labhub-go-on"' in page and "EventSource" not in page, page
            hana.wait_ready()
            hana.lab().raise_for_status()
            assert "labhub: the home of hana is " in stack.service_log("hub")
            assert {item["name"] for item in hana.server_api("GET", "/contents").json()["content"]} >= {"fill.bin", "results.ipynb"}
            opened = hana.server_api("GET", "/contents/results.ipynb")  # her work opens (notebook trust writes nothing new)
            assert opened.status_code == 200 and opened.json()["content"]["cells"][0]["source"] == "results", opened.text
            assert hana.server_api("POST", "/terminals").status_code == 200
            assert hana.server_api("DELETE", "/contents/fill.bin").status_code == 204
            r = hana.server_api("PUT", "/contents/analysis.ipynb", json=NOTEBOOK)
            assert r.status_code in (200, 201), r.text

            # The admin's own quota for a user is in force at once, and survives her next start.
            assert "in force" in admin_command(stack, "quota", "set", "hana", "100M")
            assert filesystems.qgroup(btrfs_homes / "hana")[1] == 100 * 2**20
            assert "hana: 100M" in admin_command(stack, "quota")
            # A group's home_quota property applies at its members' next start.
            assert admin.api("POST", "/groups/bigdata").status_code == 201
            assert admin.api("PUT", "/groups/bigdata/properties", json={"home_quota": "200M"}).status_code == 200
            assert admin.api("POST", "/groups/bigdata/users", json={"users": ["ivo"]}).status_code == 200
            ivo.stop_server()
            ivo.start_server()
            assert filesystems.qgroup(btrfs_homes / "ivo")[1] == 200 * 2**20
            assert ivo.read_file("notes.txt") == "ivo's notes"
            assert "(group bigdata's home_quota)" in admin_command(stack, "quota", "reset", "ivo")
            assert "(LABHUB_HOME_QUOTA)" in admin_command(stack, "quota", "reset", "hana")
            assert filesystems.qgroup(btrfs_homes / "hana")[1] == QUOTA
        finally:
            for user in users.values():
                with contextlib.suppress(Exception):
                    user.stop_server()
            admin.api("DELETE", "/groups/bigdata")


def test_xfs_project_quotas_where_the_kernel_has_them(stack):
    """Most lab hubs put homes on XFS with prjquota; kernels without quota support (this test
    machine's: no CONFIG_QUOTA) refuse that mount, and this test is skipped, saying so."""
    with contextlib.ExitStack() as mounted:
        try:
            root = mounted.enter_context(filesystems.loop_mounted("quota-xfs", ["mkfs.xfs", "-q"], "prjquota"))
        except filesystems.CannotMount as e:
            pytest.skip(str(e))
        homes = root / "homes"
        homes.mkdir(mode=0o711)
        with stack.configured(home_root=homes, home_quota="48M"):
            admin = harness.HubClient(stack)
            admin.login("admin", stack.admin_password())
            pia = harness.native_user(stack, admin, "pia")
            try:
                pia.start_server()
                # XFS reports a project's quota as the folder's size: df and the lab's meter tell the truth.
                assert python(pia, "import os; s = os.statvfs('.'); s.f_blocks * s.f_frsize") == QUOTA
                # Giving a file project 0 (no limit) is refused.
                assert python(pia, XFS_PROJECT_0) == "Operation not permitted"
                written, error = python(pia, FILL + "fill('fill.bin')")
                assert error == "Disk quota exceeded" and written <= 48, (written, error)
                assert pia.server_api("DELETE", "/contents/fill.bin").status_code == 204
            finally:
                pia.stop_server()


@pytest.fixture
def zfs_homes():
    try:
        with filesystems.zfs_homes("quota-zfs") as homes:
            yield homes
    except filesystems.CannotMount as e:
        pytest.skip(str(e))


def test_zfs_gives_each_home_a_dataset_held_to_its_quota(stack, zfs_homes):
    """Labs on ZFS: each home a dataset with a refquota, made by the host's own zfs command, which
    LabHub runs in the engine's mount namespace (here zfs-fuse's: this kernel has no ZFS module). A
    home from before quotas becomes a dataset; one whose conversion a crash cut short is finished
    or redone at the next start, losing nothing."""
    def folder(path, files):
        path.mkdir(mode=0o700)
        for name, text in files.items():
            (path / name).write_text(text)
        for each in (path, *path.iterdir()):
            os.chown(each, 1000, 1000, follow_symlinks=False)

    zeno = zfs_homes / "zeno"  # a home from before quotas: a plain folder with the user's work
    folder(zeno, {THESIS: "chapter 1"})
    (zeno / "passwd").symlink_to("/etc/passwd")  # the conversion, run as root, must copy the link, not follow it
    os.chown(zeno / "passwd", 1000, 1000, follow_symlinks=False)
    # Conversions cut short, as a crash would leave them (the dataset mounted beside the home): xavi's
    # after the folder was moved aside (the copy whole), wren's during the copy (the folder whole).
    for name in ("xavi", "wren"):
        subprocess.run(["zfs", "create", "-o", f"mountpoint={zfs_homes}/{name}.labhub-dataset",
                        f"labhub-quota-zfs/homes/{name}"], check=True)
    (zfs_homes / "xavi.labhub-dataset" / THESIS).write_text("chapter 2")
    folder(zfs_homes / "xavi.labhub-folder", {THESIS: "chapter 2"})
    folder(zfs_homes / "wren", {THESIS: "chapter 3", "data.csv": "1,2,3"})
    (zfs_homes / "wren.labhub-dataset" / THESIS).write_text("chap")
    for path in (zfs_homes / "xavi.labhub-dataset", zfs_homes / "xavi.labhub-dataset" / THESIS):
        os.chown(path, 1000, 1000)
    (zfs_homes / "xavi.labhub-dataset").chmod(0o700)
    with stack.configured(home_root=zfs_homes, home_quota="48M"):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        users = {name: harness.native_user(stack, admin, name) for name in ("yara", "zeno", "xavi", "wren")}
        try:
            for user in users.values():
                user.start_server()
            yara, zeno_user = users["yara"], users["zeno"]
            # A new home and the plain folder are each a dataset of the home root's, limited; the
            # folder's files, link and owner kept.
            for name in users:
                assert filesystems.dataset(zfs_homes / name)[::2] == (f"labhub-quota-zfs/homes/{name}", QUOTA), \
                    re.findall(f"labhub: the home of {name} .*", stack.service_log("hub"))
            assert (os.stat(zeno).st_uid, os.stat(zeno).st_mode & 0o777) == (1000, 0o700)
            assert zeno_user.read_file(THESIS) == "chapter 1"
            assert os.readlink(zeno / "passwd") == "/etc/passwd" and os.lstat(zeno / "passwd").st_uid == 1000
            # The cut-short conversions are finished, and nothing of either home is lost.
            assert users["xavi"].read_file(THESIS) == "chapter 2"
            assert (users["wren"].read_file(THESIS), users["wren"].read_file("data.csv")) == ("chapter 3", "1,2,3")
            assert sorted(p.name for p in zfs_homes.iterdir()) == ["wren", "xavi", "yara", "zeno"]

            # ZFS reports a dataset's refquota as its size: df and the lab's meter tell the truth.
            size = python(yara, "import os; s = os.statvfs('.'); s.f_blocks * s.f_frsize")
            assert 0.97 * QUOTA <= size <= 1.03 * QUOTA, size
            metrics = yara.http.get(yara.url(f"{yara.server_path}api/metrics/v1"), timeout=30).json()
            assert 0.97 * QUOTA <= metrics["limits"]["disk"]["disk"] <= 1.03 * QUOTA, metrics

            # From her own server, as a terminal would, she can neither reach ZFS nor snapshot her home.
            tried = python(yara, ZFS_ESCAPE)
            assert "done" not in tried.values() and tried["/dev/zfs"] == "No such file or directory", tried
            assert not subprocess.run(["zfs", "list", "-H", "-t", "snapshot"], capture_output=True, text=True).stdout

            # yara fills her home: ZFS stops her at her quota, and her save fails saying why.
            written, error = python(yara, FILL + "fill('fill.bin')")
            assert error == "Disk quota exceeded" and 30 <= written <= 48, (written, error)
            r = yara.server_api("PUT", "/contents/analysis.ipynb", json=NOTEBOOK)
            assert r.status_code == 500 and "Disk quota exceeded" in r.json()["message"], r.text
            # Nobody else pays.
            zeno_user.write_file("notes.txt", "zeno's notes")
            assert zeno_user.read_file("notes.txt") == "zeno's notes"

            # The admin sees her home, its quota enforced, at the top.
            homes = admin_command(stack, "homes").splitlines()
            assert homes[1].split()[0] == "yara" and homes[1].split()[3:5] == ["48.0", "MiB"], homes
            assert int(homes[1].split()[-1].rstrip("%")) >= 95 and "not enforced" not in "".join(homes), homes
            checked = admin_command(stack, "check")
            assert "HOME_QUOTA" not in checked, checked

            # Her full home starts again, and she cleans up. Her dataset, unmounted meanwhile (as an
            # admin might), is mounted again first: she finds her files, not an empty folder.
            yara.stop_server()
            subprocess.run(["zfs", "umount", "labhub-quota-zfs/homes/yara"], check=True)
            yara.start_server()
            assert yara.server_api("DELETE", "/contents/fill.bin").status_code == 204
            r = yara.server_api("PUT", "/contents/analysis.ipynb", json=NOTEBOOK)
            assert r.status_code in (200, 201), r.text

            # The admin's quota for a user is in force at once; one below what the home holds (which
            # ZFS refuses to set) holds it where it is.
            assert "in force" in admin_command(stack, "quota", "set", "yara", "100M")
            assert filesystems.dataset(zfs_homes / "yara")[2] == 100 * 2**20
            assert "in force" in admin_command(stack, "quota", "set", "zeno", "1K")
            _, referenced, refquota = filesystems.dataset(zeno)
            assert refquota == referenced > 2**10
            for name in users:
                assert "(LABHUB_HOME_QUOTA)" in admin_command(stack, "quota", "reset", name)
            assert filesystems.dataset(zeno)[2] == QUOTA
        finally:
            for user in users.values():
                with contextlib.suppress(Exception):
                    user.stop_server()
