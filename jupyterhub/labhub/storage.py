"""Where users' files live, and as whom: a home per user (a Docker volume, or a folder under a
host root), the host's data folders, the group-shared folder and the cluster tree.

Host folders are bind mounts of the `mount` type, so a missing one fails loudly instead of being
created, root-owned, by Docker. The folders LabHub itself makes (homes and cluster areas under
host roots) are made once, with their owner, by a short-lived helper container: the hub never
sees the host's file system and never changes ownership of anything that exists, but for its own
former cluster areas (below).

Every server may run as uid 1000, so what keeps one user's cluster area from the others is a
group of its own: the area is root:<the user's id> 2770, and only that user's servers get the group.
"""

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
from docker.errors import APIError

from . import hooks, quota
from .files import write_atomic
from .settings import DATA_DIR, DATABASE, Settings, fail
from .stack import Stack

if TYPE_CHECKING:
    from .context import HubContext

HOME = "/home/jovyan"
SHARED_MOUNT = f"{HOME}/shared"
IMAGE_UID, IMAGE_GID = 1000, 1000  # jovyan in every LabHub user image
USER_IDS_FILE = DATA_DIR / "user-ids.json"


def _bind(source: str, target: str, read_only: bool = False) -> dict:
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def host_folders(s: Settings) -> dict[str, str]:
    """Every host folder the settings name -> the setting naming it."""
    folders = {s.home_root: "HOME_ROOT", s.shared_dir: "SHARED_DIR", s.cluster_dir: "CLUSTER_DIR"}
    folders.update({m.host: "DATA_MOUNTS" for m in s.data_mounts})
    folders.pop("", None)
    return folders


@dataclass(frozen=True)
class HostFolder:
    gid: int
    mode: int  # permission bits, setgid included
    device: str = ""  # the file system's major:minor, the same for every folder on it
    fs_type: str = ""
    options: frozenset[str] = frozenset()  # the file system's mount options (e.g. prjquota)
    source: str = ""  # what it is mounted from (a ZFS dataset), where the folder is its file system's root
    used: float = 0.0  # fraction of the file system in use, as df counts it


# Per folder: its group, mode and the file system's blocks (total, free, free to users); then the
# mount table, where each folder's mount point names its file system and that file system's options.
_PROBE = 'for d; do echo "$(stat -c "%g %a" "$d") $(stat -f -c "%b %f %a" "$d")"; done; cat /proc/self/mountinfo'


