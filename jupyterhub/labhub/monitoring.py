"""Monitoring (README, Monitoring): on when COMPOSE_PROFILES (in .env) names `monitoring`, which
starts the compose services of that profile: Prometheus, Alertmanager, node-exporter, blackbox
(monitoring/) and LabHub's exporter (labhub.exporter), all on a network of their own that no user
server joins. Off, nothing of it runs and the hub is as without it.

Here: the hub's part (a `prometheus` service whose token may read the hub's metrics, and the admin
page, labhub.dashboard, a hub-managed service only admins may open), and what the setup step writes
for the monitoring services from the settings (the token, Alertmanager's receivers).

In swarm mode the compose services see the manager alone. Every other node gets node-exporter and
LabHub's exporter in node mode (its servers' CPU and memory) as global Swarm services, on an overlay
network of their own that Prometheus joins and no user server does (keep_node_services, run by the
manager's exporter, which keeps Prometheus on it as it is recreated).
"""

import json
import logging
import os
import secrets
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import docker
from docker.errors import NotFound
from docker.types import (ContainerSpec, EndpointSpec, Healthcheck, Mount, NetworkAttachmentConfig, Placement,
                          RestartPolicy, ServiceMode, TaskTemplate)

from . import certs, chp, hooks, network, swarm
from .settings import SMTP_PASSWORD, Settings, SettingError

if TYPE_CHECKING:
    from .context import HubContext

PROFILE = "monitoring"
DASHBOARD = "monitoring"  # the admin page's service name: /services/monitoring/
PROMETHEUS = "prometheus"  # the service whose token Prometheus scrapes the hub with
TOKEN = "monitoring-token"  # in secret/, made by the setup step
CONFIG_DIR = Path("/srv/jupyterhub/monitoring-config")  # the monitoring-config volume (setup writes it)
SITE_MOUNT = "/etc/labhub-monitoring/site"  # where the monitoring services mount it
DASHBOARD_PORT = 9180
PROMETHEUS_URL = "http://prometheus:9090"
ALERTMANAGER_URL = "http://alertmanager:9093"
# Swarm mode: the other nodes' parts, by their names on the nodes' monitoring network (DNS round
# robin over every node's task: Prometheus's scrape jobs look them up), and that network's.
NODE_EXPORTER, NODE_SAMPLER = "swarm-node-exporter", "swarm-node-sampler"
NODE_SERVICE_LABEL = "labhub.monitoring-node"  # on their services: the image they run (made anew for another)
SWARM_SCRAPES = "scrape-swarm.yml"  # in the configuration volume, in swarm mode only
EXPORTER_PORT = 9101  # LabHub's exporter's, on every node

log = logging.getLogger("labhub.monitoring")


def enabled(environ) -> bool:
    return PROFILE in {p.strip() for p in environ.get("COMPOSE_PROFILES", "").split(",")}


def ensure_token(secret_dir: Path) -> str:
    path = secret_dir / TOKEN
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def alertmanager_config(s: Settings, site_dir: str) -> dict:
    """Alertmanager's configuration (JSON is YAML), its files in site_dir: every alert to the
    webhook and the addresses the settings name, grouped by alert; with neither, alerts show on
    the admin page only. A problem that joins a firing group (a second full file system) is told
    within a minute, not Alertmanager's default five. Both trust the site's extra CAs as well as
    the public ones (an institution's mail server), as written at the setup step."""
    trusted = {"ca_file": f"{site_dir}/{certs.CA_BUNDLE}"}
    receiver: dict = {"name": "labhub"}
    if s.alert_webhook:
        receiver["webhook_configs"] = [{"url": s.alert_webhook, "send_resolved": True,
                                        "http_config": {"tls_config": trusted}}]
    if s.alert_email:
        receiver["email_configs"] = [{"to": ", ".join(s.alert_email), "send_resolved": True, "tls_config": trusted}]
    config: dict = {
        "route": {"receiver": "labhub", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "1m",
                  "repeat_interval": "12h"},
        "receivers": [receiver],
    }
    if s.smtp_server:
        config["global"] = {"smtp_smarthost": s.smtp_server, "smtp_from": s.smtp_from,
                            "smtp_require_tls": s.smtp_starttls}
        if s.smtp_user:
            config["global"] |= {"smtp_auth_username": s.smtp_user,
                                 "smtp_auth_password_file": f"{site_dir}/{SMTP_PASSWORD}"}
    return config


def blackbox_config(s: Settings) -> dict:
    """blackbox-exporter's probe of the front door: a TLS handshake as browsers make it (Traefik
    answers only for the host name), with any certificate: judging it is not the probe's job, its
    expiry is (an alert)."""
    return {"modules": {"front_door": {"prober": "tcp", "timeout": "5s", "tcp": {
        "tls": True, "tls_config": {"server_name": s.hostname, "insecure_skip_verify": True}}}}}


