"""Home quotas: a limit on each home's size that the file system under LABHUB_HOME_ROOT enforces,
so that one user's data cannot fill the disk every other home, and the hub, need.

What each file system can do, found at the hub's start from the home root's mount:
- btrfs with quotas enabled (`btrfs quota enable`): each home is a subvolume with a qgroup limit.
  A home that is a plain folder becomes a subvolume at its user's next start (its files reflinked,
  no data copied, swapped in by one atomic rename).
- XFS mounted with prjquota: each home is a project (its id the user's LabHub id) with a block limit;
  `df` in the server shows the quota as the home's size.
- ZFS, where the home root is a dataset of its own: each home is a dataset under it with a refquota,
  made and limited by the host's own zfs command (run in the Docker engine's mount namespace, so the
  engine mounts the dataset into the server). A plain folder home becomes a dataset at its user's
  next start (its files copied, the folder swapped out). `df` shows the quota as the home's size.
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


# The kernel's ZFS, and zfs-fuse (ZFS in user space: what the tests run, the test machines having no
# ZFS module).
ZFS_TYPES = ("zfs", "fuse.zfs")


@dataclass(frozen=True)
class Backend:
    """How the home root's file system limits a home: "btrfs", "xfs", "zfs", or "" (it cannot:
    `problem` says why and what to do)."""
    name: str
    problem: str = ""
    root: str = ""  # ZFS: the home root on the host, where the host's zfs command works on it
    dataset: str = ""  # ZFS: the home root's dataset, whose children the homes are


def backend(home_root: str, fs_type: str, options: frozenset[str], quotas_on: bool, dataset: str = "") -> Backend:
    """What the home root's file system (its type and mount options) can enforce. quotas_on: its
    quota tool answers (btrfs: quotas are enabled; ZFS: the host's zfs command knows `dataset`, the
    home root's ("" where the home root is not a dataset's root), and mounts its children under the
    home root)."""
    where = f"homes under {home_root} are on {fs_type or 'an unknown file system'}"
    if fs_type == "btrfs":
        if quotas_on:
            return Backend("btrfs")
        return Backend("", f"{where} without quotas: run `sudo btrfs quota enable <its mount point>` on the host")
    if fs_type == "xfs":
        if options & {"prjquota", "pquota"}:
            return Backend("xfs")
        return Backend("", f"{where}, mounted without project quotas: add prjquota to its mount options in "
                           "/etc/fstab and mount it again (XFS cannot turn them on while mounted)")
    if fs_type in ZFS_TYPES:
        if not dataset:
            return Backend("", f"{where}, inside a dataset with other files: make the home root a dataset of its own "
                               f"(`sudo zfs create -o mountpoint={home_root} <pool>/homes`, the homes moved into it)")
        if not quotas_on:
            return Backend("", f"{where}, but the host's zfs command does not answer LabHub's helper container, or "
                               f"would mount {dataset}'s children elsewhere: install ZFS's tools on the host "
                               f"(zfsutils-linux) and `sudo zfs set mountpoint={home_root} {dataset}`")
        return Backend("zfs", root=home_root, dataset=dataset)
    return Backend("", f"{where}, which LabHub cannot limit per home: put them on XFS with prjquota, on btrfs or "
                       "on a ZFS dataset")


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


# Whether a home is limited on its own, and a limited home's use and limit in bytes (limit 0: none),
# as its file system counts them (args: backend, the home's absolute path; on ZFS, $datasets is the
# home root's dataset): btrfs, its subvolume's qgroup; XFS, the project's, which statfs reports; ZFS,
# its dataset's.
_HOME_USE = r"""
projid() { xfs_io -r -c stat "$1" | awk '$1 == "fsxattr.projid" { print $3 }'; }
limited() {
  case $1 in
    btrfs) [ "$(stat -c %i "$2")" = 256 ] ;;
    xfs) [ "$(projid "$2")" != 0 ] ;;
    zfs) [ "$(zfs get -H -o value mountpoint,mounted "$datasets/${2##*/}" 2>/dev/null | tr '\n' ' ')" = "$2 yes " ] ;;
    *) false ;;
  esac
}
home_use() {
  case $1 in
    btrfs) btrfs qgroup show -rf --raw --sync "$2" | awk '$1 ~ /^0\// { print $2, ($4 == "none" ? 0 : $4); exit }' ;;
    xfs) stat -f -c "%b %f %S" "$2" | awk '{ print ($1 - $2) * $3, $1 * $3 }' ;;
    zfs) zfs get -Hp -o value referenced,refquota "$datasets/${2##*/}" |
           awk '{ v[NR] = $1 } END { print v[1], (v[2] ~ /^[0-9]+$/ ? v[2] : 0) }' ;;
  esac
}
"""

# Limits one home (args: backend, home, home root (ZFS: its dataset), project id, bytes or none,
# whether a plain folder may become a subvolume or dataset now) and prints its use and limit in
# bytes (limit 0: none).
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
  if limited btrfs "$d"; then
    btrfs qgroup limit "$limit" "$d"
    home_use btrfs "$d"
  else
    echo "not-yet-a-subvolume"
  fi
elif [ "$backend" = xfs ]; then
  if [ "$(projid "$d")" != "$id" ]; then
    xfs_quota -x -c "project -s -p $d $id" "$root" >/dev/null
  fi
  xfs_quota -x -c "limit -p bhard=$([ "$limit" = none ] && echo 0 || echo "$limit") $id" "$root"
  home_use xfs "$d"
elif [ "$backend" = zfs ]; then
  datasets=$root ds="$root/${d##*/}" new="$d.labhub-dataset" old="$d.labhub-folder"
  # Where the home's dataset, if any, mounts and whether it is mounted: one question per start.
  state=$(zfs get -H -o value mountpoint,mounted "$ds" 2>/dev/null || true)
  at=$(echo "$state" | sed -n 1p) mounted=$(echo "$state" | sed -n 2p)
  # A conversion cut short (its dataset still mounted beside the home). Once the folder was moved
  # aside the copy is whole, and only the swap is left (the home's folder is then the empty one
  # made at this start). Before, the folder still holds the files, and the copy starts again.
  if [ "$at" = "$new" ]; then
    if [ -e "$old" ]; then
      rmdir "$d" 2>/dev/null || true
      zfs inherit mountpoint "$ds"
      at=$d
    elif [ -n "$(ls -A "$d")" ]; then
      zfs destroy -f "$ds" || { sleep 1; zfs destroy -f "$ds"; }  # zfs-fuse says busy until its unmount settles
      at=
    fi
  fi
  if [ "$at" = "$d" ] && [ "$mounted" != yes ]; then  # the home's dataset, unmounted (by an admin)
    zfs mount "$ds" || true
  fi
  if [ -z "$at" ] && [ "$convert" = yes ] && [ ! -e "$old" ]; then
    if [ -z "$(ls -A "$d")" ]; then  # a new home: its dataset mounts over the empty folder, and takes its owner
      owner=$(stat -c %u:%g "$d") mode=$(stat -c %a "$d")
      zfs create "$ds"
      chown "$owner" "$d" && chmod "$mode" "$d"
    else
      zfs create -o mountpoint="$new" "$ds"
      cp -a --reflink=auto "$d/." "$new/"
      chown --reference="$d" "$new" && chmod --reference="$d" "$new"
      mv -T "$d" "$old"
      zfs inherit mountpoint "$ds"
    fi
  fi
  if limited zfs "$d"; then
    rm -rf "$old" && rmdir "$new" 2>/dev/null || true  # the swap's leftovers
    # ZFS refuses a refquota below what the home holds: then it holds it there, full, as the other
    # file systems would.
    zfs set refquota="$limit" "$ds" 2>/dev/null || zfs set refquota="$(zfs get -Hp -o value referenced "$ds")" "$ds"
    home_use zfs "$d"
  elif [ -e "$old" ]; then
    echo "its files are in $old, left by a conversion cut short, with no dataset: move them back to $d"
  elif [ -n "$at" ]; then
    echo "its dataset $ds (mountpoint $at) is not mounted at the home"
  else
    echo "not-yet-a-dataset"
  fi
fi
"""

