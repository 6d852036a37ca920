"""Home quotas: a limit on each home's size that the file system under LABHUB_HOME_ROOT enforces,
so that one user's data cannot fill the disk every other home, and the hub, need.

What each file system can do, found at the hub's start from the home root's mount:
- btrfs with quotas enabled (`btrfs quota enable`): each home is a subvolume with a qgroup limit.
  A home that is a plain folder becomes a subvolume at its user's next start (its files reflinked,
  no data copied, swapped in by one atomic rename).
- XFS mounted with prjquota: each home is a project (its id the user's LabHub id) with a block limit;
  `df` in the server shows the quota as the home's size.
- anything else cannot enforce: `labhub check` says so and what to do; LabHub measures instead
  (`labhub homes`, `labhub status`).

A user's quota: their own, set with `labhub quota set` (kept in the hub's state), else the largest
`home_quota` property of their JupyterHub groups (the admin page's group properties), else
LABHUB_HOME_QUOTA. It is applied at each start of the user's servers, and at once by `labhub quota set`.
"""

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker

from .files import write_atomic
from .settings import DATA_DIR, PREFIX, Settings
from .stack import Stack

if TYPE_CHECKING:
    from .storage import HostFolder

OVERRIDES_FILE = DATA_DIR / "home-quotas.json"
GROUP_PROPERTY = "home_quota"
UNLIMITED = "none"
WARN_AT = 0.9  # a home this full is reported to its user and the admin
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
README = "README, Disk and quotas"


def parse_size(text: str) -> int | None:
    """Bytes of a size such as 20G or 512M (binary units); 0 for none (no limit); None if no size."""
    if text.strip().lower() == UNLIMITED:
        return 0
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:I?B)?", text.strip().upper())
    return int(float(match[1]) * _UNITS[match[2]]) if match else None


def format_size(size: float) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.1f} {unit}iB"
    return f"{size:.0f} B"


@dataclass(frozen=True)
class Backend:
    """How the home root's file system limits a home: "btrfs", "xfs", or "" (it cannot: `problem`
    says why and what to do)."""
    name: str
    problem: str = ""


def backend(home_root: str, fs_type: str, options: frozenset[str], btrfs_quotas_on: bool) -> Backend:
    """What the home root's file system (its type and mount options) can enforce."""
    where = f"homes under {home_root} are on {fs_type or 'an unknown file system'}"
    if fs_type == "btrfs":
        if btrfs_quotas_on:
            return Backend("btrfs")
        return Backend("", f"{where} without quotas: run `sudo btrfs quota enable <its mount point>` on the host")
    if fs_type == "xfs":
        if options & {"prjquota", "pquota"}:
            return Backend("xfs")
        return Backend("", f"{where}, mounted without project quotas: add prjquota to its mount options in "
                           "/etc/fstab and mount it again (XFS cannot turn them on while mounted)")
    if fs_type == "zfs":
        return Backend("", f"{where}: give each home a dataset with a refquota (`zfs create -o refquota=20G "
                           "pool/homes/<user>`), which LabHub does not do itself")
    return Backend("", f"{where}, which LabHub cannot limit per home: put them on XFS with prjquota or on btrfs")


def not_enforced(s: Settings, found: Backend) -> str:
    """The one line `labhub check` (and the hub's log) gives when quotas are set but not enforced."""
    return (f"{PREFIX}HOME_QUOTA: {found.problem} ({README}); until then LabHub only measures homes "
            "(./labhub homes) and warns, and a home can still fill its file system")


class Overrides:
    """Each user's own quota, set by the admin command, kept in the hub's state: user -> size."""

    def __init__(self, path: Path = OVERRIDES_FILE):
        self.path = path
        self.sizes: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def set(self, user: str, size: str | None) -> None:
        """size None: the user's quota is their groups' or the default again."""
        if size is None:
            self.sizes.pop(user, None)
        else:
            self.sizes[user] = size
        write_atomic(self.path, json.dumps(self.sizes, indent=1, sort_keys=True))


def quota_for(user: str, groups: list[tuple[str, dict]], overrides: Overrides, default: str) -> tuple[int, str]:
    """(bytes, where it comes from) of a user's home quota, 0 for no limit: theirs, else the largest
    of their groups' home_quota properties, else the default. A group's value that is no size is
    passed over (and named in where)."""
    if user in overrides.sizes:
        return parse_size(overrides.sizes[user]) or 0, "set for the user (./labhub quota)"
    sized = [(parse_size(str(props[GROUP_PROPERTY])), name) for name, props in groups if GROUP_PROPERTY in props]
    valid = [(size, name) for size, name in sized if size is not None]
    if valid:
        size, name = max(valid, key=lambda row: (row[0] == 0, row[0]))  # none (unlimited) is the largest
        return size, f"group {name}'s {GROUP_PROPERTY}"
    return parse_size(default) or 0, f"{PREFIX}HOME_QUOTA"