def front_door(s: Settings) -> str:
    """Where users' browsers connect, as the monitoring network and the compose one reach it:
    Traefik, or in hub-direct mode the hub's own proxy (labhub.network binds it there)."""
    return f"{chp.HUB_FRONT}:{network.HUB_DIRECT_PORT}" if s.hub_ssl else "proxy:443"


def problems(s: Settings, secret_dir: Path) -> list[str]:
    """What the monitoring cannot run with (checked by the setup step and `labhub check`)."""
    if s.smtp_user and not (secret_dir / SMTP_PASSWORD).is_file():
        return [f"LABHUB_SMTP_USER: its password is missing; put it in secret/{SMTP_PASSWORD} (mode 600)"]
    return []


def warnings(s: Settings) -> list[str]:
    """Risks of the monitoring's settings, not faults (the setup step and `labhub check` say them)."""
    if not (s.alert_webhook or s.alert_email):
        return ["monitoring: no alert receiver (LABHUB_ALERT_WEBHOOK or LABHUB_ALERT_EMAIL), so alerts show on the "
                "admin page only; set one and try it with ./labhub alert-test"]
    return []


def write_config(s: Settings, secret_dir: Path, config_dir: Path = CONFIG_DIR) -> None:
    """The setup step's part: the token, Alertmanager's and blackbox's configuration and the front
    door's address in the volume
    the monitoring services read (as nobody, like them)."""
    files = {"token": ensure_token(secret_dir) + "\n", certs.CA_BUNDLE: certs.ca_bundle()}
    if s.smtp_user:
        files[SMTP_PASSWORD] = (secret_dir / SMTP_PASSWORD).read_text()
    files["alertmanager.yml"] = json.dumps(alertmanager_config(s, SITE_MOUNT), indent=1)
    files["blackbox.yml"] = json.dumps(blackbox_config(s), indent=1)
    files["front-door.json"] = json.dumps([{"targets": [front_door(s)]}])
    (config_dir / SWARM_SCRAPES).unlink(missing_ok=True)
    if s.swarm:
        files[SWARM_SCRAPES] = json.dumps({"scrape_configs": swarm_scrapes()}, indent=1)
    for name, text in files.items():
        path = config_dir / name
        path.write_text(text)
        path.chmod(0o600)
        os.chown(path, 65534, 65534)


def swarm_scrapes() -> list[dict]:
    """Prometheus's jobs for the other nodes' parts: every task the name resolves to."""
    return [{"job_name": "swarm-node", "dns_sd_configs": [{"names": [NODE_EXPORTER], "type": "A", "port": 9100}]},
            {"job_name": "swarm-labhub", "dns_sd_configs": [{"names": [NODE_SAMPLER], "type": "A", "port": EXPORTER_PORT}]}]


def nodes_network_name(project: str) -> str:
    return f"{project}-monitoring-nodes"


def _node_services(stack, monitoring_image: str) -> dict[str, tuple[str, ContainerSpec]]:
    """name on the nodes' network -> (the image it runs, its container): each read-only, as
    nobody where it can, with every capability dropped, named after its node (node_uname_info)."""
    common = {"hostname": "{{.Node.Hostname}}", "read_only": True, "cap_drop": ["ALL"]}
    return {
        NODE_EXPORTER: (monitoring_image, ContainerSpec(
            monitoring_image, command=["labhub-node-exporter"],  # monitoring/node-exporter, as compose runs it
            mounts=[Mount("/host", "/", type="bind", read_only=True)], user="65534:65534", **common)),
        # The engine's socket, as the manager's exporter has it; root without capabilities; the
        # compose exporter's health check.
        NODE_SAMPLER: (stack.hub_image_name, ContainerSpec(
            stack.hub_image_name, command=["python", "-m", "labhub.exporter", "--node", f"{stack.container_prefix}-",
                                           stack.hub_image_name],
            mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")], healthcheck=Healthcheck(
                test=["CMD", "python", "-c", "import urllib.request; "
                      f"urllib.request.urlopen('http://127.0.0.1:{EXPORTER_PORT}/metrics', timeout=5)"],
                interval=10 * 10**9, timeout=6 * 10**9, retries=3), **common)),
    }


