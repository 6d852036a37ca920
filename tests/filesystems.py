"""File systems of their own for tests and benchmarks: a sparse image file, made with mkfs and
loop-mounted on this machine (as root), e.g. btrfs with quotas for LABHUB_HOME_ROOT."""

import contextlib
import subprocess
from pathlib import Path

import harness


class CannotMount(Exception):
    """This kernel refuses the file system, or the mount options (e.g. XFS quotas without CONFIG_QUOTA)."""


@contextlib.contextmanager
def loop_mounted(name: str, mkfs: list[str], options: str = "", size: int = 512 * 2**20):
    """The mount point of a new file system in WORK/<name>.img; unmounted and deleted afterwards."""
    image, mount_point = harness.WORK / f"{name}.img", harness.WORK / name
    mount_point.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size)
    try:
        subprocess.run([*mkfs, str(image)], check=True, capture_output=True)
        mounted = subprocess.run(["mount", "-o", ",".join(filter(None, ["loop", options])), str(image), str(mount_point)],
                                 capture_output=True, text=True)
        if mounted.returncode:
            raise CannotMount(f"this kernel cannot mount {name} ({' '.join(mkfs)}, -o {options or 'defaults'}): "
                              f"{mounted.stderr.strip()}")
        try:
            yield mount_point
        finally:
            # Containers that had it mounted are gone by now; a lazy unmount lets a straggler finish.
            subprocess.run(["umount", "-l", str(mount_point)], check=False)
    finally:
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def btrfs_homes(name: str, quotas: bool = True):
    """A home root on a btrfs file system of its own, its quotas enabled (`btrfs quota enable`)."""
    with loop_mounted(name, ["mkfs.btrfs", "-q"]) as root:
        if quotas:
            subprocess.run(["btrfs", "quota", "enable", str(root)], check=True)
        homes = Path(root) / "homes"
        homes.mkdir()
        homes.chmod(0o711)
        yield homes


def qgroup(home) -> tuple[int, int]:
    """(bytes used, limit; 0: none) of a home's subvolume, as the host's btrfs counts them."""
    out = subprocess.run(["btrfs", "qgroup", "show", "-rf", "--raw", "--sync", str(home)], check=True,
                         capture_output=True, text=True).stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("0/"))
    return int(row[1]), 0 if row[3] == "none" else int(row[3])
