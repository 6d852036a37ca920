"""First-login content: the site's bootstrap.sh runs once per user, inside the user's own container
as the user, just before their server starts. So it sees exactly the home the user sees, holds up
no one else's login or spawn, and needs nothing from the hub.

In swarm mode a server may run on a node without the LabHub folder: each hub start copies the
site's jupyterhub/context to SITE_COPY in LABHUB_HOME_ROOT, which every node has, and servers
mount that copy."""

from typing import TYPE_CHECKING

import docker

from . import hooks
from .network import WAIT_FOR_GUARD
from .userenv import OLDER_PYTHON_NOTICE, SERVER

if TYPE_CHECKING:
    from .context import HubContext

CONTEXT_MOUNT = "/opt/labhub/context"  # the site's jupyterhub/context, read-only
# In the home root; no home is named so (escaped user names never start with a dot).
SITE_COPY = ".labhub-site"
# Replaces the copy whole (a new one, then a rename), readable by every user, as the context is.
COPY_SITE = f"""set -e
rm -rf /homes/{SITE_COPY}.new /homes/{SITE_COPY}.old
cp -r /context /homes/{SITE_COPY}.new
chmod -R u=rwX,go=rX /homes/{SITE_COPY}.new
[ ! -e /homes/{SITE_COPY} ] || mv /homes/{SITE_COPY} /homes/{SITE_COPY}.old
mv /homes/{SITE_COPY}.new /homes/{SITE_COPY}
rm -rf /homes/{SITE_COPY}.old
"""

# After the network guard (labhub.network) and the notice of packages installed for an older Python
# (labhub.userenv), runs bootstrap.sh (the site copy, else the template)
# unless it already ran for this home. A marker, not missing files, decides: what the user deletes
# stays deleted. A failure is logged and left in the home for the user to see; the server starts
# either way, and it runs again at the next start.
START = WAIT_FOR_GUARD + OLDER_PYTHON_NOTICE + f"""
marker="$HOME/.local/share/labhub/bootstrapped"
script={CONTEXT_MOUNT}/bootstrap.sh
[ -f "$script" ] || script="$script.template"
if [ ! -e "$marker" ]; then
  if LABHUB_CONTEXT={CONTEXT_MOUNT} timeout 120 sh "$script" >/tmp/labhub-bootstrap.log 2>&1; then
    mkdir -p "$(dirname "$marker")" && date -u >"$marker" && rm -f "$HOME/BOOTSTRAP-FAILED.txt"
  else
    echo "labhub: bootstrap.sh failed; its output is in ~/BOOTSTRAP-FAILED.txt" >&2
    cat /tmp/labhub-bootstrap.log >&2
    {{ echo "Setting up your home failed (it will be tried again when your server next starts)."
      echo "Tell your admin; this is what it said:"; echo; cat /tmp/labhub-bootstrap.log; }} >"$HOME/BOOTSTRAP-FAILED.txt"
  fi
fi
exec "$@"
"""


def site_for_servers(ctx: "HubContext") -> str:
    """The host folder servers mount the site's context from: the LabHub folder's, or in swarm
    mode a fresh copy in the home root."""
    if not ctx.settings.swarm:
        return ctx.stack.context_dir
    ctx.stack.run_helper(ctx.engine, ["sh", "-c", COPY_SITE], mounts=[
        docker.types.Mount("/context", ctx.stack.context_dir, type="bind", read_only=True),
        docker.types.Mount("/homes", ctx.settings.home_root, type="bind")])
    return f"{ctx.settings.home_root}/{SITE_COPY}"


def configure(c, ctx: "HubContext") -> None:
    hooks.merge(c, "volumes", {site_for_servers(ctx): {"bind": CONTEXT_MOUNT, "mode": "ro"}})
    # The server runs apart from the user's own packages (labhub.userenv).
    c.DockerSpawner.cmd = ["sh", "-c", START, "labhub-start", *SERVER]
    # bootstrap.sh may clone repositories: give the first start time for it.
    c.Spawner.http_timeout = 150
