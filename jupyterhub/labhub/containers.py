"""How far a user's own container is confined. Its processes run as the user, never root: no
capabilities and no-new-privileges, so setuid programs (sudo, su, mount) give nothing and raw
sockets are refused; a process limit keeps a fork bomb inside the container; no host device is
passed in (GPUs are labhub.gpu's, only where assigned). Ports below 1024 are root's, as on a host
(Docker opens them to every process in a container): shared storage over NFS takes a request
from such a port as the word of a machine's root, and believes the uid it names.

Users listed in LABHUB_SUDO_USERS (e.g. the lab's maintainers) may use passwordless sudo in
their own container instead: they are put in the image's `sudo` group, and keep Docker's default
capabilities, less raw sockets and device nodes. Root there is still confined by Docker: their
own container, network, limits and mounts; it reaches nothing new on the host.
"""

from typing import TYPE_CHECKING

from . import hooks
from .settings import Settings

if TYPE_CHECKING:
    from .context import HubContext

SUDO_GID = "27"  # Debian's `sudo` group (base-passwd), which the LabHub images give sudo without a password
CONFINED = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}
SUDOER = {"cap_drop": ["NET_RAW", "MKNOD"], "group_add": [SUDO_GID]}
PRIVILEGED_PORTS = {"net.ipv4.ip_unprivileged_port_start": "1024"}


def host_config(s: Settings, username: str) -> dict:
    """The Docker host config that confines this user's servers."""
    return {**(SUDOER if username in s.sudo_users else CONFINED), "pids_limit": s.pids_limit, "sysctls": PRIVILEGED_PORTS}


def configure(c, ctx: "HubContext") -> None:
    hooks.merge(c, "extra_host_config", lambda spawner: host_config(ctx.settings, spawner.user.name))
