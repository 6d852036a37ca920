"""LabHub's additions to the Jupyter server of every user image: what the server's children (the
user's kernels and terminals) get back of the home that the server itself never reads.

The hub starts the server with Jupyter's config and data folders moved out of the home
(labhub.userenv.SERVER_ENVIRONMENT), so that nothing a user writes or links there reaches the
JupyterLab page, which runs with the browser's session on the hub's site: no page_config.json
(whose extension URLs load scripts), no settings overrides, no extensions. JupyterHub's
disable_user_config alone still read ~/.jupyter/labconfig, and compares resolved paths, which a
symlink out of the home defeats.

Kernels and terminals are the user's own: they get Jupyter's usual folders in the home back
(USER_FOLDERS), so `python -m ipykernel install --user`, `jupyter --paths` and `%config` work as
anywhere. The users' kernels folder (~/.local/share/jupyter/kernels) is offered after the image's
(JupyterHub issue 4940: disable_user_config hid it), so a user's kernel named like one of the
image's does not hide it. Files in it are served at /user/<name>/kernelspecs/ with a sandboxing
Content-Security-Policy added by Traefik (reverse-proxy/dynamic/labhub.toml).

Notebook trust's records stay in the home too (HomeSignatureStore), but a home at its quota must
not make saving a notebook fail with "database is locked": the save goes on and fails, if it does,
with its own reason ("Disk quota exceeded"), which JupyterLab shows.

A server shared with colleagues (labhub.sharing on the hub) serves them as its owner, and its
memory holds the browser tokens of everyone who opened it. Every kernel and terminal runs as the
server's uid, which may read a process of its uid through /proc/<pid>/mem or ptrace: so the server
makes itself non-dumpable (keep_memory_from_children), which closes it to them; what it starts is
dumpable again after exec, as usual. And it asks the hub again about a browser's token after 10 s
(HubOAuth.cache_max_age; JupyterHub's is 5 minutes), so a revoked share stops working within that.
Past those 10 s, a token's last answer stands while the hub is asked again (up to
KEEP_WHILE_HUB_DOWN, JupyterHub's own cache age): open notebooks carry on while the hub restarts.
A WebSocket (a kernel's, a terminal's) is let in once, when it opens, and would outlive the share:
so this module, as a server extension, notes each one with the token it opened with, asks again
every RECHECK_SECONDS, and closes those whose user may no longer use the server.

Named in /usr/local/etc/jupyter/jupyter_server_config.json (the documented way: neither class's
folders nor environment is a setting) and, for the store (a callable, which JSON cannot name),
jupyter_server_config.py there.
"""

import asyncio
import ctypes
import os
import sqlite3
import time
import weakref

from jupyter_client.kernelspec import KernelSpecManager
from nbformat.sign import SQLiteSignatureStore
from jupyter_server_terminals.terminalmanager import TerminalManager
from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketHandler
from traitlets import default

HOME = os.path.expanduser("~")
PR_SET_DUMPABLE = 4  # prctl(2)
RECHECK_SECONDS = 5
KEEP_WHILE_HUB_DOWN = 300
# What jupyter_core uses when these variables are unset, as for any user outside the server.
USER_FOLDERS = {"JUPYTER_CONFIG_DIR": os.path.join(HOME, ".jupyter"),
                "JUPYTER_DATA_DIR": os.path.join(HOME, ".local", "share", "jupyter")}


class UserKernelSpecManager(KernelSpecManager):
    @default("data_dir")
    def _data_dir_default(self) -> str:
        return USER_FOLDERS["JUPYTER_DATA_DIR"]  # user_kernel_dir is its kernels/

    @default("kernel_dirs")
    def _kernel_dirs_default(self) -> list[str]:
        dirs = super()._kernel_dirs_default()
        return dirs if self.user_kernel_dir in dirs else [*dirs, self.user_kernel_dir]

    def get_kernel_spec(self, kernel_name: str):
        spec = super().get_kernel_spec(kernel_name)
        spec.env = {**USER_FOLDERS, **spec.env}  # a kernel's own settings win
        return spec


class UserTerminalManager(TerminalManager):
    def make_term_env(self, *args, **kwargs) -> dict[str, str]:
        return {**super().make_term_env(*args, **kwargs), **USER_FOLDERS}