# Runs its arguments in the Docker engine's mount namespace, where the host's zfs command is, and
# where a dataset it mounts is seen by the engine (and so bind-mounted into the server). The engine
# is the dockerd in the host's pid namespace, not one nested in a container.
_ON_HOST = r"""
for p in /proc/[0-9]*; do
  if [ "$(cat "$p/comm" 2>/dev/null)" = dockerd ] && [ "$(readlink "$p/ns/pid")" = "$(readlink /proc/self/ns/pid)" ]; then
    exec nsenter -t "${p#/proc/}" -m -- "$@"
  fi
done
echo "labhub: no Docker engine process (dockerd) in sight of the helper container" >&2
exit 1
"""

# What a helper container needs to do so: the host's processes, and the privileges to enter the
# engine's mount namespace (ptrace, to open it; AppArmor's default profile refuses both that and
# mounting). The hub already drives the engine, which is as much.
ZFS_HELPER = {"cap_add": ["SYS_ADMIN", "SYS_PTRACE"], "pid_mode": "host", "security_opt": ["apparmor=unconfined"]}


def on_host(command: list[str]) -> list[str]:
    return ["sh", "-c", _ON_HOST, "sh", *command]


def helper_mount(target: str, source: str, found: Backend | None, read_only: bool = False) -> docker.types.Mount:
    """A helper's bind mount of the home root (or another root LabHub makes folders in). On ZFS it
    leaves out the mounts under it, the homes' datasets: a container holding a copy of one keeps
    ZFS from mounting that dataset elsewhere, as a conversion's swap does ("dataset is busy"). The
    helper needs none of them there: the quota's script works on the host."""
    mount = docker.types.Mount(target, source, type="bind", read_only=read_only)
    if found and found.name == "zfs":
        mount["BindOptions"] = {"NonRecursive": True}
    return mount


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
    """The script limiting the home `name` in the home root mounted at `root` (project_id: XFS's);
    on ZFS, run on the host, with the home root's path there."""
    home, where = (f"{found.root}/{name}", found.dataset) if found.name == "zfs" else (f"{root}/{name}", root)
    script = ["sh", "-ec", _APPLY, "sh", found.name, home, where, str(project_id), str(limit or UNLIMITED),
              "yes" if convert else "no"]
    return on_host(script) if found.name == "zfs" else script


