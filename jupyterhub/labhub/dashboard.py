"""The admins' monitoring page (README, Monitoring): a hub-managed service at /services/monitoring/
(labhub.monitoring registers it), behind the hub's login. Only who may access the service opens it:
admins (JupyterHub's admin role has access:services; users' default role does not).

It plots what Prometheus has (labhub.charts: SVG drawn here, no script) over a chosen span, and
lists the alerts firing and who holds which GPU. Prometheus itself stays on the monitoring network.
"""

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import IOLoop

from .charts import line_chart
from .monitoring import PROMETHEUS_URL

SPANS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
POINTS = 240  # per series: enough for the chart's width
FILE_SYSTEMS = 'fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|iso9660|fuse.lxcfs"'  # as monitoring/alerts.yml's FileSystemFull
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # as labhub.charts.format_value takes it
    queries: tuple[tuple[str, str], ...]  # (PromQL, the legend: label names in braces)


def _spawn_quantile(q: float) -> str:
    return (f"histogram_quantile({q}, sum by (le) (rate(jupyterhub_server_spawn_duration_seconds_bucket"
            '{status="success"}[15m])))')


def _by_node(query: str) -> str:
    """The query's series named by their node's host name (node-exporter shares the host's)."""
    return f"({query}) * on (instance) group_left (nodename) node_uname_info"


PANELS = (
    Panel("Users active", "", (('jupyterhub_active_users{period="24h"}', "in the last 24 hours"),
                               ('jupyterhub_active_users{period="7d"}', "in the last 7 days"))),
    # As the engine runs them (JupyterHub's own jupyterhub_running_servers can drift from it).
    Panel("Servers running", "", (("count(labhub_server_info) or vector(0)", "servers"),)),
    Panel("Server start time", "seconds", ((_spawn_quantile(0.5), "median"), (_spawn_quantile(0.95), "95th percentile"))),
    Panel("Memory per server", "bytes", (("labhub_server_memory_bytes", "{user} {server}"),)),
    Panel("CPUs per server", "", (("rate(labhub_server_cpu_seconds_total[2m])", "{user} {server}"),)),
    Panel("CPU per node", "ratio", ((_by_node('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m]))'),
                                     "{nodename}"),)),
    Panel("Memory per node", "ratio", ((_by_node("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"),
                                        "{nodename}"),)),
    Panel("GPUs held per user", "", (("sum by (user) (labhub_server_gpus) > 0", "{user}"),)),
    Panel("GPU use per GPU", "ratio", (("labhub_gpu_utilization_ratio", "GPU {gpu} {uuid}"),
                                       ("labhub_gpu_memory_used_bytes / labhub_gpu_memory_total_bytes", "GPU {gpu} {uuid} memory"))),
    Panel("GPU use per server", "ratio", (("labhub_server_gpu_utilization_ratio", "{user} {server}"),)),
    Panel("Disks", "ratio", ((f"1 - node_filesystem_avail_bytes{{{FILE_SYSTEMS}}} / node_filesystem_size_bytes", "{mountpoint}"),)),
    Panel("Homes against their quota", "ratio", (("labhub_home_used_bytes / (labhub_home_quota_bytes > 0)", "{user}"),)),
)


def legend(template: str, labels: dict) -> str:
    return template.format_map({**{name: "" for name in _names(template)}, **labels}).strip() or "value"


def _names(template: str) -> list[str]:
    return [part.split("}", 1)[0] for part in template.split("{")[1:]]


class Prometheus:
    def __init__(self, url: str = PROMETHEUS_URL):
        self.url, self.http = url, AsyncHTTPClient()

    async def get(self, path: str, **params) -> dict:
        response = await self.http.fetch(f"{self.url}{path}?{urlencode(params)}", request_timeout=20)
        return json.loads(response.body)["data"]

    async def series(self, panel: Panel, start: float, end: float) -> list[tuple[str, list[tuple[float, float]]]]:
        step = max(15, int((end - start) / POINTS))
        found = []
        for query, label in panel.queries:
            data = await self.get("/api/v1/query_range", query=query, start=start, end=end, step=step)
            found += [(legend(label, r["metric"]), [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]
        return sorted(found)


class Page(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    async def get(self):
        span = self.get_argument("span", "6h")
        span = span if span in SPANS else "6h"
        end = time.time()
        start = end - SPANS[span]
        prometheus = Prometheus()
        try:
            plotted = await asyncio.gather(*(prometheus.series(p, start, end) for p in PANELS))
            alerts = (await prometheus.get("/api/v1/alerts"))["alerts"]
            holders = (await prometheus.get("/api/v1/query", query="labhub_server_gpu_info"))["result"]
        except (HTTPClientError, OSError) as e:
            self.set_status(503)
            self.finish(TEMPLATES.get_template("monitoring.html").render(error=f"Prometheus does not answer ({e})",
                                                                           spans=SPANS, span=span, hub=self.hub_home))
            return
        charts = [line_chart(p.title, series, p.unit, start, end) for p, series in zip(PANELS, plotted)]
        firing = sorted((a for a in alerts if a["state"] == "firing"), key=lambda a: a["labels"]["alertname"])
        self.finish(TEMPLATES.get_template("monitoring.html").render(
            charts=charts, alerts=firing, holders=[h["metric"] for h in holders], spans=SPANS, span=span,
            hub=self.hub_home, user=self.current_user["name"]))

    @property
    def hub_home(self) -> str:
        return url_path_join(os.environ.get("JUPYTERHUB_BASE_URL", "/"), "hub/home")


def main() -> None:
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    app = web.Application([
        (prefix, Page),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ], cookie_secret=os.urandom(32))  # a new one at each start: the hub's login signs the admin in again
    app.listen(url.port, url.hostname)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
