"""The monitoring's switch, what the setup step writes from the settings, what the hub adds, and the
exporter's and the admin page's small decisions (labhub.monitoring, labhub.exporter,
labhub.dashboard). On the real stack: tests/integration/test_monitoring.py."""

import json
import math
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest
from traitlets.config import Config

from labhub import certs, dashboard, exporter, gpu, monitoring, nvidia, settings
from labhub.settings import SettingError

from contexts import hub_context

REPO = Path(__file__).resolve().parents[2]


def load(**env):
    return settings.load({f"LABHUB_{k.upper()}": v for k, v in env.items()})


@pytest.mark.parametrize("profiles, on", [("", False), ("monitoring", True), ("admin, monitoring", True),
                                          ("monitoringx", False)])
def test_on_only_when_compose_runs_its_profile(profiles, on):
    assert monitoring.enabled({"COMPOSE_PROFILES": profiles}) is on


def test_off_the_hub_has_nothing_of_it(tmp_path):
    c = Config()
    monitoring.configure(c, hub_context(secret_dir=tmp_path))
    assert "services" not in c.JupyterHub and not list(tmp_path.iterdir())


def test_on_prometheus_may_read_the_metrics_and_the_page_is_a_service(tmp_path):
    (tmp_path / monitoring.TOKEN).write_text("secret-token\n")
    c = Config()
    monitoring.configure(c, hub_context(secret_dir=tmp_path, environ={"COMPOSE_PROFILES": "monitoring"}))
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["prometheus"] == {"name": "prometheus", "api_token": "secret-token"}
    assert services["monitoring"]["url"] == "http://hub-front:9180"
    assert services["monitoring"]["command"][1:] == ["-m", "labhub.dashboard"]
    assert c.JupyterHub.load_roles == [{"name": "prometheus", "services": ["prometheus"], "scopes": ["read:metrics"]}]


def test_setup_writes_token_and_configurations_for_nobody(tmp_path, monkeypatch):
    secret, site = tmp_path / "secret", tmp_path / "site"
    secret.mkdir()
    site.mkdir()
    owners = []
    monkeypatch.setattr(monitoring.os, "chown", lambda path, uid, gid: owners.append((Path(path).name, uid, gid)))
    # The site's extra CAs, as mounted at the setup step: in the bundle Alertmanager trusts.
    system, extra = tmp_path / "system.crt", tmp_path / "ca-certificates"
    system.write_text("PUBLIC ROOTS\n")
    extra.mkdir()
    (extra / "university.crt").write_text("UNIVERSITY CA")
    (extra / "notes.txt").write_text("not a certificate")
    monkeypatch.setattr(certs, "SYSTEM_CA_BUNDLE", system)
    monkeypatch.setattr(certs, "EXTRA_CA_DIR", extra)
    s = load(alert_webhook="https://chat.example.edu/hooks/x", hostname="lab.example.edu")
    monitoring.write_config(s, secret, site)
    assert (site / "ca-certificates.pem").read_text() == "PUBLIC ROOTS\nUNIVERSITY CA\n"
    token = (secret / monitoring.TOKEN).read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token) and (secret / monitoring.TOKEN).stat().st_mode & 0o777 == 0o600
    assert (site / "token").read_text().strip() == token
    assert sorted(owners) == [(name, 65534, 65534) for name in
                              ("alertmanager.yml", "blackbox.yml", "ca-certificates.pem", "front-door.json", "token")]
    assert all((site / name).stat().st_mode & 0o777 == 0o600 for name, _, _ in owners)
    assert json.loads((site / "front-door.json").read_text()) == [{"targets": ["proxy:443"]}]
    blackbox = json.loads((site / "blackbox.yml").read_text())
    assert blackbox["modules"]["front_door"]["tcp"]["tls_config"]["server_name"] == "lab.example.edu"
    # Again: the same token (the hub has it), new configurations.
    monitoring.write_config(load(), secret, site)
    assert (site / "token").read_text().strip() == token
    assert json.loads((site / "alertmanager.yml").read_text())["receivers"] == [{"name": "labhub"}]