class HomeSignatureStore(SQLiteSignatureStore):
    """Notebook trust's database in the home's Jupyter data folder (where the hub points
    NotebookNotary.data_dir, labhub.userenv.USERS_DATA_DIR). Where the home cannot take a write, a
    notebook is not remembered as trusted, rather than its save or its opening failing."""

    @classmethod
    def in_home(cls) -> "HomeSignatureStore":  # NotebookNotary.store_factory
        return cls(os.path.join(USER_FOLDERS["JUPYTER_DATA_DIR"], "nbsignatures.db"))

    def store_signature(self, digest, algorithm):
        try:
            super().store_signature(digest, algorithm)
        except sqlite3.Error as e:
            self.db.rollback()
            self.log.warning("Notebook trust not recorded (is the home full?): %s", e)

    def check_signature(self, digest, algorithm):
        try:
            return super().check_signature(digest, algorithm)
        except sqlite3.Error as e:  # its last-seen time could not be written
            self.db.rollback()
            self.log.warning("Notebook trust not read (is the home full?): %s", e)
            return False


def keep_memory_from_children() -> None:
    """Makes this process non-dumpable: no process without CAP_SYS_PTRACE reads its memory."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def answer_while_hub_down(hub_auth) -> None:
    """Takes over hub_auth's cache of the hub's answers about tokens: an answer younger than its
    cache age stands; an older one (up to KEEP_WHILE_HUB_DOWN) stands while the hub is asked again,
    once per token, in the background. While the hub is down, asking waits for minutes (its
    address is gone) and then fails."""
    ask = hub_auth._check_hub_authorization
    answered = {}  # cache key -> (when the hub gave it, the answer: a user model, or None for no one)
    asking = {}  # cache key -> the request to the hub under way

    async def ask_hub(url, api_token, cache_key):
        answer = await ask(url, api_token, cache_key=cache_key, use_cache=False)
        now = time.monotonic()
        for key in [k for k, (when, _) in answered.items() if now - when >= KEEP_WHILE_HUB_DOWN]:
            del answered[key]
        if cache_key is not None:
            answered[cache_key] = (now, answer)
        return answer

    async def check(url, api_token, cache_key=None, use_cache=True):
        when, last = answered.get(cache_key, (None, None))
        age = None if when is None else time.monotonic() - when
        if not use_cache or age is None or age >= KEEP_WHILE_HUB_DOWN:
            return await ask_hub(url, api_token, cache_key)
        if age >= hub_auth.cache_max_age and cache_key not in asking:
            asking[cache_key] = task = asyncio.ensure_future(ask_hub(url, api_token, cache_key))
            task.add_done_callback(lambda done: (asking.pop(cache_key, None), done.cancelled() or done.exception()))
        return last

    hub_auth._check_hub_authorization = check


def _jupyter_server_extension_points():
    return [{"module": "labhub_server"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Closes the open WebSockets of users who may no longer use this server, and keeps serving
    those who may while the hub restarts (under JupyterHub)."""
    provider = serverapp.identity_provider
    hub_auth = getattr(provider, "hub_auth", None)
    if hub_auth is None:
        return
    answer_while_hub_down(hub_auth)
    opened_with = weakref.WeakKeyDictionary()  # open WebSocket handler -> the token it was let in with
    let_in = provider.get_user

    async def get_user(handler):
        user = await let_in(handler)
        if user is not None and isinstance(handler, WebSocketHandler):
            opened_with[handler] = hub_auth.get_token(handler)
        return user

    provider.get_user = get_user  # JupyterHub's identity provider, which the server makes itself

    async def close_revoked() -> None:
        for handler, token in list(opened_with.items()):
            if handler.ws_connection is None:  # not open yet, or closed
                continue
            user = await hub_auth.user_for_token(token, sync=False) if token else None
            if user is None or not hub_auth.check_scopes(hub_auth.access_scopes, user):
                serverapp.log.warning("labhub: closing %s's connection %s: they may no longer use this server",
                                      handler.current_user.username if handler.current_user else "a user",
                                      handler.request.path)
                opened_with.pop(handler, None)
                handler.close(4003, "access to this server ended")

    PeriodicCallback(close_revoked, RECHECK_SECONDS * 1000).start()