def _mount_entry(mountinfo: str, target: str) -> tuple[str, str, frozenset[str], str]:
    """(device, type, options, source: "" unless target is the file system's root) of the file
    system mounted at target, from a mount table."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == target and " - " in line:
            fs_type, source, super_options = line.split(" - ", 1)[1].split()[:3]
            return (fields[2], fs_type, frozenset(fields[5].split(",") + super_options.split(",")),
                    source if fields[3] == "/" else "")
    return "", "", frozenset(), ""


def probe_host_folders(engine: docker.DockerClient, stack: Stack, s: Settings, also: tuple[str, ...] = ()) -> dict[str, HostFolder]:
    """Checks that each host folder exists and reads its group, mode and file system, from a
    throwaway container; `also`: more host paths to look at (e.g. Docker's data root)."""
    folders = list(dict.fromkeys([*host_folders(s), *also]))
    if not folders:
        return {}
    mounts = [docker.types.Mount(f"/probe/{i}", path, type="bind", read_only=True) for i, path in enumerate(folders)]
    try:
        out = stack.run_helper(engine, ["sh", "-c", _PROBE, "sh", *(m["Target"] for m in mounts)], mounts=mounts)
    except APIError as e:
        missing = next((path for path in folders if path in str(e)), None)
        if missing is None or missing not in host_folders(s):
            raise
        raise fail(host_folders(s)[missing], f"host folder {missing} does not exist",
                   "create it (see README, Storage) or change the setting") from None
    lines = out.decode().splitlines()
    mountinfo = "\n".join(lines[len(folders):])
    found = {}
    for (path, mount), line in zip(zip(folders, mounts), lines, strict=False):
        gid, mode, total, free, available = line.split()
        used = int(total) - int(free)
        device, fs_type, options, source = _mount_entry(mountinfo, mount["Target"])
        found[path] = HostFolder(int(gid), int(mode, 8), device, fs_type, options, source,
                                 used / (used + int(available)) if used + int(available) else 0.0)
    return found


def home_mounts(engine: docker.DockerClient, stack: Stack, s: Settings, root: str,
                quotas: "quota.Backend | None" = None) -> list[docker.types.Mount]:
    """Read-only mounts placing every user's home at root/<escaped user name>, for a helper
    container: the host's home root whole (as quota.helper_mount has it), or each user's home volume."""
    if s.home_root:
        return [quota.helper_mount(root, s.home_root, quotas, read_only=True)]
    prefix = stack.home_volume.removesuffix("{username}")
    names = sorted(v.name for v in engine.volumes.list(filters={"name": prefix}) if v.name.startswith(prefix))
    return [docker.types.Mount(f"{root}/{name.removeprefix(prefix)}", name, read_only=True) for name in names]


class UserIds:
    """A host id per user, given out once, from FIRST_UID up, and remembered in the hub's state
    volume: the user's uid with LABHUB_USER_IDS=per-user (so their files keep one owner across
    restarts and upgrades), and the group of their cluster area in either mode."""

    def __init__(self, first_uid: int, path: Path):
        self.first_uid, self.path = first_uid, path
        self.ids = json.loads(path.read_text()) if path.exists() else {}

    def __call__(self, username: str) -> int:
        if username not in self.ids:
            self.ids[username] = max(self.ids.values(), default=self.first_uid - 1) + 1
            write_atomic(self.path, json.dumps(self.ids, indent=1, sort_keys=True))
        return self.ids[username]


@dataclass(frozen=True)
class Area:
    """A folder of one user's that LabHub makes under a host root: its owner, group and mode."""
    root: str
    owner: int
    group: int
    mode: str  # octal, as chmod takes it
    former: str = ""  # "uid:gid" LabHub gave such a folder before: brought to the above


# For each area: made if missing; a former LabHub folder gets the new owner and mode (the folder
# itself: its files keep theirs) and is reported; anything else that exists is left alone. After
# "--", the arguments of labhub.quota's script, which limits the home (in the same container, so
# that quotas cost a start no container of its own).
_MAKE_AREAS = """
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  d=$1 owner=$2 group=$3 mode=$4 former=$5; shift 5
  if [ ! -d "$d" ]; then
    install -d -o "$owner" -g "$group" -m "$mode" "$d"
  elif [ -n "$former" ] && [ "$(stat -c '%u:%g' "$d")" = "$former" ]; then
    chown "$owner:$group" "$d" && chmod "$mode" "$d" && echo "$d"
  fi
done
if [ $# -gt 0 ]; then
  shift
  began=$(date +%s%N)
  limited=$("$@" 2>&1 | tr '\\n' ' ')
  echo "quota $(( ($(date +%s%N) - began) / 1000000 )) $limited"
fi
"""


def _make_areas(engine, stack: Stack, name: str, areas: list[Area], limit_home: list[str] | None = None,
                quotas: "quota.Backend | None" = None, **options) -> tuple[list[str], str]:
    """Makes each area's root/name, in one helper container, then limits the home if limit_home
    (labhub.quota's command for it) says how. Returns a line for each former area changed, and
    the milliseconds the quota's script took followed by what it printed."""
    args = [str(v) for i, a in enumerate(areas) for v in (f"/area/{i}/{name}", a.owner, a.group, a.mode, a.former)]
    if limit_home:
        args += ["--", *limit_home]
    out = stack.run_helper(engine, ["sh", "-c", _MAKE_AREAS, "sh", *args], **options,
                           mounts=[quota.helper_mount(f"/area/{i}", a.root, quotas) for i, a in enumerate(areas)])
    lines = out.decode().splitlines()
    changed = {f"/area/{i}/{name}": a for i, a in enumerate(areas)}
    changed_lines = [f"{a.root}/{name}: made by an older LabHub, owned by {a.former} (open to every server with that uid); "
                     f"now {a.owner}:{a.group} mode {a.mode}, its user's alone" for a in map(changed.get, lines) if a]
    return changed_lines, next((line.removeprefix("quota ") for line in lines if line.startswith("quota ")), "")


def configure(c, ctx: "HubContext") -> None:
    s, stack = ctx.settings, ctx.stack
    quotas = ctx.facts.home_quotas if ctx.facts.home_quotas and ctx.facts.home_quotas.name else None
    # XFS: a user's id is also their home's project id.
    needs_ids = s.user_ids == "per-user" or s.cluster_dir or (quotas and quotas.name == "xfs")
    user_ids = UserIds(s.first_uid, USER_IDS_FILE) if needs_ids else None

    def uid(spawner) -> int:
        return user_ids(spawner.escaped_name) if s.user_ids == "per-user" else IMAGE_UID

    mounts = [_bind(m.host, m.container, m.read_only) for m in s.data_mounts]
    if s.home_root:
        mounts.append(_bind(f"{s.home_root}/{{username}}", HOME))
    else:
        hooks.merge(c, "volumes", {stack.home_volume: HOME})
    if s.shared_dir:
        mounts.append(_bind(s.shared_dir, SHARED_MOUNT))
        # Every user gets the shared folder's host group (as is, never a group made up in the
        # image); the folder's setgid bit and default ACL make what they create there the group's.
        hooks.merge(c, "extra_host_config", {"group_add": [str(ctx.facts.folders[s.shared_dir].gid)]})
    if s.cluster_dir:
        mounts.append(_bind(s.cluster_dir, s.cluster_dir, read_only=True))
        mounts.append(_bind(f"{s.cluster_dir}/{{username}}", f"{s.cluster_dir}/{{username}}"))
        # The group of the user's own area (root:<id> 2770): no other server has it.
        hooks.merge(c, "extra_host_config", lambda spawner: {"group_add": [str(user_ids(spawner.escaped_name))]})
    hooks.merge(c, "mounts", mounts)

    # Always said, so that no image (a flavor that forgot `USER jovyan`) runs its server as root.
    hooks.merge(c, "extra_create_kwargs", lambda spawner: {"user": f"{uid(spawner)}:{IMAGE_GID}"})
    if s.user_ids == "per-user":
        # Without a passwd entry for the uid, Docker would set HOME=/.
        hooks.merge(c, "environment", {"HOME": HOME})

    def areas(spawner) -> list[Area]:
        found = [Area(s.home_root, uid(spawner), IMAGE_GID, "0700")] if s.home_root else []
        if s.cluster_dir:  # LabHub made them uid 1000's before: every server's, in the default mode
            found.append(Area(s.cluster_dir, 0, user_ids(spawner.escaped_name), "2770", former=f"{IMAGE_UID}:{IMAGE_GID}"))
        return found

    def limit_home(spawner) -> list[str] | None:
        """labhub.quota's command limiting the user's home (the first area), if quotas are enforced."""
        if not quotas:
            return None
        groups = [(group.name, group.properties or {}) for group in spawner.user.groups]
        limit, _ = quota.quota_for(spawner.user.name, groups, quota.Overrides(), s.home_quota)
        # A home another server of the user has mounted stays the folder it is until they all stop.
        in_use = any(other.active for other in spawner.user.spawners.values() if other is not spawner)
        project_id = user_ids(spawner.escaped_name) if quotas.name == "xfs" else 0
        return quota.apply_command(quotas, "/area/0", spawner.escaped_name, project_id, limit, not in_use)

    if s.home_root or s.cluster_dir:
        async def make_own_folders(spawner):
            spawner.notice = ""
            changed, limited = await asyncio.to_thread(_make_areas, ctx.engine, stack, spawner.escaped_name, areas(spawner),
                                                       limit_home(spawner), quotas, **quota.helper_options(quotas))
            for line in changed:
                spawner.log.warning("labhub: %s", line)
            if quotas:
                took, _, printed = limited.partition(" ")
                use = quota.parse_use(printed)
                quota.log_use(spawner.log, spawner.user.name, use, printed, took)
                spawner.notice = quota.home_notice(use)

        hooks.add_hook(c, "pre_spawn_hook", make_own_folders)


def limit_home_now(engine: docker.DockerClient, stack: Stack, s: Settings, user: str, overrides: "quota.Overrides") -> str:
    """Applies a user's quota to their home at once (`labhub quota set`); says what it did. A home
    that is still a plain folder on btrfs becomes a subvolume at its user's next start, not here,
    where one of their servers may have it mounted."""
    from dockerspawner import DockerSpawner  # its escaping names the home's folder
    found = quota.probe(engine, stack, s, probe_host_folders(engine, stack, s)[s.home_root])
    limit, source = quota.quota_for(user, quota.user_groups(DATABASE).get(user, []), overrides, s.home_quota)
    said = f"{user}'s quota is {quota.format_size(limit) if limit else 'no limit'} ({source})"
    if not found.name:
        return f"{said}, not enforced: {found.problem}"
    name = DockerSpawner._escape(user)
    # The hub alone gives out ids (a second giver could hand one out twice): a user without one yet
    # has never started since XFS quotas were on, and gets their project then.
    project_id = UserIds(s.first_uid, USER_IDS_FILE).ids.get(name) if found.name == "xfs" else 0
    if project_id is None:
        return f"{said}; applied at their next start"
    script = f'[ -d /area/0/{name} ] || {{ echo no-home; exit; }}; exec "$@"'
    out = stack.run_helper(engine, ["sh", "-c", script, "sh", *quota.apply_command(found, "/area/0", name, project_id,
                                                                                  limit, convert=False)],
                           mounts=[quota.helper_mount("/area/0", s.home_root, found)], **quota.helper_options(found))
    use = quota.parse_use(out.decode())
    if out.decode().strip() == "no-home":
        return f"{said}; applied when their home is made, at their first start"
    if use is None:
        return f"{said}; applied at their next start (their home becomes a btrfs subvolume then)"
    return f"{said}, in force: {quota.format_size(use.used)} used"