def helper_options(found: Backend | None) -> dict:
    """What a helper container needs to set a limit: quota ioctls need CAP_SYS_ADMIN; ZFS, the host."""
    if not found or not found.name:
        return {}
    return ZFS_HELPER if found.name == "zfs" else {"cap_add": ["SYS_ADMIN"]}


def probe(engine: docker.DockerClient, stack: Stack, s: Settings, home: "HostFolder") -> Backend | None:
    """With LABHUB_HOME_QUOTA: how the home root's file system (home, as probed) limits homes."""
    if not s.home_quota:
        return None
    if home.fs_type == "btrfs":  # asking needs CAP_SYS_ADMIN; it fails where quotas are off
        quotas_on = _answer(engine, stack, ["btrfs", "qgroup", "show", "/homes"], cap_add=["SYS_ADMIN"],
                            mounts=[docker.types.Mount("/homes", s.home_root, type="bind", read_only=True)]) is not None
    else:  # a dataset's children mount under it unless it is mounted otherwise (mountpoint=legacy)
        quotas_on = home.fs_type in ZFS_TYPES and bool(home.source) and _answer(
            engine, stack, on_host(["zfs", "get", "-H", "-o", "value", "mountpoint", home.source]),
            **ZFS_HELPER) == f"{s.home_root}\n"
    return backend(s.home_root, home.fs_type, home.options, quotas_on, home.source)


def _answer(engine: docker.DockerClient, stack: Stack, command: list[str], **options) -> str | None:
    """What a helper container running command prints; None if it fails."""
    try:
        return stack.run_helper(engine, command, **options).decode()
    except docker.errors.ContainerError:
        return None


# Each home in a home root: its name, bytes in use and limit (0: none) as its file system counts them
# where a quota holds it, else as du does (args: backend, the home root, on ZFS its dataset). The
# folders of a conversion under way (*.labhub-*) are no homes: escaped user names have no dot.
_MEASURE = _HOME_USE + r"""
datasets=$3
cd "$2"
for d in *; do
  [ -d "$d" ] || continue
  case $d in *.labhub-*) continue ;; esac
  if limited "$1" "$PWD/$d"; then
    echo "$d $(home_use "$1" "$PWD/$d")"
  else
    echo "$d $(du -sB1 "$d" | cut -f1) 0"
  fi
done
"""


def measure_command(found: Backend | None) -> list[str]:
    """The script measuring every home, in a helper with the home root at /homes (ZFS: on the host)."""
    if found and found.name == "zfs":
        return on_host(["sh", "-c", _MEASURE, "sh", "zfs", found.root, found.dataset])
    return ["sh", "-c", _MEASURE, "sh", found.name if found else "", "/homes", ""]


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
