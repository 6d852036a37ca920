"""First-login content: the site's bootstrap.sh runs once per user, inside the user's own container
as the user, just before their server starts. So it sees exactly the home the user sees, holds up
no one else's login or spawn, and needs nothing from the hub.

Servers get only what it needs of the site's jupyterhub/context, read-only: the script (the
site's bootstrap.sh, else the template, looked for at each start) and welcome/. Nothing else:
jupyterhub_config.d/ holds the hub's own settings, with LDAP passwords and service tokens. In
swarm mode a server may run on a node without the LabHub folder: each hub start copies those two
to SITE_COPY in LABHUB_HOME_ROOT, which every node has, and servers mount that copy.
"""

from typing import TYPE_CHECKING

import docker

from . import hooks, quota
from .guard import WAIT as WAIT_FOR_GUARD
from .settings import CONTEXT_DIR
from .userenv import OLDER_PYTHON_NOTICE, SERVER, USERS_DATA_DIR

if TYPE_CHECKING:
    from .context import HubContext

CONTEXT_MOUNT = "/opt/labhub/context"  # where servers find the script and welcome/
SCRIPT, WELCOME = "bootstrap.sh", "welcome"
# In the home root; no home is named so (escaped user names never start with a dot).
SITE_COPY = ".labhub-site"
# Replaces the copy whole (a new one, then a rename), readable by every user (as what it holds
# is to every server); SCRIPT is the site's bootstrap.sh or the template.
COPY_SITE = f"""set -e
rm -rf /homes/{SITE_COPY}.new /homes/{SITE_COPY}.old
mkdir /homes/{SITE_COPY}.new
cp -r /context/{WELCOME} /homes/{SITE_COPY}.new/{WELCOME}
cp "/context/$SCRIPT" /homes/{SITE_COPY}.new/{SCRIPT}
chmod -R u=rwX,go=rX /homes/{SITE_COPY}.new
[ ! -e /homes/{SITE_COPY} ] || mv /homes/{SITE_COPY} /homes/{SITE_COPY}.old
mv /homes/{SITE_COPY}.new /homes/{SITE_COPY}
rm -rf /homes/{SITE_COPY}.old
"""

# After the network guard (labhub.guard) and the notice of packages installed for an older Python
# (labhub.userenv), runs bootstrap.sh unless it already ran for this home. A marker, not missing
# files, decides: what the user deletes stays deleted. A failure is logged and left in the home for
# the user to see; the server starts either way, and it runs again at the next start.
START = WAIT_FOR_GUARD + OLDER_PYTHON_NOTICE + f"""
marker="$HOME/.local/share/labhub/bootstrapped"
if [ ! -e "$marker" ]; then
  if LABHUB_CONTEXT={CONTEXT_MOUNT} timeout 120 sh {CONTEXT_MOUNT}/{SCRIPT} >/tmp/labhub-bootstrap.log 2>&1; then
    mkdir -p "$(dirname "$marker")" && date -u >"$marker" && rm -f "$HOME/BOOTSTRAP-FAILED.txt"
  else
    echo "labhub: bootstrap.sh failed; its output is in ~/BOOTSTRAP-FAILED.txt" >&2
    cat /tmp/labhub-bootstrap.log >&2
    {{ echo "Setting up your home failed (it will be tried again when your server next starts)."
      echo "Tell your admin; this is what it said:"; echo; cat /tmp/labhub-bootstrap.log; }} >"$HOME/BOOTSTRAP-FAILED.txt"
  fi
fi
mkdir -p "{USERS_DATA_DIR}" 2>/dev/null || :  # notebook trust's folder, which the server does not make
exec "$@"
"""


def site_script() -> str:
    """The script that runs: the site's own, else the shipped template."""
    return SCRIPT if (CONTEXT_DIR / SCRIPT).exists() else SCRIPT + ".template"


def site_mounts(folder: str, script: str) -> list[dict]:
    """Read-only mounts of the script and welcome/ from a host folder holding them."""
    return [{"type": "bind", "source": f"{folder}/{name}", "target": f"{CONTEXT_MOUNT}/{target}", "read_only": True}
            for name, target in ((script, SCRIPT), (WELCOME, WELCOME))]


def copy_site(ctx: "HubContext") -> str:
    """Swarm mode: copies the script and welcome/ to the home root; returns the copy's host folder."""
    ctx.stack.run_helper(ctx.engine, ["sh", "-c", COPY_SITE], environment={"SCRIPT": site_script()}, mounts=[
        docker.types.Mount("/context", ctx.stack.context_dir, type="bind", read_only=True),
        docker.types.Mount("/homes", ctx.settings.home_root, type="bind")])
    return f"{ctx.settings.home_root}/{SITE_COPY}"


def configure(c, ctx: "HubContext") -> None:
    copy = copy_site(ctx) if ctx.settings.swarm else None

    def mount_site(spawner):
        """This start's mounts of the site's files, in place of the last start's."""
        mounts = site_mounts(copy, SCRIPT) if copy else site_mounts(ctx.stack.context_dir, site_script())
        spawner.mounts = [m for m in spawner.mounts if not m["target"].startswith(CONTEXT_MOUNT + "/")] + mounts

    hooks.add_hook(c, "pre_spawn_hook", mount_site)
    # The server runs apart from the user's own packages (labhub.userenv).
    # (With home quotas enforced, inside labhub.quota's filter.)
    c.DockerSpawner.cmd = [*quota.server_prefix(ctx.facts.home_quotas), "sh", "-c", START, "labhub-start", *SERVER]
    # bootstrap.sh may clone repositories: give the first start time for it.
    c.Spawner.http_timeout = 150
