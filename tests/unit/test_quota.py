"""Home quotas' decisions and parsing: sizes, what each file system can enforce, whose quota wins,
how a start limits a home, what the admin sees. On real btrfs (and XFS where this kernel allows):
tests/integration/test_quotas.py."""

import asyncio
import dataclasses
import json
import logging
import sqlite3
from types import SimpleNamespace

import docker
import pytest
from traitlets.config import Config

from labhub import bootstrap, checks, quota, settings, storage
from labhub.context import EngineFacts
from labhub.settings import SettingError
from labhub.storage import HostFolder

from contexts import STACK, hub_context

G = 2**30


def load(**labhub):
    return settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})


@pytest.mark.parametrize("text, size", [("20G", 20 * G), ("20g", 20 * G), ("1.5T", int(1.5 * 2**40)), ("512MiB", 512 * 2**20),
                                        ("100K", 100 * 1024), ("4096", 4096), ("none", 0), ("NONE", 0),
                                        ("", None), ("20 GB!", None), ("-1G", None), ("G", None)])
def test_sizes_are_binary_units_and_none_is_no_limit(text, size):
    assert quota.parse_size(text) == size


def test_sizes_are_printed_in_the_largest_unit_that_fits():
    assert [quota.format_size(n) for n in (0, 1023, 2**20, 19.5 * G, 3 * 2**40)] == [
        "0 B", "1023 B", "1.0 MiB", "19.5 GiB", "3.0 TiB"]


@pytest.mark.parametrize("fs_type, options, quotas_on, dataset, name, problem", [
    ("btrfs", frozenset({"rw"}), True, "", "btrfs", ""),
    ("btrfs", frozenset({"rw"}), False, "", "", "without quotas: run `sudo btrfs quota enable <its mount point>`"),
    ("xfs", frozenset({"rw", "prjquota"}), False, "", "xfs", ""),
    ("xfs", frozenset({"rw", "pquota"}), False, "", "xfs", ""),
    ("xfs", frozenset({"rw", "usrquota"}), False, "", "", "without project quotas: add prjquota to its mount options"),
    ("zfs", frozenset(), True, "tank/homes", "zfs", ""),
    ("fuse.zfs", frozenset(), True, "tank/homes", "zfs", ""),
    ("zfs", frozenset(), False, "", "", "inside a dataset with other files: make the home root a dataset of its own "
                                        "(`sudo zfs create -o mountpoint=/srv/homes <pool>/homes`"),
    ("zfs", frozenset(), False, "tank/homes", "", "the host's zfs command does not answer LabHub's helper container, "
                                                  "or would mount tank/homes's children elsewhere: install ZFS's tools "
                                                  "on the host (zfsutils-linux) and `sudo zfs set mountpoint=/srv/homes "
                                                  "tank/homes`"),
    ("ext4", frozenset({"rw"}), False, "", "", "on ext4, which LabHub cannot limit per home: put them on XFS"),
])
def test_what_each_file_system_can_enforce(fs_type, options, quotas_on, dataset, name, problem):
    found = quota.backend("/srv/homes", fs_type, options, quotas_on, dataset)
    assert found.name == name and problem in found.problem and bool(found.problem) == bool(problem)
    assert (found.root, found.dataset) == (("/srv/homes", dataset) if name == "zfs" else ("", ""))


def test_a_quota_not_enforced_is_one_line_naming_the_setting_the_fix_and_the_fallback():
    line = quota.not_enforced(load(home_root="/srv/homes", home_quota="20G"),
                              quota.backend("/srv/homes", "ext4", frozenset(), False))
    assert "\n" not in line
    assert line.startswith("LABHUB_HOME_QUOTA: homes under /srv/homes are on ext4")
    assert "put them on XFS with prjquota, on btrfs or on a ZFS dataset" in line and "only measures homes" in line