def keep_node_services(engine: docker.DockerClient, stack, monitoring_image: str, encryption: "swarm.Encryption") -> None:
    """Swarm mode: node-exporter and LabHub's exporter on every node but this one (its compose
    services do it here), on the nodes' monitoring network, with Prometheus on it; services made
    anew for other images (an upgrade). Run again and again: it changes only what is missing."""
    name = nodes_network_name(stack.project)
    try:
        nodes_network = engine.networks.get(name)
    except NotFound:
        # Encrypted when every node servers may land on can (as the servers' networks are).
        options = None if encryption.lacking() else {"encrypted": ""}
        nodes_network = network.allocated(engine.networks.create(
            name, driver="overlay", attachable=True, options=options, labels={NODE_SERVICE_LABEL: stack.project}))
    here = engine.info()["Swarm"]["NodeID"]
    for alias, (image, container) in _node_services(stack, monitoring_image).items():
        image_id = engine.images.get(image).id
        service_name = f"{stack.project}-{alias}"
        try:
            service = engine.services.get(service_name)
        except NotFound:
            service = None
        if service and service.attrs["Spec"].get("Labels", {}).get(NODE_SERVICE_LABEL) != image_id:
            service.remove()
            service = None
        if not service:
            engine.api.create_service(
                TaskTemplate(container, networks=[NetworkAttachmentConfig(name, aliases=[alias])],
                             placement=Placement(constraints=[f"node.id!={here}"]),
                             restart_policy=RestartPolicy("any", delay=5 * 10**9)),
                name=service_name, mode=ServiceMode("global"), endpoint_spec=EndpointSpec(mode="dnsrr"),
                labels={NODE_SERVICE_LABEL: image_id})
            log.info("Started %s on every other node", service_name)
    nodes_network.reload()
    for prometheus in stack.service_containers(engine, "prometheus"):
        if prometheus.id not in (nodes_network.attrs.get("Containers") or {}):
            nodes_network.connect(prometheus)
            log.info("Put Prometheus on %s", name)


def remove_node_services(engine: docker.DockerClient, project: str) -> None:
    """The other nodes' parts, when the monitoring is off (the hub's start)."""
    for service in engine.services.list(filters={"label": NODE_SERVICE_LABEL}):
        if service.name.startswith(f"{project}-"):
            service.remove()
    try:
        engine.networks.get(nodes_network_name(project)).remove()
    except docker.errors.APIError:  # NotFound too
        pass


TEST_ALERT = "LabHubTest"


def send_test_alert(engine, stack, s: Settings) -> str:
    """`labhub alert-test`: an alert through Alertmanager (amtool in its container, which alone
    reaches it) to the receivers, as a real one goes; it ends by itself after 10 minutes."""
    running = stack.service_containers(engine, "alertmanager")
    if not running:
        raise SettingError("alert-test: Alertmanager is not running; set COMPOSE_PROFILES=monitoring in .env, then "
                           "docker compose up -d (README, Monitoring)")
    end = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exit_code, out = running[0].exec_run([
        "amtool", "alert", "add", f"alertname={TEST_ALERT}", "severity=info",
        "--annotation=summary=A test alert sent by ./labhub alert-test: alerts reach you",
        "--annotation=action=Nothing: it ends by itself in 10 minutes",
        f"--end={end}", "--alertmanager.url=http://127.0.0.1:9093"])
    if exit_code:
        raise SettingError(f"alert-test: Alertmanager refused the test alert: {out.decode().strip()}")
    receivers = [name for name, value in (("LABHUB_ALERT_WEBHOOK", s.alert_webhook), ("LABHUB_ALERT_EMAIL", s.alert_email))
                 if value]
    if not receivers:
        return (f"sent {TEST_ALERT} to Alertmanager, but no receiver is set (LABHUB_ALERT_WEBHOOK, LABHUB_ALERT_EMAIL): "
                "it shows on the admin page only")
    return f"sent {TEST_ALERT}: it reaches {' and '.join(receivers)} within a minute (Alertmanager groups alerts for 30 s)"


def configure(c, ctx: "HubContext") -> None:
    if not enabled(ctx.environ):
        if ctx.settings.swarm:
            remove_node_services(ctx.engine, ctx.stack.project)
        return
    hooks.merge(c, "services", [
        # Made by the setup step (secret/ is read-only here).
        {"name": PROMETHEUS, "api_token": (ctx.secret_dir / TOKEN).read_text().strip()},
        # Served by the hub's container on the compose network, where the proxy reaches it.
        {"name": DASHBOARD, "url": f"http://{chp.HUB_FRONT}:{DASHBOARD_PORT}", "display": True,
         "oauth_no_confirm": True, "command": [sys.executable, "-m", "labhub.dashboard"]},
    ], section="JupyterHub")
    # The admin page opens for whoever may access the service: admins (and a role an admin gives).
    hooks.merge(c, "load_roles", [{"name": PROMETHEUS, "services": [PROMETHEUS], "scopes": ["read:metrics"]}],
                section="JupyterHub")