def test_alerts_go_to_the_webhook_and_the_addresses_through_the_mail_server():
    s = load(alert_webhook="https://chat.example.edu/hooks/x", alert_email="ann@example.edu, it@example.edu",
             smtp_server="smtp.example.edu:587", smtp_from="labhub@example.edu", smtp_user="labhub")
    config = monitoring.alertmanager_config(s, "/site")
    # Both trust the public roots and the site's extra CAs (the bundle the setup step writes).
    trusted = {"ca_file": "/site/ca-certificates.pem"}
    assert config["receivers"] == [{
        "name": "labhub",
        "webhook_configs": [{"url": "https://chat.example.edu/hooks/x", "send_resolved": True,
                             "http_config": {"tls_config": trusted}}],
        "email_configs": [{"to": "ann@example.edu, it@example.edu", "send_resolved": True, "tls_config": trusted}]}]
    assert config["global"] == {"smtp_smarthost": "smtp.example.edu:587", "smtp_from": "labhub@example.edu",
                                "smtp_require_tls": True, "smtp_auth_username": "labhub",
                                "smtp_auth_password_file": "/site/smtp-password"}
    assert config["route"]["receiver"] == "labhub"


def test_the_front_door_is_traefik_or_in_hub_direct_mode_the_hub():
    assert monitoring.front_door(load()) == "proxy:443"
    assert monitoring.front_door(load(hub_ssl="true")) == "hub-front:8000"


def test_no_receiver_is_a_warning_a_missing_mail_password_a_problem(tmp_path):
    assert "no alert receiver" in monitoring.warnings(load())[0]
    assert monitoring.warnings(load(alert_webhook="http://chat.lab:8065/hooks/x")) == []
    s = load(alert_email="it@example.edu", smtp_server="smtp.example.edu:587", smtp_from="lab@example.edu",
             smtp_user="lab")
    assert monitoring.problems(s, tmp_path) == [
        "LABHUB_SMTP_USER: its password is missing; put it in secret/smtp-password (mode 600)"]
    (tmp_path / "smtp-password").write_text("pw\n")
    assert monitoring.problems(s, tmp_path) == []


@pytest.mark.parametrize("env, message", [
    ({"monitoring_retention": "30 days"}, "LABHUB_MONITORING_RETENTION: '30 days' is not a duration"),
    ({"alert_webhook": "chat.example.edu/hook"}, "LABHUB_ALERT_WEBHOOK: 'chat.example.edu/hook' is not an http(s) URL"),
    ({"alert_email": "it@example.edu, nobody"}, "LABHUB_ALERT_EMAIL: 'nobody' is not an e-mail address"),
    ({"alert_email": "it@example.edu"}, "LABHUB_ALERT_EMAIL: alert e-mails need a mail server and a sender"),
    ({"smtp_server": "smtp.example.edu"}, "LABHUB_SMTP_SERVER: 'smtp.example.edu' is not host:port"),
    ({"smtp_from": "labhub"}, "LABHUB_SMTP_FROM: 'labhub' is not an e-mail address"),
])
def test_bad_monitoring_settings_say_which_and_how(env, message):
    with pytest.raises(SettingError) as e:
        load(**env)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_compose_keeps_what_settings_say():
    compose = (REPO / "docker-compose.yml").read_text()
    assert f"--storage.tsdb.retention.size={settings.MONITORING_MAX_SIZE}" in compose
    assert f"hub-front:{monitoring.DASHBOARD_PORT}" not in compose  # the hub's alone to say
    assert "monitoring-exporter:9101" in (REPO / "monitoring" / "prometheus.yml").read_text()
    assert f":{exporter.PORT}" in (REPO / "monitoring" / "prometheus.yml").read_text()


def test_gpus_held_are_counted_all_is_not_a_number():
    assert exporter.gpu_count("") == 0 and exporter.gpu_count("0,2") == 2
    assert math.isnan(exporter.gpu_count("all"))


def test_last_activity_of_each_server_from_the_hubs_database(tmp_path):
    database = tmp_path / "jupyterhub.sqlite"
    with sqlite3.connect(database) as db:
        db.executescript("CREATE TABLE users (id INTEGER, name TEXT);"
                         "CREATE TABLE spawners (user_id INTEGER, name TEXT, last_activity DATETIME);"
                         "INSERT INTO users VALUES (1, 'ann'), (2, 'bo');"
                         "INSERT INTO spawners VALUES (1, '', '2027-01-15 08:00:00.000000'), (1, 'gpu', NULL),"
                         " (2, 'big', '2027-01-15 07:00:00');")
    assert exporter.last_activity(database) == {("ann", ""): 1_800_000_000.0, ("bo", "big"): 1_799_996_400.0}
    assert exporter.last_activity(tmp_path / "none.sqlite") == {}


