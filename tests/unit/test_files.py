"""Files replaced whole: the mode asked for (or the replaced file's), no temporary file left
behind, and the old file intact when a write fails."""

import os
import stat

import pytest

from labhub.files import atomic, write_atomic


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_gets_the_mode_asked_for_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "key.pem", b"secret", 0o600)
        write_atomic(tmp_path / "cert.pem", "public", 0o644)
    finally:
        os.umask(old)
    assert (mode(tmp_path / "key.pem"), (tmp_path / "key.pem").read_bytes()) == (0o600, b"secret")
    assert (mode(tmp_path / "cert.pem"), (tmp_path / "cert.pem").read_text()) == (0o644, "public")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_a_replaced_file_keeps_its_mode_unless_told_otherwise(tmp_path):
    path = tmp_path / "user-ids.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_atomic(path, '{"ann": 1000}')
    assert (mode(path), path.read_text()) == (0o640, '{"ann": 1000}')
    write_atomic(path, "{}", 0o600)
    assert mode(path) == 0o600


def test_a_new_file_without_a_mode_gets_what_open_gives(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "state.json", "{}")
    finally:
        os.umask(old)
    assert mode(tmp_path / "state.json") == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "labhub.tar"
    path.write_bytes(b"the good one")
    with pytest.raises(RuntimeError), atomic(path, 0o600) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"the good one"
    assert [p.name for p in tmp_path.iterdir()] == ["labhub.tar"]


def test_the_file_is_readable_by_its_owner_only_while_written_and_a_crashed_write_is_cleaned_up(tmp_path):
    path = tmp_path / "tls.key"
    (tmp_path / ".tls.key.tmp").write_text("left by a write that crashed")
    with atomic(path, 0o644) as f:
        [tmp] = [p for p in tmp_path.iterdir() if p.name != path.name]
        assert tmp.name.startswith(".") and mode(tmp) == 0o600 and tmp.read_bytes() == b""
        f.write(b"key")
    assert path.read_bytes() == b"key" and mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["tls.key"]