def test_the_users_own_quota_wins_then_the_largest_groups_then_the_default(tmp_path):
    overrides = quota.Overrides(tmp_path / "q.json")
    groups = [("students", {"home_quota": "10G"}), ("staff", {"home_quota": "50G"}), ("other", {"colour": "red"})]
    assert quota.quota_for("ann", [], overrides, "20G") == (20 * G, "LABHUB_HOME_QUOTA")
    assert quota.quota_for("ann", groups, overrides, "20G") == (50 * G, "group staff's home_quota")
    assert quota.quota_for("ann", groups + [("phd", {"home_quota": "none"})], overrides, "20G") == (0, "group phd's home_quota")
    assert quota.quota_for("ann", [("typo", {"home_quota": "lots"})], overrides, "20G")[0] == 20 * G
    overrides.set("ann", "5G")
    assert quota.quota_for("ann", groups, quota.Overrides(tmp_path / "q.json"), "20G") == (5 * G, "set for the user (./labhub quota)")
    assert quota.quota_for("bob", [], overrides, "none") == (0, "LABHUB_HOME_QUOTA")
    overrides.set("ann", None)
    assert json.loads((tmp_path / "q.json").read_text()) == {}


@pytest.mark.parametrize("env, message", [
    ({"home_quota": "20G"}, "LABHUB_HOME_QUOTA: homes are Docker volumes, which Docker cannot limit in size; set "
                            "LABHUB_HOME_ROOT"),
    ({"home_quota": "lots", "home_root": "/srv/homes"}, "LABHUB_HOME_QUOTA: 'lots' is not a size"),
])
def test_quota_settings_refused_with_one_line(env, message):
    with pytest.raises(SettingError) as e:
        load(**env)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_quota_settings_read():
    assert load(home_root="/h", home_quota="none").home_quota == "none"
    assert load(home_root="/h", home_quota="20G").home_quota == "20G"
    assert load().home_quota == ""


def test_what_the_quota_script_prints_is_read_as_use_or_not_yet():
    assert quota.parse_use("1048576 52428800\n") == quota.Use(2**20, 50 * 2**20)
    assert quota.parse_use("1048576 0") == quota.Use(2**20, 0)
    assert quota.parse_use("not-yet-a-subvolume ") is None
    assert quota.parse_use("ERROR: quota not enabled ") is None
    assert quota.Use(45, 50).fraction == 0.9 and quota.Use(45, 0).fraction == 0.0


def test_measured_homes_keep_names_with_spaces_whole():
    assert quota.parse_measured("ann 10 100\nodd name 5 0\n") == {"ann": quota.Use(10, 100), "odd name": quota.Use(5, 0)}


def test_a_start_logs_a_home_near_its_quota_as_a_warning(caplog):
    log = logging.getLogger("test")
    with caplog.at_level(logging.INFO):
        quota.log_use(log, "ann", quota.Use(46 * 2**20, 50 * 2**20), "", "12")
        quota.log_use(log, "bob", quota.Use(2**20, 50 * 2**20), "", "9")
        quota.log_use(log, "cy", None, "ERROR: cannot find qgroup ", "30")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "labhub: the home of ann is 92 % full (46.0 MiB of 50.0 MiB): saves fail at its quota (limit set in 12 ms)"),
        ("INFO", "labhub: the home of bob uses 1.0 MiB of 50.0 MiB (limit set in 9 ms)"),
        ("WARNING", "labhub: the home of cy has no quota yet: ERROR: cannot find qgroup (limit set in 30 ms)")]