def test_legends_name_the_series_by_its_labels():
    assert dashboard.legend("{user} {server}", {"user": "ann", "server": "", "job": "labhub"}) == "ann"
    assert dashboard.legend("{mountpoint}", {"mountpoint": "/srv/homes"}) == "/srv/homes"
    assert dashboard.legend("servers", {}) == "servers"
    assert dashboard.legend("{user}", {}) == "value"


def test_the_page_plots_the_same_file_systems_the_alert_watches():
    alerts = (REPO / "monitoring" / "alerts.yml").read_text()
    assert dashboard.FILE_SYSTEMS in alerts


class FakeContainer:
    """A server's container; gpus given by labhub.gpu (a label), or swarm_gpus by Swarm (its environment)."""

    def __init__(self, name: str, user: str, memory: int, gpus: str = "", swarm_gpus: str = ""):
        self.name, self.labels = name, ({gpu.ASSIGNED_LABEL: gpus} if gpus else {})
        self.attrs = {"Config": {"Image": "labhub/jupyterlab-base:latest",
                                 "Env": [f"JUPYTERHUB_USER={user}", "JUPYTERHUB_SERVER_NAME="] +
                                        ([f"DOCKER_RESOURCE_NVIDIA-GPU={swarm_gpus}"] if swarm_gpus else [])},
                      "HostConfig": {"Memory": 512 * 2**20}, "State": {"StartedAt": "2026-12-07T02:00:00.5Z"}}
        self.memory = memory

    def stats(self, stream, one_shot):
        assert (stream, one_shot) == (False, True)  # one sample, at once
        if self.memory is None:
            raise docker.errors.NotFound("stopped meanwhile")
        return {"memory_stats": {"usage": self.memory, "stats": {"total_inactive_file": 2**20}},
                "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}}}


def test_the_exporter_reports_each_running_server(monkeypatch, tmp_path):
    from contexts import STACK
    monkeypatch.setattr(exporter, "DATABASE", tmp_path / "none.sqlite")
    containers = [FakeContainer("lab-user-ann", "ann", 101 * 2**20, gpus="0,1"), FakeContainer("lab-userx", "x", 1),
                  FakeContainer("lab-user-bo", "bo", None)]
    engine = type("Engine", (), {"containers": type("C", (), {"list": staticmethod(lambda filters: containers)})})
    families = {f.name: f for f in exporter.Collector(engine, "lab-user-", STACK, load()).collect()}
    value = {name: [(s.labels, s.value) for s in f.samples] for name, f in families.items()}
    assert value["labhub_server_memory_bytes"] == [({"user": "ann", "server": ""}, 100 * 2**20)]
    assert value["labhub_server_memory_limit_bytes"] == [({"user": "ann", "server": ""}, 512 * 2**20)]
    assert value["labhub_server_cpu_seconds_total"] == [({"user": "ann", "server": ""}, 2.5)]
    assert value["labhub_server_gpus"] == [({"user": "ann", "server": ""}, 2)]
    assert [labels["gpu"] for labels, _ in value["labhub_server_gpu_info"]] == ["0", "1"]
    assert value["labhub_server_info"] == [({"user": "ann", "server": "", "image": "labhub/jupyterlab-base:latest",
                                             "node": ""}, 1)]
    assert "labhub_swarm_node_up" not in value
    assert value["labhub_gpu_utilization_ratio"] == [] and value["labhub_server_gpu_utilization_ratio"] == []  # none measured
    # A swarm node's sampler: the use of the servers on its engine, nothing the manager tells.
    families = {f.name: f for f in exporter.Collector(engine, "lab-user-", helper_image="labhub/hub:latest").collect()}
    assert sorted(families) == ["labhub_gpu_memory_total_bytes", "labhub_gpu_memory_used_bytes", "labhub_gpu_utilization_ratio",
                                "labhub_server_cpu_seconds_total", "labhub_server_gpu_memory_used_bytes",
                                "labhub_server_gpu_utilization_ratio", "labhub_server_memory_bytes"]
    assert [s.labels for s in families["labhub_server_memory_bytes"].samples] == [{"user": "ann", "server": ""}]


# As USE_FIELDS, units off.
NVIDIA_SMI = ("0, GPU-a0, 87, 30000, 40960\n1, GPU-b1, 13, 1024, 40960\n"
              "2, GPU-c2, [N/A], 0, 16384\n")


class FakeEngine:
    """An engine whose helper containers answer out (nvidia-smi's), and which says what it ran."""

    def __init__(self, out: str, containers=()):
        self.out, self.ran = out.encode(), []
        self.containers = SimpleNamespace(run=self.run, list=lambda filters: list(containers))

    def run(self, image, command, **options):
        self.ran.append((image, command, options))
        return self.out


def test_gpu_use_is_asked_of_nvidia_smi_in_a_container_given_every_gpu():
    engine = FakeEngine(NVIDIA_SMI)
    use = nvidia.use(engine, "labhub/hub:latest")
    [(image, command, options)] = engine.ran
    assert image == "labhub/hub:latest"
    assert command == ["nvidia-smi", "--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total",
                       "--format=csv,noheader,nounits"]
    assert options == {"network_mode": "none", "remove": True,
                       "device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]}
    assert use[:2] == [nvidia.GpuUse("0", "GPU-a0", 0.87, 30000 * 2**20, 40960 * 2**20),
                       nvidia.GpuUse("1", "GPU-b1", 0.13, 1024 * 2**20, 40960 * 2**20)]
    assert use[2].index == "2" and math.isnan(use[2].utilization)  # a GPU that does not tell its use
    assert nvidia.detect({"Runtimes": {"nvidia": {}, "runc": {}}}, FakeEngine("0\n1\n"), "img") == ["0", "1"]


@pytest.mark.parametrize("env, info, measured", [
    ({}, {"Runtimes": {"nvidia": {}, "runc": {}}}, True),
    ({}, {"Runtimes": {"runc": {}}}, False),
    ({"gpus": "off"}, {"Runtimes": {"nvidia": {}}}, False),
    # The manager's own GPUs; the other nodes' samplers measure theirs.
    ({"swarm": "true", "home_root": "/srv/homes"}, {"Runtimes": {"nvidia": {}}}, True),
])
def test_gpus_are_sampled_where_servers_may_get_them_on_this_machine(env, info, measured):
    assert exporter.measures_gpus(load(**env), info) is measured


def test_the_exporter_reports_each_gpus_use_and_each_servers_share_of_it(monkeypatch, tmp_path):
    from contexts import STACK
    monkeypatch.setattr(exporter, "DATABASE", tmp_path / "none.sqlite")
    containers = [FakeContainer("lab-user-ann", "ann", 101 * 2**20, gpus="0,1"),
                  FakeContainer("lab-user-bo", "bo", 101 * 2**20, gpus="2"),
                  FakeContainer("lab-user-cy", "cy", 101 * 2**20, gpus="3")]  # a GPU nvidia-smi did not list
    engine = FakeEngine(NVIDIA_SMI, containers)
    collector = exporter.Collector(engine, "lab-user-", STACK, load())
    collector.gpus = nvidia.use(engine, collector.helper_image)
    assert engine.ran[0][0] == STACK.hub_image
    families = {f.name: f for f in collector.collect()}
    value = {name: {tuple(s.labels.values()): s.value for s in f.samples} for name, f in families.items()}
    assert value["labhub_gpu_utilization_ratio"] == {("0", "GPU-a0"): 0.87, ("1", "GPU-b1"): 0.13,
                                                     ("2", "GPU-c2"): pytest.approx(math.nan, nan_ok=True)}
    assert value["labhub_gpu_memory_used_bytes"][("1", "GPU-b1")] == 1024 * 2**20
    assert value["labhub_gpu_memory_total_bytes"][("0", "GPU-a0")] == 40960 * 2**20
    assert value["labhub_server_gpu_utilization_ratio"][("ann", "")] == pytest.approx(0.5)
    assert value["labhub_server_gpu_memory_used_bytes"][("ann", "")] == 31024 * 2**20
    assert ("cy", "") not in value["labhub_server_gpu_utilization_ratio"]  # not measured: no figure, not a wrong one


def test_a_swarm_nodes_sampler_reports_its_gpus_and_the_share_of_its_servers_which_hold_them_by_uuid():
    """Swarm gives a server GPUs by the ids its node advertises (their UUIDs), in its environment."""
    containers = [FakeContainer("lab-user-ann", "ann", 101 * 2**20, swarm_gpus="GPU-a0,GPU-b1"),
                  FakeContainer("lab-user-bo", "bo", 101 * 2**20, swarm_gpus="GPU-d3"),  # one nvidia-smi did not list
                  FakeContainer("lab-user-cy", "cy", 101 * 2**20)]
    engine = FakeEngine(NVIDIA_SMI, containers)
    collector = exporter.Collector(engine, "lab-user-", helper_image="labhub/hub:latest")
    collector.gpus = nvidia.use(engine, collector.helper_image)
    value = {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in collector.collect()}
    assert value["labhub_server_gpu_utilization_ratio"] == {("ann", ""): pytest.approx(0.5)}
    assert value["labhub_server_gpu_memory_used_bytes"] == {("ann", ""): 31024 * 2**20}
    assert value["labhub_gpu_utilization_ratio"][("1", "GPU-b1")] == 0.13
    assert exporter.Collector(engine, "lab-user-", helper_image="labhub/hub:latest").gpus == []  # until measured


def test_in_swarm_mode_prometheus_looks_up_the_other_nodes_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(monitoring.os, "chown", lambda *args: None)
    secret, site = tmp_path / "secret", tmp_path / "site"
    secret.mkdir()
    site.mkdir()
    monitoring.write_config(load(swarm="true", home_root="/srv/homes"), secret, site)
    jobs = json.loads((site / monitoring.SWARM_SCRAPES).read_text())["scrape_configs"]
    assert [(job["job_name"], job["dns_sd_configs"][0]["names"], job["dns_sd_configs"][0]["port"]) for job in jobs] == \
        [("swarm-node", ["swarm-node-exporter"], 9100), ("swarm-labhub", ["swarm-node-sampler"], 9101)]
    assert "scrape-*.yml" in (REPO / "monitoring" / "prometheus.yml").read_text()
    monitoring.write_config(load(), secret, site)  # out of swarm mode: gone
    assert not (site / monitoring.SWARM_SCRAPES).exists()


def test_the_other_nodes_parts_are_confined_and_named_after_their_node():
    from contexts import STACK
    services = monitoring._node_services(STACK, "labhub/monitoring:latest")
    exporter_spec, sampler_spec = services["swarm-node-exporter"][1], services["swarm-node-sampler"][1]
    for spec in (exporter_spec, sampler_spec):
        assert spec["ReadOnly"] is True and spec["CapabilityDrop"] == ["ALL"] and spec["Hostname"] == "{{.Node.Hostname}}"
    assert exporter_spec["User"] == "65534:65534" and exporter_spec["Mounts"][0]["ReadOnly"] is True
    assert services["swarm-node-sampler"][0] == "labhub/hub:latest"
    assert sampler_spec["Command"][-3:] == ["--node", f"{STACK.container_prefix}-", "labhub/hub:latest"]
    assert "127.0.0.1:9101/metrics" in sampler_spec["Healthcheck"]["Test"][-1]  # its own, not the hub image's


def test_the_exporter_does_without_jupyterhubs_code():
    """It is a process of its own: DockerSpawner and JupyterHub would double its memory."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, labhub.exporter; print(sorted(m for m in sys.modules "
                             "if m.split('.')[0] in ('dockerspawner', 'jupyterhub')))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_page_shows_names_from_the_metrics_as_text():
    hostile = 'x"><script>alert(1)</script>'
    page = dashboard.TEMPLATES.get_template("monitoring.html").render(
        charts=[], spans=dashboard.SPANS, span="6h", hub="/hub/home", user="admin",
        alerts=[{"labels": {"alertname": "HomeAtQuota"}, "activeAt": "2026-12-06T10:00:00.5Z",
                 "annotations": {"summary": f"{hostile}'s home is at its quota", "action": "clean up"}}],
        holders=[{"gpu": "0", "user": hostile, "server": ""}])
    assert "<script>" not in page and page.count("&lt;script&gt;") == 2
    assert "2026-12-06 10:00" in page and '<a href="?span=6h" class="chosen" aria-current="page">6h</a>' in page
