"""Files replaced whole: a reader (Traefik's file watcher, the hub at its next start, a restore)
sees the old file or the new one, never half of one, and a failed write leaves the old file as it
was."""

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content to (for content written piece by piece, e.g. an
    archive). It is a hidden temporary file beside `path` (readable by its owner only while it is
    written, when the mode is known); when the block ends it gets `mode` (by default that of the
    file it replaces, or what open() gives a new one), reaches the disk and takes `path`'s place. If the block
    raises, it is removed and `path` is untouched."""
    path = Path(path)
    if mode is None:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # left by a write that crashed
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if mode is not None:  # last: a chown in the block would clear setuid bits
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Writes `data` (str as UTF-8) to `path` at once, as atomic() does."""
    with atomic(path, mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)