MOUNTINFO = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
845 820 7:0 /homes /probe/0 ro,relatime - xfs /dev/loop0 rw,attr2,inode64,prjquota
846 820 0:48 / /probe/1 rw,relatime - btrfs /dev/loop1 rw,space_cache=v2,subvolid=5,subvol=/
847 820 0:52 / /probe/2 rw,relatime - zfs tank/homes rw,xattr,posixacl
848 820 0:53 /homes /probe/3 rw,relatime - zfs tank/data rw,xattr,posixacl
"""


def test_a_folders_file_system_is_read_from_the_mount_table():
    assert storage._mount_entry(MOUNTINFO, "/probe/0")[:3] == ("7:0", "xfs", frozenset(
        {"ro", "relatime", "rw", "attr2", "inode64", "prjquota"}))
    assert storage._mount_entry(MOUNTINFO, "/probe/1")[:2] == ("0:48", "btrfs")
    assert storage._mount_entry(MOUNTINFO, "/probe/9") == ("", "", frozenset(), "")
    # A ZFS dataset is named where the folder is its root: not for a folder inside one.
    assert storage._mount_entry(MOUNTINFO, "/probe/2")[1::2] == ("zfs", "tank/homes")
    assert storage._mount_entry(MOUNTINFO, "/probe/3")[1::2] == ("zfs", "")


def facts(folders, docker_root="/var/lib/docker", home_quotas=None):
    return EngineFacts(api_version=(1, 41), cpus=2, memory=8 * G, folders=folders, gpus=[], docker_root=docker_root,
                       home_quotas=home_quotas)


def test_check_warns_of_homes_on_dockers_file_system_and_of_full_file_systems():
    root = HostFolder(0, 0o711, "254:1", "ext4", used=0.5)
    assert checks.disk_warnings(facts({"/var/lib/docker": root}), load())[0].startswith(
        "LABHUB_HOME_ROOT: homes are Docker volumes, on Docker's data root")
    same = {"/var/lib/docker": root, "/srv/homes": HostFolder(0, 0o755, "254:1", "ext4", used=0.5)}
    assert checks.disk_warnings(facts(same), load(home_root="/srv/homes")) == [
        "LABHUB_HOME_ROOT: /srv/homes is on the file system of Docker's data root (/var/lib/docker: the images, the "
        "hub's database), so a full home stops the hub too; put homes on a file system of their own (README, Disk and quotas)"]
    own = {"/var/lib/docker": HostFolder(0, 0o711, "254:1", "ext4", used=0.95),
           "/srv/homes": HostFolder(0, 0o755, "7:0", "xfs", used=0.2), "/data": HostFolder(0, 0o755, "254:1", "ext4", used=0.95)}
    assert checks.disk_warnings(facts(own), load(home_root="/srv/homes", data_mounts="/data:/data")) == [
        "/var/lib/docker: its file system is 95% full, Docker's data root (the images, the hub's database); free space "
        "there before saves and starts fail"]  # /data is on the same file system: said once


def test_check_names_a_quota_the_file_system_cannot_enforce():
    s = load(home_root="/srv/homes", home_quota="20G")
    found = quota.backend("/srv/homes", "ext4", frozenset(), False)
    no_images = SimpleNamespace(api=SimpleNamespace(images=lambda filters: []))
    problems = checks.engine_problems(no_images, STACK, facts({}, home_quotas=found), s)
    assert problems == [quota.not_enforced(s, found)]
    assert checks.engine_problems(no_images, STACK, facts({}, home_quotas=quota.Backend("btrfs")), s) == []


def test_groups_and_their_properties_are_read_from_the_hubs_database(tmp_path):
    database = tmp_path / "jupyterhub.sqlite"
    with sqlite3.connect(database) as db:
        db.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
            CREATE TABLE groups (id INTEGER PRIMARY KEY, name TEXT, properties TEXT);
            CREATE TABLE user_group_map (user_id INTEGER, group_id INTEGER);
            INSERT INTO users VALUES (1, 'ann'), (2, 'bob');
            INSERT INTO groups VALUES (1, 'staff', '{"home_quota": "50G"}'), (2, 'all', NULL);
            INSERT INTO user_group_map VALUES (1, 1), (1, 2), (2, 2);""")
    assert quota.user_groups(database) == {"ann": [("staff", {"home_quota": "50G"}), ("all", {})], "bob": [("all", {})]}
    assert quota.user_groups(tmp_path / "none.sqlite") == {}


class Helpers:
    """The stack's helper containers, recorded; each prints `out`."""

    def __init__(self, out: bytes):
        self.runs, self.mounts, self.out = [], [], out

    def __call__(self, engine, command, mounts, **options):
        self.runs.append((command, options))
        self.mounts.append(mounts)
        return self.out