# A limited home's use and limit in bytes (limit 0: none), as its file system counts them (args:
# backend, home): btrfs, its subvolume's qgroup; XFS, the project's, which statfs reports.
_HOME_USE = r"""
home_use() {
  if [ "$1" = btrfs ]; then
    btrfs qgroup show -rf --raw --sync "$2" | awk '$1 ~ /^0\// { print $2, ($4 == "none" ? 0 : $4); exit }'
  else
    stat -f -c "%b %f %S" "$2" | awk '{ print ($1 - $2) * $3, $1 * $3 }'
  fi
}
"""

# Limits one home (args: backend, home, home root, project id, bytes or none, whether a plain folder
# may become a subvolume now) and prints its use and limit in bytes (limit 0: none).
_APPLY = _HOME_USE + r"""
backend=$1 d=$2 root=$3 id=$4 limit=$5 convert=$6
if [ "$backend" = btrfs ]; then
  new="$d.labhub-subvolume"
  if [ -e "$new" ]; then  # a conversion cut short: the unfinished copy, or the old folder after the swap
    if [ "$(stat -c %i "$new")" = 256 ]; then btrfs -q subvolume delete "$new"; else rm -rf "$new"; fi
  fi
  if [ "$(stat -c %i "$d")" != 256 ] && [ "$convert" = yes ]; then
    btrfs -q subvolume create "$new"
    cp -a --reflink=always "$d/." "$new/"
    chown --reference="$d" "$new" && chmod --reference="$d" "$new"
    mv --exchange -T "$new" "$d"
    rm -rf "$new"
  fi
  if [ "$(stat -c %i "$d")" = 256 ]; then
    btrfs qgroup limit "$limit" "$d"
    home_use btrfs "$d"
  else
    echo "not-yet-a-subvolume"
  fi
elif [ "$backend" = xfs ]; then
  if [ "$(xfs_io -r -c stat "$d" | awk '$1 == "fsxattr.projid" { print $3 }')" != "$id" ]; then
    xfs_quota -x -c "project -s -p $d $id" "$root" >/dev/null
  fi
  xfs_quota -x -c "limit -p bhard=$([ "$limit" = none ] && echo 0 || echo "$limit") $id" "$root"
  home_use xfs "$d"
fi
"""


def _iow(kind: int, number: int, size: int) -> int:
    """An ioctl request number, as the kernel's _IOW macro makes it."""
    return 1 << 30 | size << 16 | kind << 8 | number


# What a user could leave their quota with, needing no privilege: on btrfs, a subvolume or a
# snapshot made inside their home, which gets a qgroup of its own (BTRFS_IOC_SNAP_CREATE,
# SUBVOL_CREATE and their _V2s); on XFS, another project id for a file they own, or a folder that
# no longer passes the home's project on (FS_IOC_FSSETXATTR, FS_IOC_SETFLAGS and its 32-bit form).
REFUSED_IOCTLS = {
    "btrfs": [_iow(0x94, number, 4096) for number in (1, 14, 23, 24)],
    "xfs": [_iow(ord("X"), 32, 28), _iow(ord("f"), 2, 8), _iow(ord("f"), 2, 4)],
}

# So each server runs inside a seccomp filter (on top of Docker's own profile) that refuses those
# ioctls (args: their numbers, then the server's command), for 32-bit callers too and whatever the
# request's upper bits (the kernel reads 32). Loading it needs no-new-privileges, which every
# confined server has (labhub.containers); sudo users have root in their container anyway.
_CONFINE = r"""
import errno, os, sys
try:
    import seccomp
except ImportError:
    sys.exit("labhub: this image has no python3-seccomp, which home quotas need: rebuild it FROM "
             "labhub/jupyterlab-base (docker compose -f docker-compose.jlabs.yml build)")
rules = seccomp.SyscallFilter(seccomp.ALLOW)
rules.set_attr(seccomp.Attr.CTL_NNP, 0)
compat = {seccomp.Arch.X86_64: [seccomp.Arch.X86, seccomp.Arch.X32], seccomp.Arch.AARCH64: [seccomp.Arch.ARM]}
for arch in compat.get(seccomp.system_arch(), []):
    rules.add_arch(arch)
for request in map(int, sys.argv[1].split(",")):
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
try:
    rules.load()
except RuntimeError:
    if "NoNewPrivs:\t1" in open("/proc/self/status").read():
        raise
    print("labhub: a sudo user's server: the ioctls that leave a home quota are not refused", file=sys.stderr)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def server_prefix(found: Backend | None) -> list[str]:
    """What the server's command runs under where home quotas are enforced."""
    refused = REFUSED_IOCTLS.get(found.name) if found else None
    return ["python3", "-I", "-c", _CONFINE, ",".join(map(str, refused))] if refused else []


@dataclass(frozen=True)
class Use:
    used: int  # bytes
    limit: int  # bytes; 0: none

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else 0.0


