"""Backup archives crafted by hand, as `labhub backup` writes them but holding whatever a test
puts in: for tests of what a restore refuses."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

from labhub import backup


def member(name: str, kind=tarfile.REGTYPE, data: bytes = b"", link: str = "", mode: int = 0o644):
    """A member (its header and data) of any kind, name and link target."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, link, mode, len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def folder(name: str, mode: int = 0o755):
    return member(name, tarfile.DIRTYPE, mode=mode)


def crafted(path: Path, members, listed: bool = True, **manifest) -> Path:
    """Writes an archive holding `members` and a manifest that lists each of their files with its
    checksum (unless listed=False), so that only the check under test can refuse it; manifest
    keywords replace its fields (homes, users, shared)."""
    files = {info.name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
             for info, data in members if info.isreg() and listed}
    manifest = {"format": backup.FORMAT, "created": "2026-11-22T03:15:00+00:00", "project": "lab", "jupyterhub": "6",
                "homes": "volumes", "users": ["alice"], "shared": "", "excludes": [], "files": files, **manifest}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in [*members, member(backup.MANIFEST, data=json.dumps(manifest).encode())]:
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return path