def started(tmp_path, monkeypatch, out: bytes, backend: str | quota.Backend = "btrfs", groups=(), others_active=False,
            spawner=None, helpers_mounts=None, **labhub):
    """A start of ann's server (spawner, if given: its attributes) with quotas enforced by backend
    (its name, or itself); the helpers it ran (their mounts in helpers_mounts, if given)."""
    monkeypatch.setattr(storage, "USER_IDS_FILE", tmp_path / "user-ids.json")
    monkeypatch.setattr(quota, "OVERRIDES_FILE", tmp_path / "home-quotas.json")
    helpers = Helpers(out)
    s = load(home_root="/srv/homes", **labhub)
    found = backend if isinstance(backend, quota.Backend) else quota.Backend(backend)
    ctx = dataclasses.replace(hub_context(s, home_quotas=found),
                              stack=SimpleNamespace(home_volume=STACK.home_volume, run_helper=helpers))
    c = Config()
    storage.configure(c, ctx)
    other = SimpleNamespace(active=others_active)
    spawner = spawner or SimpleNamespace()
    spawner.escaped_name, spawner.log = "ann", logging.getLogger("test")
    spawner.user = SimpleNamespace(name="ann", groups=[SimpleNamespace(name=n, properties=p) for n, p in groups],
                                   spawners={"": spawner, "gpu": other})
    asyncio.run(c.Spawner.pre_spawn_hook(spawner))
    if helpers_mounts is not None:
        helpers_mounts.extend(helpers.mounts)
    return helpers.runs


def test_a_start_limits_the_home_in_the_helper_that_makes_it(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO):
        [(command, options)] = started(tmp_path, monkeypatch, b"quota 12 1048576 53687091200 \n", home_quota="20G",
                                       groups=[("staff", {"home_quota": "50G"})])
    args = command[command.index("--") + 1:]
    assert args[:3] == ["sh", "-ec", quota._APPLY]
    assert args[3:] == ["sh", "btrfs", "/area/0/ann", "/area/0", "0", str(50 * G), "yes"]
    assert options == {"cap_add": ["SYS_ADMIN"]}  # quota ioctls; nothing else is granted
    assert caplog.messages == ["labhub: the home of ann uses 1.0 MiB of 50.0 GiB (limit set in 12 ms)"]


def test_a_start_tells_its_spawn_page_about_a_home_near_its_quota_and_forgets_it_after(tmp_path, monkeypatch):
    spawner = SimpleNamespace()
    started(tmp_path, monkeypatch, b"quota 12 48234496 50331648 \n", spawner=spawner, home_quota="48M")
    assert spawner.notice == ('Your home folder is 96 % full (46.0 MiB of its 48.0 MiB quota). When it is full, saving '
                              'files fails with "Disk quota exceeded": delete or move files to make room (the file '
                              'browser and a terminal work as usual).')
    started(tmp_path, monkeypatch, b"quota 12 1048576 50331648 \n", spawner=spawner, home_quota="48M")
    assert spawner.notice == ""


def test_a_home_over_its_quota_or_without_one_gets_the_notice_it_should():
    assert quota.home_notice(quota.Use(50 * 2**20, 48 * 2**20)).startswith("Your home folder is 100 % full (50.0 MiB of its 48.0 MiB")
    assert quota.home_notice(quota.Use(50 * 2**20, 0)) == ""  # no limit: nothing to fill
    assert quota.home_notice(None) == ""  # not limited yet


def test_a_home_another_running_server_has_mounted_is_not_converted(tmp_path, monkeypatch):
    [(command, _)] = started(tmp_path, monkeypatch, b"quota 40 not-yet-a-subvolume \n", home_quota="none", others_active=True)
    assert command[-2:] == ["none", "no"]


def test_on_xfs_the_homes_project_is_the_users_own_id(tmp_path, monkeypatch):
    [(command, _)] = started(tmp_path, monkeypatch, b"quota 7 0 21474836480\n", backend="xfs", home_quota="20G")
    assert command[-6:] == ["xfs", "/area/0/ann", "/area/0", "20000", str(20 * G), "yes"]


