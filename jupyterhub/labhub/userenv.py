"""Users' own packages, and the server kept apart from them: the hub's side (the images do the rest,
see jupyterlab/base/Dockerfile and the README's "Installing packages").

A user's `pip install X` (or `%pip install X`) goes to Python's user site in their home,
~/.local/lib/python3.X/site-packages, which kernels, terminals and the user's own Python see
first; R's install.packages() to their personal library, ~/R/<platform>-library/<R x.y>. Both
live in the home, so they outlast the container and image upgrades, and both are kept apart by
Python's or R's version, as a package built for one may not load in the next.

The server itself must never import them: a user who installs an incompatible jupyter_server or
tornado, or a user-site .pth file, must still get a working server. So it starts in Python's
isolated mode (`python3 -I`: no user site, no PYTHON* variables, not the working folder, which is
the home, on sys.path), and with Jupyter's folders out of the home (SERVER_ENVIRONMENT). Kernels
are started by the server as `python3 -m ipykernel_launcher` (the flags are not inherited), so
they see the user site. The alternative, a venv of the user's layered
on the image's, was rejected: pip, in a venv, refuses to install a user's version of any package
the venv has ("lack sys.path precedence"), and a venv made per user is one more thing that breaks
when an image upgrade changes Python's version.
"""

from .storage import HOME

# Jupyter's folders for the server alone, so that nothing in the home, or linked from it, configures
# the server or the JupyterLab page other people may open (JupyterHub's disable_user_config leaves
# ~/.jupyter/labconfig read, and lets a symlink out of the home through). Its "user" config folder is
# a path under /dev/null, where no folder is or can be made: nothing is read there, and Jupyter's
# one-time migration of ~/.ipython, which writes there, gives up at once instead of failing the
# start (it would in any folder without its marker file, as the images' own). Its "user" data
# folder is the image's own, which only root writes. What the server writes, and the user's lab
# settings and workspaces, stay in the home. Its kernels and terminals get Jupyter's usual folders
# back (the images' labhub_server.py), as they get the user site.
# The home's usual data folder, where the server's own lasting writing stays: notebook trust (the
# signatures database and its secret, written when a notebook is opened).
USERS_DATA_DIR = f"{HOME}/.local/share/jupyter"
SERVER_ENVIRONMENT = {
    "JUPYTER_CONFIG_DIR": "/dev/null/jupyter",
    "JUPYTER_DATA_DIR": "/usr/local/share/jupyter",
    # Runtime files (the server's own, kernels' connection files) last as long as the container, and
    # live in it: a server whose home is at its quota must still start (README, Disk and quotas).
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
    "JUPYTERLAB_SETTINGS_DIR": f"{HOME}/.jupyter/lab/user-settings",
    "JUPYTERLAB_WORKSPACES_DIR": f"{HOME}/.jupyter/lab/workspaces",
}
SERVER = ["env", *(f"{name}={value}" for name, value in SERVER_ENVIRONMENT.items()),
          "python3", "-I", "-m", "jupyterhub.singleuser", f"--NotebookNotary.data_dir={USERS_DATA_DIR}"]

NOTICE_FILE = "PYTHON-UPGRADED.txt"

# Part of a server's start command (labhub.bootstrap), before the server starts: when the image's
# Python has a newer minor version than the one the user installed packages with, tells the user
# once, in their home, which packages they had and how to install them again. Costs a readlink at
# a start (python3 only where that does not say the version), and nothing where the user installed
# nothing.
OLDER_PYTHON_NOTICE = f"""
for site in "$HOME"/.local/lib/python3.*/site-packages; do
  [ -d "$site" ] || continue
  python=$(readlink "$(command -v python3)" 2>/dev/null)
  case $python in
    python3.[0-9]|python3.[0-9][0-9]) ;;
    *) python=$(python3 -I -c 'import sys; print("python%d.%d" % sys.version_info[:2])') ;;
  esac
  marker="$HOME/.local/share/labhub/told-$python"
  if [ ! -d "$HOME/.local/lib/$python/site-packages" ] && [ ! -e "$marker" ]; then
    {{ echo "Your server's Python is now ${{python#python}}. The Python packages you installed before"
      echo "(with pip, for an older Python) are kept, but this Python does not load them:"
      for old in "$HOME"/.local/lib/python3.*/site-packages; do
        [ -d "$old" ] || continue
        echo; echo "${{old#$HOME/}}:"
        for info in "$old"/*.dist-info; do
          [ -d "$info" ] && info=${{info##*/}} && echo "  ${{info%%-*}}"
        done
      done
      echo; echo "Install the ones you need again, in a terminal: pip install NAME ..."
      echo "Then you may delete the old folder (rm -r ~/.local/lib/python3.X) and this file."
    }} >"$HOME/{NOTICE_FILE}"
    mkdir -p "${{marker%/*}}" && : >"$marker"
  fi
  break
done
"""