def parse_use(out: str) -> Use | None:
    """What _APPLY printed, None if the home is not limited yet (a subvolume made at the next start)."""
    words = out.split()
    return Use(int(words[0]), int(words[1])) if len(words) == 2 and all(w.isdigit() for w in words) else None


def log_use(log, user: str, use: Use | None, printed: str, took_ms: str) -> None:
    """What a server's start found of its user's home: its use against its limit, or why it has
    none; and how long setting the limit took (the benchmark reads it: benchmarks/)."""
    took = f"(limit set in {took_ms} ms)"
    if use is None:
        log.warning("labhub: the home of %s has no quota yet: %s %s", user, printed.strip() or "no answer", took)
    elif use.limit and use.fraction >= WARN_AT:
        log.warning("labhub: the home of %s is %.0f %% full (%s of %s): saves fail at its quota %s", user,
                    100 * use.fraction, format_size(use.used), format_size(use.limit), took)
    else:
        log.info("labhub: the home of %s uses %s of %s %s", user, format_size(use.used),
                 format_size(use.limit) if use.limit else "no limit", took)


def home_notice(use: Use | None) -> str:
    """What the spawn page tells a user whose home is at WARN_AT of its quota or more ("" otherwise)."""
    if use is None or use.fraction < WARN_AT:
        return ""
    return (f"Your home folder is {min(100, 100 * use.fraction):.0f} % full ({format_size(use.used)} of its "
            f"{format_size(use.limit)} quota). When it is full, saving files fails with \"Disk quota exceeded\": "
            "delete or move files to make room (the file browser and a terminal work as usual).")


def apply_command(found: Backend, root: str, name: str, project_id: int, limit: int, convert: bool) -> list[str]:
    """The script limiting the home `name` in the home root mounted at `root` (project_id: XFS's)."""
    return ["sh", "-ec", _APPLY, "sh", found.name, f"{root}/{name}", root, str(project_id), str(limit or UNLIMITED),
            "yes" if convert else "no"]


def helper_options(found: Backend | None) -> dict:
    """What a helper container needs to set a limit: quota ioctls need CAP_SYS_ADMIN."""
    return {"cap_add": ["SYS_ADMIN"]} if found and found.name else {}


def probe(engine: docker.DockerClient, stack: Stack, s: Settings, home: "HostFolder") -> Backend | None:
    """With LABHUB_HOME_QUOTA: how the home root's file system (home, as probed) limits homes."""
    if not s.home_quota:
        return None
    quotas_on = home.fs_type == "btrfs" and btrfs_quotas_on(engine, stack, s.home_root)
    return backend(s.home_root, home.fs_type, home.options, quotas_on)


def btrfs_quotas_on(engine: docker.DockerClient, stack: Stack, home_root: str) -> bool:
    """Whether quotas are enabled on the btrfs file system holding home_root (asking needs CAP_SYS_ADMIN)."""
    try:
        stack.run_helper(engine, ["btrfs", "qgroup", "show", "/homes"], cap_add=["SYS_ADMIN"],
                         mounts=[docker.types.Mount("/homes", home_root, type="bind", read_only=True)])
    except docker.errors.ContainerError:
        return False
    return True


# Each home under /homes: its name, bytes in use and limit (0: none) as its file system counts them
# where a quota holds it (args: backend), else as du does.
_MEASURE = _HOME_USE + r"""
cd /homes
for d in *; do
  [ -d "$d" ] || continue
  if { [ "$1" = btrfs ] && [ "$(stat -c %i "$d")" = 256 ]; } ||
     { [ "$1" = xfs ] && [ "$(xfs_io -r -c stat "$d" | awk '$1 == "fsxattr.projid" { print $3 }')" != 0 ]; }; then
    echo "$d $(home_use "$1" "$d")"
  else
    echo "$d $(du -sB1 "$d" | cut -f1) 0"
  fi
done
"""


def measure_command(found: Backend | None) -> list[str]:
    return ["sh", "-c", _MEASURE, "sh", found.name if found else ""]


def parse_measured(out: str) -> dict[str, Use]:
    """escaped home name -> its use, from what _MEASURE printed."""
    return {name: Use(int(used), int(limit)) for name, used, limit in (line.rsplit(" ", 2) for line in out.splitlines())}


def user_groups(database: Path) -> dict[str, list[tuple[str, dict]]]:
    """user -> [(group, its properties)], read from the hub's database (the admin command's view)."""
    if not database.exists():
        return {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT users.name, groups.name, groups.properties FROM user_group_map "
                          "JOIN users ON users.id = user_group_map.user_id "
                          "JOIN groups ON groups.id = user_group_map.group_id").fetchall()
    found: dict[str, list[tuple[str, dict]]] = {}
    for user, group, properties in rows:
        found.setdefault(user, []).append((group, json.loads(properties or "{}")))
    return found
