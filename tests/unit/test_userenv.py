"""Users' own packages (labhub.userenv): the server starts apart from them, and a user whose
packages an image upgrade left behind (a new Python minor version) is told once."""

import os
import subprocess
from pathlib import Path

from traitlets.config import Config

from labhub import bootstrap, userenv

from contexts import hub_context


def test_the_server_starts_isolated_from_the_users_packages_and_kernels_do_not_inherit_it():
    c = Config()
    bootstrap.configure(c, hub_context())
    cmd = c.DockerSpawner.cmd
    assert cmd[:2] == ["sh", "-c"] and cmd[-len(userenv.SERVER):] == userenv.SERVER
    # -I: no user site, no PYTHON* variables, no working folder (the home) on sys.path. A flag,
    # not an environment variable, so the kernels the server starts see the user site.
    start = userenv.SERVER.index("python3")
    assert userenv.SERVER[start:start + 4] == ["python3", "-I", "-m", "jupyterhub.singleuser"]
    assert "PYTHONNOUSERSITE" not in cmd[2] and "environment" not in c.DockerSpawner


def test_the_server_reads_no_jupyter_folder_of_the_home_but_writes_where_it_did():
    env = dict(item.split("=", 1) for item in userenv.SERVER[1:userenv.SERVER.index("python3")])
    assert userenv.SERVER[0] == "env" and env == userenv.SERVER_ENVIRONMENT
    # Config and data (page config, settings overrides, extensions): nothing, and the image's.
    assert env["JUPYTER_CONFIG_DIR"].startswith("/dev/null/")
    assert env["JUPYTER_DATA_DIR"] == "/usr/local/share/jupyter"
    # The lab's settings and workspaces: the user's, as before.
    for name in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        assert env[name].startswith("/home/jovyan/")
    # Runtime files: the container's, so that a home at its quota does not stop the server's start.
    assert env["JUPYTER_RUNTIME_DIR"].startswith("/tmp/")
    # And notebook trust, which the server writes when it opens a notebook (its data folder's otherwise).
    assert userenv.SERVER[-1] == "--NotebookNotary.data_dir=/home/jovyan/.local/share/jupyter"


def python_named(tmp_path: Path, version: str) -> dict:
    """A PATH whose python3 is a link to python<version>, as Debian's is."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    real = bin_dir / f"python{version}"
    real.write_text("#!/bin/sh\nexit 1\n")
    real.chmod(0o755)
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(real.name)
    return {"HOME": str(tmp_path / "home"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def user_site(tmp_path: Path, version: str, *packages: str) -> None:
    site = tmp_path / "home" / ".local" / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    for package in packages:
        (site / f"{package}.dist-info").mkdir()


def notice(tmp_path: Path, version: str) -> str | None:
    (tmp_path / "home").mkdir(exist_ok=True)
    subprocess.run(["sh", "-euc", userenv.OLDER_PYTHON_NOTICE], env=python_named(tmp_path, version), check=True)
    path = tmp_path / "home" / userenv.NOTICE_FILE
    return path.read_text() if path.exists() else None


def test_no_notice_without_packages_or_with_packages_for_this_python(tmp_path):
    assert notice(tmp_path, "3.13") is None
    user_site(tmp_path, "3.13", "tabulate-0.9.0")
    assert notice(tmp_path, "3.13") is None


def test_packages_of_an_older_python_are_named_once_with_what_to_do(tmp_path):
    user_site(tmp_path, "3.13", "tabulate-0.9.0", "my_tool-1.2")
    text = notice(tmp_path, "3.14")
    assert "Your server's Python is now 3.14" in text
    assert ".local/lib/python3.13/site-packages:\n  my_tool\n  tabulate\n" in text
    assert "pip install" in text
    (tmp_path / "home" / userenv.NOTICE_FILE).unlink()
    assert notice(tmp_path, "3.14") is None  # told once: deleting the file ends it
    assert notice(tmp_path, "3.15") is not None  # the next upgrade tells again


def test_no_notice_once_the_user_installed_for_the_new_python(tmp_path):
    user_site(tmp_path, "3.13", "tabulate-0.9.0")
    user_site(tmp_path, "3.14", "tabulate-0.9.0")
    assert notice(tmp_path, "3.14") is None
