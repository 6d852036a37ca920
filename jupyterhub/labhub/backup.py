"""`labhub backup` and `labhub restore`: one tar archive holds everything a LabHub needs to come
back on a fresh clone or another machine, and says what it holds and how to check it.

    hub/            the hub-data volume: the user database (a consistent copy, made with SQLite's
                    backup API while the hub serves), the cookie secret, user-ids.json,
                    home-quotas.json
    site/           .env, secret/, the admin's copies of the templates
    homes/<user>/   each user's home (Docker volumes or folders under LABHUB_HOME_ROOT)
    shared/         the shared folder (with --shared)
    manifest.json   last: what was backed up, when, and every file's size and SHA-256

Homes are read and written by a short-lived helper container that mounts them (the admin command
sees neither the volumes nor the host), with GNU tar, which copes with files changing while it
reads. Restore trusts no archive: before it writes anything, it checks every checksum, that every
member lands inside its own area and that the manifest names only the deployment's own folders.
"""

import datetime
import hashlib
import importlib.metadata
import io
import json
import os
import posixpath
import re
import shutil
import sqlite3
import stat
import sys
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import docker

from . import settings, storage
from .files import atomic
from .settings import DATA_DIR, DATABASE, SITE_DIR, Settings, SettingError
from .stack import Stack
from .terminal import printable

FORMAT = 1
MANIFEST = "manifest.json"
# The admin's own files: git-ignored copies of the templates, settings and secrets.
SITE_FILES = (".env", "jupyterhub/context/jupyterhub_config.py", "jupyterhub/context/bootstrap.sh",
              "reverse-proxy/traefik.toml")
SITE_TREES = ("secret", "jupyterhub/context/jupyterhub_config.d")
SITE_IGNORED = ("secret/README.md", "jupyterhub/context/jupyterhub_config.d/site.py.template")  # in every clone
HELPER_ROOT = "/labhub-backup"


