"""File systems of their own for tests and benchmarks, on sparse image files: made with mkfs and
loop-mounted on this machine (as root), e.g. btrfs with quotas for LABHUB_HOME_ROOT; or a ZFS pool."""

import contextlib
import subprocess
import time
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


@contextlib.contextmanager
def zfs_homes(name: str, size: int = 512 * 2**20):
    """A home root that is a ZFS dataset of its own (<pool>/homes), the pool on an image file in
    WORK. This machine's kernel has no ZFS module, so it is zfs-fuse, ZFS in user space; its zfs
    command on this machine is the host's own, which LabHub runs there."""
    daemon = None
    image, mount_point, pool = harness.WORK / f"{name}.img", harness.WORK / name, f"labhub-{name}"
    harness.WORK.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["zpool", "list"], capture_output=True).returncode:
        log = harness.WORK / "zfs-fuse.log"  # a file, not a pipe, which the daemon could fill and block on
        with open(log, "wb") as out:
            daemon = subprocess.Popen(["zfs-fuse", "--no-daemon"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run(["zpool", "list"], capture_output=True).returncode:
            if daemon.poll() is not None or time.monotonic() > deadline:
                daemon.kill()
                raise CannotMount(f"zfs-fuse does not run here: {log.read_text().strip()}")
            time.sleep(0.2)
    with open(image, "wb") as f:
        f.truncate(size)
    try:
        subprocess.run(["zpool", "create", "-m", str(mount_point), pool, str(image)], check=True, capture_output=True)
        try:
            subprocess.run(["zfs", "create", f"{pool}/homes"], check=True)
            homes = mount_point / "homes"
            homes.chmod(0o711)
            yield homes
        finally:
            if subprocess.run(["zpool", "export", "-f", pool], capture_output=True).returncode:
                subprocess.run(["umount", "-R", "-l", str(mount_point)], check=False)
    finally:
        image.unlink(missing_ok=True)
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)


def dataset(home) -> tuple[str, int, int]:
    """(name, bytes referenced, refquota; 0: none) of the ZFS dataset mounted at a home, as the
    host's zfs counts them; ("", 0, 0) if none is."""
    def zfs(*args) -> list[str]:
        return subprocess.run(["zfs", *args], check=True, capture_output=True, text=True).stdout.splitlines()

    for name, mounted_at in (line.split("\t") for line in zfs("list", "-H", "-o", "name,mountpoint")):
        if mounted_at == str(home):
            referenced, refquota = zfs("get", "-Hp", "-o", "value", "referenced,refquota", name)
            return name, int(referenced), int(refquota) if refquota.isdigit() else 0
    return "", 0, 0
