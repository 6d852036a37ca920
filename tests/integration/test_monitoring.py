"""Monitoring (COMPOSE_PROFILES=monitoring) on a deployment of its own: a running server's metrics
reach Prometheus, a process killed for memory is counted, the admins' page plots them in Chromium
and refuses everyone else, a filled file system fires its alert to a webhook (also while another
one's fires), `./labhub alert-test` reaches the webhook and a mail server (both over TLS with
certificates of the site's own CA, the mail with a login), and no user server reaches any part of
the monitoring. (The alert rules themselves: monitoring/alerts.test.yml, run here with promtool;
the configuration the settings make: tests/unit/test_monitoring.py.)"""

import ast
import json
import os
import ssl
import subprocess
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
import websocket
from playwright.sync_api import sync_playwright

from labhub import dashboard

import filesystems
import harness
import pki

MONITORING_SERVICES = {"prometheus": 9090, "alertmanager": 9093, "node-exporter": 9100, "blackbox": 9115,
                       "monitoring-exporter": 9101}
ALERT_EMAIL = "admins@lab.example"
SMTP_USER, SMTP_PASSWORD = "labhub-alerts", "mail-Password-7c1e"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class Receiver(ThreadingHTTPServer):
    """A webhook receiver, as a chat tool's, over HTTPS with a certificate of the lab's own CA:
    keeps every alert Alertmanager posts."""

    def __init__(self, address: str, tls: ssl.SSLContext):
        self.alerts: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                self.alerts += [{**alert, "receiver_status": body["status"]} for alert in body["alerts"]]
                handler.send_response(200)
                handler.end_headers()

            def log_message(handler, *args):
                pass

        super().__init__((address, 0), Handler)
        self.socket = tls.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, alertname: str, timeout: float, **labels) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.alerts:
                if alert["labels"].get("alertname") == alertname and alert["status"] == "firing" and \
                        all(alert["labels"].get(k) == v for k, v in labels.items()):
                    return alert
            time.sleep(2)
        raise AssertionError(f"no {alertname} {labels} within {timeout} s; received {self.alerts}")