class Progress:
    """A bar on a terminal; elsewhere (logs, CI) a line every tenth of the way."""

    def __init__(self, what: str, total: int, out=sys.stderr):
        self.what, self.total, self.done, self.out = what, max(total, 1), 0, out
        self.tty, self.shown = out.isatty(), 0

    def add(self, n: int) -> None:
        self.done += n
        part = min(self.done / self.total, 1.0)
        if self.tty:
            bar = "#" * int(part * 30)
            self.out.write(f"\r{self.what}: [{bar:<30}] {part:4.0%} {self.done / 2**20:,.1f} MiB")
        elif int(part * 10) > self.shown:
            self.shown = int(part * 10)
            self.out.write(f"{self.what}: {part:.0%} ({self.done / 2**20:,.1f} MiB)\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


class _Hashing(io.RawIOBase):
    """Reads through a stream, hashing and counting what passes."""

    def __init__(self, stream, progress: Progress | None = None):
        self.stream, self.progress, self.sha = stream, progress, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.sha.update(data)
        if self.progress:
            self.progress.add(len(data))
        buffer[:len(data)] = data
        return len(data)


class _Chunks(io.RawIOBase):
    """A file to read from an iterator of byte chunks (a Docker stream)."""

    def __init__(self, chunks):
        self.chunks, self.rest = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.rest:
            self.rest = next(self.chunks, None)
            if self.rest is None:
                self.rest = b""
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


# --- what an archive may hold: what backup writes, and restore checks ---------------------


_ESCAPED_USER = re.compile(r"[a-z0-9-]+")  # DockerSpawner's escaped user names: homes/<user>, volume names


class _Members:
    """Checks an archive's members in order: each must be one `labhub backup` writes, and restore
    must write it inside its own area (hub/ and site/ in the admin command; a user's home or the
    shared folder in a helper container), never through a link. Users' symlinks stay as they are,
    be their targets absolute (a venv's python -> /opt/conda/bin/python3: the server's own files)
    or relative within their area: nothing is written under a name that is not a folder made
    before it in the archive, so restore never follows them."""

    def __init__(self, manifest: dict):
        self.manifest, self.volumes = manifest, manifest["homes"] == "volumes"
        # Folders that exist before the first member: the helper mounts them.
        self.mounted = {"homes", "shared"} | ({f"homes/{user}" for user in manifest["users"]} if self.volumes else set())
        self.folders, self.files = set(self.mounted), set()

    def problem(self, m: tarfile.TarInfo) -> str | None:
        parts = m.name.split("/")
        if m.name.startswith("/") or {"", ".", ".."} & set(parts):
            return "an absolute name, or one with . or .. in it, would be written outside its area"
        if m.mode & (stat.S_ISUID | stat.S_ISGID) and not m.isdir():
            return "a setuid or setgid file: no backup holds one"
        if m.name == MANIFEST:
            return None
        if parts[0] == "hub":
            return None if m.isreg() and len(parts) == 2 else "not a file of the hub's state"
        if parts[0] == "site":
            rel = m.name.removeprefix("site/")
            in_tree = any(_inside(rel, tree) for tree in SITE_TREES)
            return None if (m.isreg() and rel in SITE_FILES) or (in_tree and (m.isreg() or m.isdir())) \
                else "not one of the site files a backup holds"
        if parts[0] == "shared" and self.manifest["shared"]:
            return self._placed(m, "shared")
        if parts[0] == "homes" and (len(parts) == 1 or not self.volumes or parts[1] in self.manifest["users"]):
            return self._placed(m, "/".join(parts[:2]))  # the user's home (or the homes folder itself)
        return "outside the areas the manifest lists"

    def _placed(self, m: tarfile.TarInfo, area: str) -> str | None:
        """A member of a home or the shared folder: its kind, where it goes, what it links to."""
        if m.name == area and not m.isdir():
            return "a home or shared folder that is no folder"
        folder = posixpath.dirname(m.name)
        if m.name not in self.mounted and folder not in self.folders:
            return f"would be written under {printable(folder)}, which is no folder made before it"
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            return "a device or pipe: no backup of files holds one"
        if m.issym() and not m.linkname.startswith("/") and \
                not _inside(posixpath.normpath(posixpath.join(folder, m.linkname)), area):
            return f"a link to {printable(m.linkname)}, outside its area"
        if m.islnk() and not (m.linkname in self.files and _inside(m.linkname, area)):
            return f"a hard link to {printable(m.linkname)}, which is no file of its area before it"
        if m.name in self.folders and not m.isdir():  # a folder replaced, with all in it
            self.folders = {f for f in self.folders if not _inside(f, m.name)}
            self.files = {f for f in self.files if not _inside(f, m.name)}
        self.files.discard(m.name)
        (self.folders if m.isdir() else self.files).add(m.name)
        return None


def _inside(name: str, area: str) -> bool:
    return name == area or name.startswith(area + "/")


# --- backup ---------------------------------------------------------------------------------


def _areas(engine: docker.DockerClient, stack: Stack, s: Settings, shared: bool) -> tuple[list, list[str]]:
    """Docker mounts placing each home (and the shared folder) under HELPER_ROOT, and the users."""
    mounts = storage.home_mounts(engine, stack, s, f"{HELPER_ROOT}/homes")
    users = [] if s.home_root else [m["Target"].rpartition("/")[2] for m in mounts]
    if shared and s.shared_dir:
        mounts.append(docker.types.Mount(f"{HELPER_ROOT}/shared", s.shared_dir, type="bind", read_only=True))
    return mounts, users


class _Writer:
    """The archive being written, with a manifest entry for every file."""

    def __init__(self, tar: tarfile.TarFile):
        self.tar, self.files = tar, {}

    def add_stream(self, info: tarfile.TarInfo, stream, progress: Progress | None = None) -> None:
        if info.isreg():
            reader = _Hashing(stream, progress)
            self.tar.addfile(info, io.BufferedReader(reader, 1 << 20))
            self.files[info.name] = {"size": info.size, "sha256": reader.sha.hexdigest()}
        else:
            self.tar.addfile(info)

    def add_path(self, path: Path, name: str) -> None:
        info = self.tar.gettarinfo(str(path), name)
        with path.open("rb") as f:
            self.add_stream(info, f)

    def add_tree(self, root: Path, name: str, skip: tuple[str, ...] = ()) -> None:
        for path in sorted([root, *root.rglob("*")]):
            rel = f"{name}/{path.relative_to(root)}".removesuffix("/.")
            if rel in skip:
                continue
            if path.is_file() and not path.is_symlink():
                self.add_path(path, rel)
            elif path.is_dir() and not path.is_symlink():
                self.tar.addfile(self.tar.gettarinfo(str(path), rel))


def _database_copy(into: Path) -> Path | None:
    """A consistent copy of the hub database, taken with SQLite's backup API (the hub may be
    writing: the copy is one transaction's view)."""
    if not DATABASE.exists():
        return None
    copy = into / DATABASE.name
    src, dst = sqlite3.connect(DATABASE), sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return copy


def backup(engine: docker.DockerClient, stack: Stack, s: Settings, output: Path, shared: bool,
           excludes: list[str]) -> Path:
    """Writes the archive into the folder `output`; returns its path."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"labhub-{stack.project}-{datetime.datetime.now():%Y%m%d-%H%M%S}.tar"
    mounts, users = _areas(engine, stack, s, shared)
    held = {"homes": s.home_root or "volumes", "users": users, "shared": s.shared_dir if shared and s.shared_dir else ""}
    with atomic(path, 0o600) as archive, \
            tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar, \
            tempfile.TemporaryDirectory() as tmp:  # the archive holds keys and passwords: 0o600
        out = _Writer(tar)
        database = _database_copy(Path(tmp))
        if database:
            out.add_path(database, f"hub/{DATABASE.name}")
        for item in sorted(DATA_DIR.iterdir()) if DATA_DIR.exists() else []:
            # Not the live database, its journal, or the copies `jupyterhub upgrade-db` keeps.
            if item.is_file() and not item.name.startswith(DATABASE.name):
                out.add_path(item, f"hub/{item.name}")
        for rel in SITE_FILES:
            if (SITE_DIR / rel).is_file():
                out.add_path(SITE_DIR / rel, f"site/{rel}")
        for rel in SITE_TREES:
            if (SITE_DIR / rel).is_dir():
                out.add_tree(SITE_DIR / rel, f"site/{rel}", skip=tuple(f"site/{n}" for n in SITE_IGNORED))
        if mounts:
            _copy_homes(engine, stack, mounts, excludes, out, _Members(held))
        manifest = {
            "format": FORMAT, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "project": stack.project, "jupyterhub": importlib.metadata.version("jupyterhub"),
            **held, "excludes": excludes, "files": out.files,
        }
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(data), int(datetime.datetime.now().timestamp())
        tar.addfile(info, io.BytesIO(data))
    return path


def _copy_homes(engine, stack: Stack, mounts: list, excludes: list[str], out: _Writer, members: _Members) -> None:
    """Copies the homes (and shared folder) through GNU tar in a helper, leaving out, with a line
    each, what restore would refuse (a user's pipe, or link out of their home), so that every
    backup restores; setuid and setgid bits are dropped, the files kept."""
    helper = stack.run_helper(engine, ["sleep", "infinity"], entrypoint=[], mounts=mounts, detach=True,
                              remove=False, labels={"org.labhub.helper": "backup"})
    try:
        areas = sorted({m["Target"].removeprefix(HELPER_ROOT + "/").split("/")[0] for m in mounts})
        sizes = helper.exec_run(["du", "-sbc", *areas], workdir=HELPER_ROOT).output.decode().split()
        progress = Progress("homes" + (" and shared folder" if "shared" in areas else ""), int(sizes[-2]))
        command = ["tar", "-C", HELPER_ROOT, "-cf", "-", "--numeric-owner", "--warning=no-file-changed",
                   *(f"--exclude={pattern}" for pattern in excludes), *areas]
        stream = helper.exec_run(command, stream=True, demux=True).output
        errors = []

        def stdout():
            for chunk, err in stream:
                if err:
                    errors.append(err.decode(errors="replace"))
                if chunk:
                    yield chunk

        with tarfile.open(fileobj=io.BufferedReader(_Chunks(stdout()), 1 << 20), mode="r|") as homes:
            for member in homes:
                if not member.isdir():
                    member.mode &= ~(stat.S_ISUID | stat.S_ISGID)
                if problem := members.problem(member):
                    errors.append(f"labhub backup: left out {printable(member.name)}: {problem}\n")
                else:
                    out.add_stream(member, homes.extractfile(member) if member.isreg() else None, progress)
        progress.close()
        if errors:
            sys.stderr.write("".join(errors))
    finally:
        helper.remove(force=True)


# --- restore --------------------------------------------------------------------------------


def _dotenv(text: str) -> dict[str, str]:
    """The variables of a .env file as compose reads LabHub's (NAME=value lines, # comments)."""
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip().removeprefix("export "): re.sub(r"\s+#.*", "", value).strip().strip("\"'")
            for name, _, value in pairs}


def _own_folders(environ: Mapping[str, str]) -> tuple[str, str]:
    """Where these settings keep homes ("volumes", or LABHUB_HOME_ROOT) and the shared folder."""
    names = [f"{settings.PREFIX}{name}" for name in ("HOME_ROOT", "SHARED_DIR")]
    s = settings.load({name: environ[name] for name in names if name in environ})
    return s.home_root or "volumes", s.shared_dir


def _manifest_problems(manifest: dict, environ: Mapping[str, str], env_of: str) -> list[str]:
    """The manifest's host folders must be the deployment's own: those its settings name after the
    restore (the archive's .env, or the LabHub folder's). Its users must be names LabHub writes."""
    homes, shared = _own_folders(environ)
    problems = [f"manifest: user {printable(user)!r} is not an escaped user name" for user in manifest["users"]
                if not _ESCAPED_USER.fullmatch(user)]
    if manifest["homes"] != homes:
        problems.append(f"manifest: homes in {printable(manifest['homes'])}, but {env_of} keeps them in {homes} "
                        "(LABHUB_HOME_ROOT)")
    if manifest["shared"] and manifest["shared"] != shared:
        problems.append(f"manifest: shared folder {printable(manifest['shared'])}, but {env_of} has "
                        f"{shared or 'none'} (LABHUB_SHARED_DIR)")
    return problems


def verify(archive: Path, environ: Mapping[str, str]) -> dict:
    """Reads the whole archive; returns its manifest if every file is there with its checksum, every
    member is one restore may write (_Members) and the manifest names only the deployment's own
    folders (environ: the LabHub folder's settings). Else raises SettingError, a line per problem."""
    damaged = lambda what: SettingError(f"{archive.name}: {what}; nothing was restored (use another backup)")  # noqa: E731
    seen, refused, problems = {}, set(), []
    try:
        with tarfile.open(archive, "r:") as tar:
            manifest = json.load(tar.extractfile(MANIFEST))
            if manifest.get("format") != FORMAT:
                raise damaged(f"backup format {manifest.get('format')}, this LabHub reads {FORMAT}")
            members = _Members(manifest)
            total = sum(f["size"] for f in manifest["files"].values())
            progress = Progress("checking", total)
            for member in tar:
                problem = members.problem(member)
                if not problem and member.isreg() and member.name != MANIFEST:
                    if member.name not in manifest["files"]:
                        problem = "a file the manifest does not list"
                    else:
                        reader = _Hashing(tar.extractfile(member), progress)
                        while reader.read(1 << 20):
                            pass
                        seen[member.name] = reader.sha.hexdigest()
                if problem:
                    refused.add(member.name)
                    problems.append(f"{printable(member.name)}: {problem}")
            progress.close()
            if "site/.env" in seen:  # restored first: the settings the deployment will have
                environ = _dotenv(tar.extractfile("site/.env").read().decode(errors="replace"))
            problems += _manifest_problems(manifest, environ, "the archive's .env" if "site/.env" in seen else ".env")
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError, AttributeError) as error:
        raise damaged(f"not a readable LabHub backup ({error})") from None
    for name, entry in manifest["files"].items():
        if name in refused:
            continue
        if name not in seen:
            problems.append(f"{printable(name)} is missing")
        elif seen[name] != entry["sha256"]:
            problems.append(f"{printable(name)} does not match its checksum")
    if problems:
        raise SettingError("\n".join(f"{archive.name}: {p}; nothing was restored (use another backup)" for p in problems))
    return manifest


