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

Named in /usr/local/etc/jupyter/jupyter_server_config.json (the documented way: neither class's
folders nor environment is a setting) and, for the store (a callable, which JSON cannot name),
jupyter_server_config.py there.
"""

import ctypes
import os
import sqlite3

from jupyter_client.kernelspec import KernelSpecManager
from nbformat.sign import SQLiteSignatureStore
from jupyter_server_terminals.terminalmanager import TerminalManager
from traitlets import default

HOME = os.path.expanduser("~")
PR_SET_DUMPABLE = 4  # prctl(2)
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
