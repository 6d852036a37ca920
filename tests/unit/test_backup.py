"""Backup and restore of what needs no helper container (hub state, site files), and the checks
that guard a restore. Homes go through Docker: tests/integration/test_admin_backup.py."""

import io
import os
import sqlite3
import stat
import tarfile
from types import SimpleNamespace

import pytest

from labhub import backup, settings
from labhub.settings import SettingError
from labhub.stack import Stack

import archives
from archives import folder, member

STACK = Stack(project="lab", hub_alias="hub", hub_image="sha256:hub", hub_image_name="labhub/hub:latest",
              context_dir="/lab/jupyterhub/context")


def engine(volumes=(), running=()):
    return SimpleNamespace(volumes=SimpleNamespace(list=lambda filters=None: [SimpleNamespace(name=v) for v in volumes]),
                           containers=SimpleNamespace(list=lambda filters=None: list(running)))


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A LabHub folder and hub state in tmp_path, where the admin command would see them."""
    site, data = tmp_path / "site", tmp_path / "data"
    (site / "secret/tls").mkdir(parents=True)
    data.mkdir()
    monkeypatch.setattr(backup, "SITE_DIR", site)
    monkeypatch.setattr(backup, "DATA_DIR", data)
    monkeypatch.setattr(backup, "DATABASE", data / "jupyterhub.sqlite")
    return SimpleNamespace(site=site, data=data)


def populate(lab) -> None:
    db = sqlite3.connect(lab.data / "jupyterhub.sqlite")
    db.execute("create table users (name text)")
    db.execute("insert into users values ('alice')")
    db.commit()
    db.close()
    (lab.data / "jupyterhub_cookie_secret").write_text("c0ffee")
    (lab.site / ".env").write_text("LABHUB_AUTH=native\n")
    (lab.site / "secret/README.md").write_text("shipped")
    (lab.site / "secret/tls/tls.key").write_text("key")
    os.chmod(lab.site / "secret/tls/tls.key", 0o600)


def test_backup_then_restore_onto_an_empty_site(lab, tmp_path):
    populate(lab)
    archive = backup.backup(engine(), STACK, settings.load({}), tmp_path / "out", shared=False, excludes=[])
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == backup.MANIFEST
    assert {"hub/jupyterhub.sqlite", "hub/jupyterhub_cookie_secret", "site/.env", "site/secret/tls/tls.key"} <= set(names)
    assert "site/secret/README.md" not in names  # every clone has it
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # keys and passwords inside

    for path in (lab.data / "jupyterhub.sqlite", lab.data / "jupyterhub_cookie_secret", lab.site / ".env",
                 lab.site / "secret/tls/tls.key"):
        path.unlink()
    manifest = backup.restore(engine(), STACK, archive, force=False)
    assert manifest["homes"] == "volumes" and manifest["users"] == []
    assert sqlite3.connect(lab.data / "jupyterhub.sqlite").execute("select name from users").fetchall() == [("alice",)]
    assert (lab.data / "jupyterhub_cookie_secret").read_text() == "c0ffee"
    assert stat.S_IMODE((lab.site / "secret/tls/tls.key").stat().st_mode) == 0o600


def test_restore_refuses_to_overwrite_without_force(lab, tmp_path):
    populate(lab)
    archive = backup.backup(engine(), STACK, settings.load({}), tmp_path / "out", shared=False, excludes=[])
    with pytest.raises(SettingError, match=r"would overwrite the hub database .*, \.env, secret/tls/tls\.key, "
                                           r"volume lab-home-alice; restore onto a fresh clone, or add --force"):
        backup.restore(engine(volumes=["lab-home-alice"]), STACK, archive_with_user(archive, "alice"), force=False)
    (lab.site / ".env").write_text("changed")
    backup.restore(engine(), STACK, archive, force=True)
    assert (lab.site / ".env").read_text() == "LABHUB_AUTH=native\n"


def archive_with_user(archive, user):
    """The same archive, its manifest naming a user's home (as one with homes would)."""
    import json
    out = archive.with_name("with-user.tar")
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isreg() else None
            if member.name == backup.MANIFEST:
                manifest = json.loads(data)
                manifest["users"] = [user]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_restore_refuses_while_the_hub_runs(lab, tmp_path):
    populate(lab)
    archive = backup.backup(engine(), STACK, settings.load({}), tmp_path / "out", shared=False, excludes=[])
    with pytest.raises(SettingError, match="the hub is running; stop it first"):
        backup.restore(engine(running=[object()]), STACK, archive, force=True)