def test_on_zfs_a_start_limits_the_home_on_the_host_as_the_engine_sees_it(tmp_path, monkeypatch):
    """The host's own zfs makes and limits the home's dataset in the engine's mount namespace, by the
    home root's host path and dataset (for real, on zfs-fuse: tests/integration/test_quotas.py)."""
    zfs = quota.Backend("zfs", root="/srv/homes", dataset="tank/homes")
    mounts = []
    [(command, options)] = started(tmp_path, monkeypatch, b"quota 30 1048576 21474836480\n", backend=zfs, home_quota="20G",
                                   helpers_mounts=mounts)
    # The helper leaves the homes' datasets out of its mount of the home root: holding a copy of one
    # would keep ZFS from moving it.
    assert mounts == [[quota.helper_mount("/area/0", "/srv/homes", zfs)]]
    assert mounts[0][0]["BindOptions"] == {"NonRecursive": True}
    assert "BindOptions" not in quota.helper_mount("/area/0", "/srv/homes", quota.Backend("btrfs"))
    args = command[command.index("--") + 1:]
    assert args[:4] == ["sh", "-c", quota._ON_HOST, "sh"]
    assert args[4:] == ["sh", "-ec", quota._APPLY, "sh", "zfs", "/srv/homes/ann", "tank/homes", "0", str(20 * G), "yes"]
    assert options == quota.ZFS_HELPER
    assert quota.measure_command(zfs) == ["sh", "-c", quota._ON_HOST, "sh", "sh", "-c", quota._MEASURE, "sh",
                                          "zfs", "/srv/homes", "tank/homes"]
    assert quota.measure_command(None)[-3:] == ["", "/homes", ""]
    assert quota.server_prefix(zfs) == []  # datasets and snapshots need /dev/zfs, which no server has


@pytest.mark.parametrize("answer, name", [(b"/srv/homes\n", "zfs"), (b"legacy\n", ""), (b"/srv/homes/x\n", ""), (None, "")])
def test_on_zfs_homes_are_limited_where_the_host_mounts_the_datasets_children_under_the_home_root(answer, name):
    """The host's zfs is asked where the home root's dataset mounts its children: under the home
    root, or not at all (mountpoint=legacy: mounted by fstab), or it does not answer."""
    asked = []

    def run_helper(engine, command, **options):
        asked.append((command, options))
        if answer is None:
            raise docker.errors.ContainerError("helper", 127, command, "hub", b"zfs: not found")
        return answer

    stack = SimpleNamespace(run_helper=run_helper)
    found = quota.probe(None, stack, load(home_root="/srv/homes", home_quota="20G"),
                        HostFolder(0, 0o711, "0:52", "zfs", source="tank/homes"))
    assert found.name == name and (found.dataset, found.root) == (("tank/homes", "/srv/homes") if name else ("", ""))
    assert asked == [(quota.on_host(["zfs", "get", "-H", "-o", "value", "mountpoint", "tank/homes"]), quota.ZFS_HELPER)]
    # A home root inside a dataset is not asked about: its homes cannot be the dataset's children.
    inside = quota.probe(None, stack, load(home_root="/srv/homes", home_quota="20G"), HostFolder(0, 0o711, "0:52", "zfs"))
    assert "inside a dataset with other files" in inside.problem and len(asked) == 1


def test_without_an_enforcing_file_system_a_start_limits_nothing(tmp_path, monkeypatch):
    [(command, options)] = started(tmp_path, monkeypatch, b"", backend="", home_quota="20G")
    assert "--" not in command and options == {}


def test_servers_start_inside_the_filter_refusing_what_leaves_a_quota():
    """On btrfs: making a subvolume or a snapshot; on XFS: changing a file's project or a folder's
    inheriting it (tried for real on btrfs: tests/integration/test_quotas.py)."""
    assert quota.REFUSED_IOCTLS == {"btrfs": [0x50009401, 0x5000940E, 0x50009417, 0x50009418],
                                    "xfs": [0x401C5820, 0x40086602, 0x40046602]}
    compile(quota._CONFINE, "confine", "exec")
    for backend in ("btrfs", "xfs"):
        c = Config()
        bootstrap.configure(c, hub_context(load(home_root="/srv/homes", home_quota="20G"), home_quotas=quota.Backend(backend)))
        assert c.DockerSpawner.cmd[:5] == ["python3", "-I", "-c", quota._CONFINE,
                                           ",".join(map(str, quota.REFUSED_IOCTLS[backend]))]
        assert c.DockerSpawner.cmd[5:7] == ["sh", "-c"]
    for found in (None, quota.Backend("", "cannot")):
        c = Config()
        bootstrap.configure(c, hub_context(home_quotas=found))
        assert c.DockerSpawner.cmd[:2] == ["sh", "-c"]