def _home_volume(stack: Stack, user: str) -> str:
    return stack.home_volume.replace("{username}", user)


def occupied(engine: docker.DockerClient, stack: Stack, manifest: dict) -> list[str]:
    """What a restore would overwrite."""
    found = []
    if DATABASE.exists():
        found.append(f"the hub database (volume {stack.project}_hub-data)")
    for name in manifest["files"]:
        rel = name.removeprefix("site/")
        if name.startswith("site/") and (SITE_DIR / rel).exists():
            found.append(rel)
    existing = {v.name for v in engine.volumes.list()}
    found += [f"volume {_home_volume(stack, u)}" for u in manifest["users"] if _home_volume(stack, u) in existing]
    return found


def _members(archive: Path, area: str, into: str):
    """A tar stream (chunks) of the archive's members under area/, named under into/."""
    read, write = os.pipe()

    def produce():
        with tarfile.open(archive, "r:") as tar, os.fdopen(write, "wb") as sink, \
                tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as out:
            for member in tar:
                if member.name == area or member.name.startswith(area + "/"):
                    member.name = into + member.name.removeprefix(area)
                    out.addfile(member, tar.extractfile(member) if member.isreg() else None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    with os.fdopen(read, "rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk
    thread.join()


def restore(engine: docker.DockerClient, stack: Stack, archive: Path, force: bool, environ=os.environ) -> dict:
    """Puts everything in the archive back; refuses to overwrite anything without force, and any
    archive verify() finds wrong before writing anything."""
    if stack.hub_containers(engine):
        raise SettingError("the hub is running; stop it first with `docker compose stop hub` (user servers may keep running)")
    manifest = verify(archive, environ)
    if not force and (taken := occupied(engine, stack, manifest)):
        raise SettingError(f"would overwrite {', '.join(taken)}; restore onto a fresh clone, "
                           "or add --force to replace them")
    with tarfile.open(archive, "r:") as tar:
        for member in tar:
            area, _, rel = member.name.partition("/")
            target = {"site": SITE_DIR, "hub": DATA_DIR}.get(area)
            if target is not None and rel and (member.isreg() or member.isdir()):
                if member.isdir():
                    (target / rel).mkdir(parents=True, exist_ok=True)
                    os.chmod(target / rel, member.mode)
                else:
                    _restore_file(tar, member, target / rel)
    if manifest["users"] or manifest["homes"] != "volumes":
        _restore_area(engine, stack, archive, "homes", manifest)
    if manifest["shared"]:
        _restore_area(engine, stack, archive, "shared", manifest)
    return manifest


def _restore_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tar.extractfile(member) as source, atomic(path, member.mode) as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
        sink.flush()  # before the times are set
        os.fchown(sink.fileno(), member.uid, member.gid)
        os.utime(sink.fileno(), (member.mtime, member.mtime))


def _restore_area(engine, stack: Stack, archive: Path, area: str, manifest: dict) -> None:
    """Unpacks homes/ or shared/ into their volumes or host folders, through a helper container.
    Volumes are made by mounting them; a host folder is made (by Docker) if it is missing."""
    volumes = {}
    if area == "shared":
        volumes[manifest["shared"]] = {"bind": f"{HELPER_ROOT}/shared", "mode": "rw"}
    elif manifest["homes"] != "volumes":
        volumes[manifest["homes"]] = {"bind": f"{HELPER_ROOT}/homes", "mode": "rw"}
    else:
        for user in manifest["users"]:
            volumes[_home_volume(stack, user)] = {"bind": f"{HELPER_ROOT}/homes/{user}", "mode": "rw"}
    size = sum(f["size"] for name, f in manifest["files"].items() if name.startswith(area + "/"))
    helper = engine.containers.create(stack.hub_image, ["true"], entrypoint=[], volumes=volumes,
                                      network_mode="none", labels={"org.labhub.helper": "restore"})
    try:
        progress = Progress(area, size)

        def counted():
            for chunk in _members(archive, area, area):
                progress.add(len(chunk))
                yield chunk

        if not helper.put_archive(HELPER_ROOT, counted()):
            raise SettingError(f"Docker refused to unpack {area}/ of {archive.name}")
        progress.close()
    finally:
        helper.remove(force=True)


def restore_summary(manifest: dict) -> str:
    users = ", ".join(manifest["users"]) or ("those under " + manifest["homes"] if manifest["homes"] != "volumes" else "none")
    return (f"restored the backup of {manifest['created']}: {len(manifest['files'])} files; homes of {users}"
            + (f"; shared folder {manifest['shared']}" if manifest["shared"] else ""))