def test_a_damaged_archive_is_refused_before_anything_is_written(lab, tmp_path):
    populate(lab)
    archive = backup.backup(engine(), STACK, settings.load({}), tmp_path / "out", shared=False, excludes=[])
    data = bytearray(archive.read_bytes())
    spot = data.index(b"c0ffee")
    data[spot:spot + 6] = b"decaf!"
    archive.write_bytes(bytes(data))
    (lab.data / "jupyterhub_cookie_secret").unlink()
    with pytest.raises(SettingError, match="hub/jupyterhub_cookie_secret does not match its checksum; nothing was restored"):
        backup.restore(engine(), STACK, archive, force=True)
    assert not (lab.data / "jupyterhub_cookie_secret").exists()


def test_progress_without_a_terminal_prints_every_tenth():
    out = io.StringIO()
    progress = backup.Progress("homes", 100, out)
    for _ in range(100):
        progress.add(1)
    assert out.getvalue().splitlines() == [f"homes: {p}% (0.0 MiB)" for p in range(10, 101, 10)]


# --- archives crafted to write where a restore must not -------------------------------------


HOME = [folder("homes"), folder("homes/alice", 0o700), member("homes/alice/notes.txt", data=b"notes")]


def crafted(tmp_path, members, listed=True, **manifest):
    return archives.crafted(tmp_path / "crafted.tar", members, listed, **manifest)


def refused(lab, tmp_path, archive) -> list[str]:
    """The lines a restore of archive stops with, after checking that it wrote nothing."""
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SettingError) as e:
        backup.restore(engine(), STACK, archive, force=True)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, anywhere
    lines = str(e.value.code).splitlines()
    assert all(line.startswith(f"labhub: error: {archive.name}: ") and
               line.endswith("; nothing was restored (use another backup)") for line in lines), lines
    return [line.removeprefix(f"labhub: error: {archive.name}: ").removesuffix("; nothing was restored (use another backup)")
            for line in lines]


@pytest.fixture
def no_settings(monkeypatch):
    """The LabHub folder's settings (the admin command's environment): none, as on a fresh clone."""
    for name in ("LABHUB_HOME_ROOT", "LABHUB_SHARED_DIR"):
        monkeypatch.delenv(name, raising=False)


OUTSIDE = "an absolute name, or one with . or .. in it, would be written outside its area"


@pytest.mark.parametrize("bad, line", [
    (member("hub/../escaped.txt", data=b"x"), f"hub/../escaped.txt: {OUTSIDE}"),
    (member("site/../escaped.txt", data=b"x"), f"site/../escaped.txt: {OUTSIDE}"),
    (member("/tmp/escaped.txt", data=b"x"), f"/tmp/escaped.txt: {OUTSIDE}"),
    (member("homes/alice/../../escaped.txt", data=b"x"), f"homes/alice/../../escaped.txt: {OUTSIDE}"),
    (member("homes/alice/up", tarfile.SYMTYPE, link="../../.."), "homes/alice/up: a link to ../../.., outside its area"),
    (member("homes/alice/peek", tarfile.SYMTYPE, link="../bob"), "homes/alice/peek: a link to ../bob, outside its area"),
    (member("homes/alice/key", tarfile.LNKTYPE, link="hub/jupyterhub_cookie_secret"),
     "homes/alice/key: a hard link to hub/jupyterhub_cookie_secret, which is no file of its area before it"),
    (member("homes/alice/shadow", tarfile.LNKTYPE, link="/etc/shadow"),
     "homes/alice/shadow: a hard link to /etc/shadow, which is no file of its area before it"),
    (member("homes/alice", tarfile.SYMTYPE, link="/"), "homes/alice: a home or shared folder that is no folder"),
    (member("homes/alice/null", tarfile.CHRTYPE), "homes/alice/null: a device or pipe: no backup of files holds one"),
    (member("homes/alice/disk", tarfile.BLKTYPE), "homes/alice/disk: a device or pipe: no backup of files holds one"),
    (member("homes/alice/pipe", tarfile.FIFOTYPE), "homes/alice/pipe: a device or pipe: no backup of files holds one"),
    (member("homes/alice/sh", data=b"\x7fELF", mode=0o4755), "homes/alice/sh: a setuid or setgid file: no backup holds one"),
    (member("site/docker-compose.yml", data=b"services: {}"), "site/docker-compose.yml: not one of the site files a backup holds"),
    (member("site/secret/tls", tarfile.SYMTYPE, link="/etc"), "site/secret/tls: not one of the site files a backup holds"),
    (member("hub/sub/file", data=b"x"), "hub/sub/file: not a file of the hub's state"),
    (member("homes/mallory/x", data=b"x"), "homes/mallory/x: outside the areas the manifest lists"),
    (member("shared/x", data=b"x"), "shared/x: outside the areas the manifest lists"),
    (member("elsewhere/x", data=b"x"), "elsewhere/x: outside the areas the manifest lists"),
    (member("homes/alice/eve\x1b[2J", data=b"x", mode=0o6755),
     r"homes/alice/eve\x1b[2J: a setuid or setgid file: no backup holds one"),  # printed escaped
])
def test_each_member_that_would_land_outside_its_area_is_refused_before_anything_is_written(lab, tmp_path, no_settings,
                                                                                             bad, line):
    populate(lab)
    good = [member("hub/jupyterhub_cookie_secret", data=b"c0ffee"), member("site/.env", data=b"LABHUB_AUTH=native\n")]
    assert refused(lab, tmp_path, crafted(tmp_path, [*good, *HOME, bad])) == [line]