class MailServer(Controller):
    """An institution's mail server (aiosmtpd): STARTTLS with a certificate of its own CA, then a
    login, both required; keeps every message Alertmanager sends, with the login it came with."""

    def __init__(self, address: str, tls: ssl.SSLContext):
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.logins: list[str] = []

        class Handler:
            async def handle_DATA(handler, server, session, envelope):
                assert session.ssl is not None and session.authenticated  # aiosmtpd refuses before, too
                self.logins.append(session.auth_data)
                self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, login):
            good = (login.login, login.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
            return AuthResult(success=good, handled=False, auth_data=login.login.decode() if good else None)

        # AUTH PLAIN, which mail servers offer first: aiosmtpd's LOGIN asks "User Name", not the
        # "Username:" of mail servers, which Alertmanager (and others) expect.
        super().__init__(Handler(), hostname=address, port=harness.free_ports()[0], tls_context=tls,
                         require_starttls=True, auth_required=True, authenticator=authenticator,
                         auth_exclude_mechanism=["LOGIN"])
        self.start()

    def wait_for(self, subject_part: str, timeout: float) -> tuple[list[str], EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for to, message in self.messages:
                if subject_part in message["Subject"]:
                    return to, message
            time.sleep(2)
        raise AssertionError(f"no mail about {subject_part} within {timeout} s; received "
                             f"{[m['Subject'] for _, m in self.messages]}")


def fill(mount_point) -> None:
    free = os.statvfs(mount_point)
    subprocess.run(["fallocate", "-l", str(free.f_bavail * free.f_frsize - 2**20), str(mount_point / "filler")],
                   check=True)
    free = os.statvfs(mount_point)
    assert 1 - free.f_bavail / free.f_blocks > 0.9


@pytest.fixture(scope="module")
def disks():
    """Two small file systems of the host's, mounted before the monitoring starts (node-exporter
    sees the host's mounts as they were at its start). The first is full from the start, as a
    lab's disk may be: its alert is firing when the second fills."""
    with filesystems.loop_mounted("monitoring-disk-full", ["mkfs.ext4", "-q"], size=32 * 2**20) as full, \
            filesystems.loop_mounted("monitoring-disk", ["mkfs.ext4", "-q"], size=32 * 2**20) as disk:
        fill(full)
        yield full, disk


@pytest.fixture(scope="module")
def lab(disks, artifacts, tmp_path_factory):
    deployment = harness.Deployment("labhubmon", harness.free_ports())
    try:
        # Small servers, so that a kernel can be killed for memory.
        settings = {"COMPOSE_PROFILES": "monitoring", "mem_limit": "512M"}
        deployment.set_env(**settings)
        result = deployment.up(check=False)
        assert result.returncode == 0, result.stdout[-3000:] + deployment.compose("logs", "--tail", "40", check=False).stdout
        # The receiver listens where the monitoring network meets the host; a new webhook URL
        # recreates Alertmanager with it (the setup step writes its configuration).
        gateway = deployment.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                                    f"{deployment.project}_monitoring")
        # Both with certificates of the institution's own CA, which the admin puts in
        # ca-certificates/: read at the next up, no image rebuilt.
        ca_cert, ca_key = pki.certificate_authority("University IT CA")
        (deployment.dir / "ca-certificates" / "university-it.crt").write_bytes(pki.pem(ca_cert))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        receivers_pem = tmp_path_factory.mktemp("receivers") / "receivers.pem"
        receivers_pem.write_bytes(b"".join(pki.server_certificate([gateway], ca_cert, ca_key)))
        tls.load_cert_chain(receivers_pem)
        deployment.receiver, deployment.mail = Receiver(gateway, tls), MailServer(gateway, tls)
        (deployment.dir / "secret" / "smtp-password").write_text(SMTP_PASSWORD + "\n")
        os.chmod(deployment.dir / "secret" / "smtp-password", 0o600)
        deployment.set_env(**settings, alert_webhook=f"https://{gateway}:{deployment.receiver.server_address[1]}/alerts",
                           alert_email=ALERT_EMAIL, smtp_server=f"{gateway}:{deployment.mail.port}",
                           smtp_from="labhub@lab.example", smtp_user=SMTP_USER)
        deployment.up(build=False)  # the images as built, without that CA
        yield deployment
    finally:
        (artifacts / "monitoring.log").write_text(
            deployment.compose("--profile", "monitoring", "logs", "--no-color", check=False).stdout)
        deployment.destroy()
        if "receiver" in vars(deployment):
            deployment.receiver.shutdown()
            deployment.mail.stop()


@pytest.fixture(scope="module")
def admin(lab) -> harness.HubClient:
    return harness.logged_in_admin(lab)


@pytest.fixture(scope="module")
def mona(lab, admin) -> harness.HubClient:
    user = harness.native_user(lab, admin, "mona")
    user.start_server()
    return user


def test_alert_rules_and_the_configuration_pass_promtool_and_amtool(lab):
    rules = harness.run("docker", "run", "--rm", "-v", f"{lab.dir / 'monitoring'}:/rules:ro", "-w", "/rules",
                        "labhub/monitoring:latest", "promtool", "test", "rules", "alerts.test.yml", check=False)
    assert rules.returncode == 0, rules.stdout
    checked = lab.compose("exec", "-T", "prometheus", "promtool", "check", "config",
                          "/etc/labhub-monitoring/prometheus.yml", check=False)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout
    checked = lab.compose("exec", "-T", "alertmanager", "amtool", "check-config",
                          "/etc/labhub-monitoring/site/alertmanager.yml", check=False)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout
    # The configuration it runs with has the webhook set after its first start.
    config = json.loads(lab.compose("exec", "-T", "alertmanager", "cat", "/etc/labhub-monitoring/site/alertmanager.yml").stdout)
    assert config["receivers"][0]["webhook_configs"][0]["url"].endswith("/alerts")


def test_every_target_is_up(lab):
    deadline = time.monotonic() + 60
    while True:
        down = [line for line in lab.prometheus("up") if not line.split("=>")[1].strip().startswith("1 ")]
        jobs = {line.split('job="')[1].split('"')[0] for line in lab.prometheus("up == 1")}
        if not down and jobs >= {"hub", "node", "labhub", "front-door", "alertmanager", "prometheus"}:
            break
        assert time.monotonic() < deadline, f"targets down: {down}; up: {jobs}"
        time.sleep(3)
    # The front door's certificate, as users get it: LabHub's own, valid for years.
    expiry = float(lab.wait_for_series("probe_ssl_earliest_cert_expiry")[0].split("=>")[1].split()[0])
    assert expiry - time.time() > 300 * 86400


def test_a_running_servers_use_reaches_prometheus(lab, mona):
    memory = lab.wait_for_series('labhub_server_memory_bytes{user="mona"} > 10e6')
    limit = lab.wait_for_series('labhub_server_memory_limit_bytes{user="mona"}')
    assert float(limit[0].split("=>")[1].split()[0]) == 512 * 2**20, limit
    lab.wait_for_series('labhub_server_cpu_seconds_total{user="mona"} > 0')
    info = lab.wait_for_series('labhub_server_info{user="mona"}')
    assert 'image="labhub/jupyterlab-base:latest"' in info[0], info
    lab.wait_for_series('labhub_server_last_activity_timestamp_seconds{user="mona"}')
    lab.wait_for_series('jupyterhub_running_servers{job="hub"} >= 1')
    assert memory


def test_a_process_killed_for_memory_is_counted(lab, mona):
    with pytest.raises((harness.KernelDied, websocket.WebSocketConnectionClosedException)):
        # Touches every page of 900 MiB in a 512 MiB server: the kernel's process is killed.
        mona.execute(mona.start_kernel(), "hog = bytearray(900 * 2**20); hog[::4096] = b'x' * len(hog[::4096])",
                     timeout=120)
    lab.wait_for_series('labhub_server_oom_kills_total{user="mona"} >= 1', timeout=120)


def test_the_admin_page_plots_for_admins_and_refuses_others(lab, admin, mona, artifacts):
    lab.wait_for_series('labhub_server_memory_bytes{user="mona"}')
    # The hub's menu offers it to admins alone.
    link = 'href="/services/monitoring/"'
    assert link in admin.http.get(admin.url("/hub/home"), timeout=60).text
    assert link not in mona.http.get(mona.url("/hub/home"), timeout=60).text
    # Anyone else: mona (a user) is refused; nobody logged in is sent to log in.
    refused = mona.http.get(mona.url("/services/monitoring/"), timeout=60)
    assert refused.status_code == 403, (refused.status_code, refused.url)
    anonymous = harness.HubClient(lab).http.get(lab.url + "/services/monitoring/", timeout=60)
    assert "/hub/login" in anonymous.url
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=CHROMIUM_ARGS + ["--ignore-certificate-errors"])
        try:
            page = chromium.new_context(viewport={"width": 1300, "height": 900}, base_url=lab.url).new_page()
            page.goto("/hub/login")
            page.fill("#username_input", "admin")
            page.fill("#password_input", lab.admin_password())
            page.click("#login_submit")
            page.wait_for_url("**/hub/**")
            page.goto("/services/monitoring/?span=1h")
            charts = page.locator("svg.labhub-chart")
            assert charts.count() == len(dashboard.PANELS) == 12
            memory = page.locator('svg[aria-label="Memory per server"]')
            assert memory.locator("polyline.series").count() >= 1
            assert "mona" in memory.text_content()
            assert page.locator("svg.labhub-chart polyline.series").count() >= 5
            page.screenshot(path=str(artifacts / "monitoring.png"), full_page=True)
        finally:
            chromium.close()


