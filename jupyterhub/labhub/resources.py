"""What one server may use on a shared lab machine, and when an idle one is stopped."""

import sys
from typing import TYPE_CHECKING

from . import hooks
from .settings import Settings

if TYPE_CHECKING:
    from .context import EngineFacts, HubContext


def site_limits(facts: "EngineFacts", s: Settings) -> tuple[str, float]:
    """Memory and CPUs per server: the settings', else a quarter of the machine's memory and half
    its CPUs, so a few busy users cannot starve the others or the hub."""
    mem = s.mem_limit or f"{max(1, facts.memory // 4 // 2**30)}G"
    cpus = s.cpu_limit or max(1.0, facts.cpus / 2)
    return mem, cpus


def configure(c, ctx: "HubContext") -> None:
    """jupyterhub-idle-culler as a hub-managed service holding only the scopes it needs."""
    s = ctx.settings
    if not s.idle_timeout:
        return
    # Notice activity well within the timeout (the defaults, 5 minutes, suit the 1-hour default).
    every = max(5, min(300, s.idle_timeout // 4))
    c.JupyterHub.last_activity_interval = every
    hooks.merge(c, "environment", {"JUPYTERHUB_ACTIVITY_INTERVAL": str(every)})
    hooks.merge(c, "services", [{
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                    f"--timeout={s.idle_timeout}", f"--cull-every={every}"],
    }], section="JupyterHub")
    hooks.merge(c, "load_roles", [{
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }], section="JupyterHub")
