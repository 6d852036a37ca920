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