def test_a_full_file_system_fires_its_alert_to_the_webhook_while_another_ones_is_firing(lab, disks):
    full, disk = disks
    # Scraped every 15 s, full for a minute, then grouped for 30 s by Alertmanager.
    lab.receiver.wait_for("FileSystemFull", timeout=240, mountpoint=str(full))
    fill(disk)
    try:
        # Joins the firing group: told at its next interval (a minute), not Alertmanager's five.
        alert = lab.receiver.wait_for("FileSystemFull", timeout=240, mountpoint=str(disk))
        assert "% full" in alert["annotations"]["summary"] and alert["annotations"]["action"]
    finally:
        (disk / "filler").unlink()


def test_alert_test_command_reaches_the_webhook_and_the_mail_server(lab):
    result = lab.compose("run", "--rm", "-T", "admin", "alert-test", check=False)  # what ./labhub runs
    assert result.returncode == 0 and "reaches LABHUB_ALERT_WEBHOOK and LABHUB_ALERT_EMAIL" in result.stdout, result.stdout
    lab.receiver.wait_for("LabHubTest", timeout=90)
    to, message = lab.mail.wait_for("LabHubTest", timeout=90)
    assert to == [ALERT_EMAIL] and message["From"] == "labhub@lab.example", (to, message["From"])
    assert set(lab.mail.logins) == {SMTP_USER}  # over STARTTLS, verified against the site's CA, logged in
    text = message.get_body(("plain", "html")).get_content()
    assert "alerts reach you" in text, text[:2000]


def test_no_user_server_reaches_the_monitoring(lab, mona):
    """By name and at every address each part has: nothing answers a user's server."""
    targets = []
    for service, port in MONITORING_SERVICES.items():
        container = lab.container(service)
        assert container, f"{service} is not running"
        assert lab.docker("port", container) == "", f"{service} publishes a port"
        addresses = lab.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container).split()
        targets += [(service, port)] + [(address, port) for address in addresses]
    # The hub's own address on the monitoring network, where Prometheus reads its metrics.
    hub = lab.docker("inspect", "-f", '{{(index .NetworkSettings.Networks "' + lab.project + '_monitoring").IPAddress}}',
                     lab.container("hub"))
    targets.append((hub, 8081))
    # The control: the hub's API on the server's own network answers the same code.
    targets.append(("hub", 8081))
    code = ("import socket\nreached = []\n"
            f"for host, port in {targets!r}:\n"
            "    try:\n"
            "        socket.create_connection((host, port), timeout=3).close()\n"
            "        reached.append((host, port))\n"
            "    except OSError:\n"
            "        pass\n"
            "reached")
    assert ast.literal_eval(mona.execute(mona.start_kernel(), code, timeout=180)) == [("hub", 8081)]
    # Nor does the server get the engine the exporter reads.
    mounts = lab.docker("inspect", "-f", "{{range .Mounts}}{{.Source}} {{end}}", lab.user_container("mona"))
    assert "docker.sock" not in mounts
