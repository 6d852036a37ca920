"""The routing table to user servers: configurable-http-proxy (CHP) as its own compose service,
`chp`, as in Zero to JupyterHub. A hub restart, upgrade or crash leaves it running, so every open
notebook keeps its route, and its kernel websockets stay open; only the hub's own pages wait
(Traefik shows the restart page for them meanwhile: labhub.restartpage).

- CHP serves only on the compose network, where Traefik reaches it (its start, in the `proxy`
  image, binds the address its service name has there). The hub joins it to each server's
  network (labhub.network) so it reaches the server there; a server finds nothing listening on it.
- Its API is on a unix socket in the `proxy-api` volume, which only the hub and chp mount, and
  asks for the token chp makes there at its first start: nothing on any network can change a route.
- The routes are made true again (JupyterHub's check_routes: servers started or stopped
  meanwhile routed or removed) at each hub start, with each of JupyterHub's activity updates, and
  whenever the chp container starts (labhub.network watches for it: a restarted CHP has no routes).

Hub-direct mode (LABHUB_HUB_SSL, no Traefik) keeps CHP inside the hub, serving TLS itself: there a
hub restart still cuts open notebooks off (README, "Hub-direct mode").
"""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import HubContext

SERVICE = "chp"  # its compose service
API_DIR = Path("/run/labhub-proxy")  # the proxy-api volume, in the hub and chp alike
TOKEN_FILE = API_DIR / "token"
API_SOCKET = API_DIR / "api.sock"
# The hub's name on the compose network only (docker-compose.yml): there CHP sends what no
# server's route takes. `hub` names the hub on every server's network too, which chp is on.
HUB_FRONT = "hub-front"
# Hub-direct mode: CHP inside the hub, its API on loopback only.
IN_HUB_API_URL = "http://127.0.0.1:8001"


async def recheck_routes() -> None:
    """The running JupyterHub makes the proxy's routes true again, as at its start."""
    from jupyterhub.app import JupyterHub

    app = JupyterHub.instance()
    await app.proxy.check_routes(app.users, app._service_map)


def configure(c, ctx: "HubContext") -> None:
    """JupyterHub's proxy: the chp service's, or (hub-direct mode) its own."""
    if ctx.settings.hub_ssl:
        c.ConfigurableHTTPProxy.api_url = IN_HUB_API_URL
        c.JupyterHub.hub_connect_ip = "127.0.0.1"
        return
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = "http+unix://" + str(API_SOCKET).replace("/", "%2F")
    c.ConfigurableHTTPProxy.auth_token = TOKEN_FILE.read_text().strip()
    c.JupyterHub.hub_connect_ip = HUB_FRONT