def test_nothing_is_written_through_a_link_the_archive_made_or_replaced_a_folder_with(lab, tmp_path, no_settings):
    """A user's symlink to anywhere is their own (a venv's python points into the image), kept as
    it is; but no member may then be written under it, however the archive gets there."""
    members = [*HOME, member("homes/alice/etc", tarfile.SYMTYPE, link="/etc"),
               member("homes/alice/etc/cron.d", tarfile.DIRTYPE),
               folder("homes/alice/data"), member("homes/alice/data", tarfile.SYMTYPE, link="/"),  # folder -> link
               member("homes/alice/data/passwd", data=b"root::0:0::/:/bin/sh")]
    assert refused(lab, tmp_path, crafted(tmp_path, members)) == [
        "homes/alice/etc/cron.d: would be written under homes/alice/etc, which is no folder made before it",
        "homes/alice/data/passwd: would be written under homes/alice/data, which is no folder made before it"]


def test_a_home_as_a_backup_makes_it_passes_the_checks(tmp_path, no_settings):
    """Folders, files, a venv's absolute link, links within the home, a hard link to a file of it."""
    members = [*HOME, folder("homes/alice/venv"), folder("homes/alice/venv/bin"),
               member("homes/alice/venv/bin/python", tarfile.SYMTYPE, link="/opt/conda/bin/python3"),
               member("homes/alice/venv/bin/python3", tarfile.SYMTYPE, link="python"),
               member("homes/alice/latest", tarfile.SYMTYPE, link="venv/../notes.txt"),
               member("homes/alice/again.txt", tarfile.LNKTYPE, link="homes/alice/notes.txt")]
    assert backup.verify(crafted(tmp_path, members), {})["users"] == ["alice"]


def test_a_file_the_manifest_does_not_list_is_refused(lab, tmp_path, no_settings):
    assert refused(lab, tmp_path, crafted(tmp_path, HOME, listed=False)) == [
        "homes/alice/notes.txt: a file the manifest does not list"]


@pytest.mark.parametrize("env, manifest, line", [
    ("", {"homes": "/etc", "users": []}, "manifest: homes in /etc, but .env keeps them in volumes (LABHUB_HOME_ROOT)"),
    ("LABHUB_HOME_ROOT=/srv/homes  # the lab's\n", {"homes": "/", "users": []},
     "manifest: homes in /, but the archive's .env keeps them in /srv/homes (LABHUB_HOME_ROOT)"),
    ("", {"shared": "/root"}, "manifest: shared folder /root, but .env has none (LABHUB_SHARED_DIR)"),
    ("LABHUB_SHARED_DIR=/data/shared\n", {"shared": "/data"},
     "manifest: shared folder /data, but the archive's .env has /data/shared (LABHUB_SHARED_DIR)"),
    ("", {"users": ["alice", "../../x"]}, "manifest: user '../../x' is not an escaped user name"),
])
def test_manifest_paths_other_than_the_deployments_own_are_refused(lab, tmp_path, no_settings, env, manifest, line):
    """The homes and shared folder the manifest names are bound read-write into the helper that
    restores them: only those the deployment's settings name after the restore may be."""
    members = [member("site/.env", data=env.encode())] if env else []
    assert refused(lab, tmp_path, crafted(tmp_path, members, **manifest)) == [line]


def test_the_deployments_own_host_folders_pass(tmp_path, monkeypatch):
    archive = crafted(tmp_path, [member("site/.env", data=b'LABHUB_HOME_ROOT="/srv/homes/"\nLABHUB_SHARED_DIR=/data/shared\n')],
                      homes="/srv/homes", users=[], shared="/data/shared")
    assert backup.verify(archive, {})["homes"] == "/srv/homes"  # the archive's .env: restored first
    archive = crafted(tmp_path, [], homes="/srv/homes", users=[])
    assert backup.verify(archive, {"LABHUB_HOME_ROOT": "/srv/homes"})["homes"] == "/srv/homes"  # the folder's own


def test_every_problem_gets_its_line(lab, tmp_path, no_settings):
    members = [*HOME, member("hub/../x", data=b"x"), member("homes/alice/pipe", tarfile.FIFOTYPE)]
    assert refused(lab, tmp_path, crafted(tmp_path, members, homes="/etc", users=[])) == [
        f"hub/../x: {OUTSIDE}", "homes/alice/pipe: a device or pipe: no backup of files holds one",
        "manifest: homes in /etc, but .env keeps them in volumes (LABHUB_HOME_ROOT)"]
