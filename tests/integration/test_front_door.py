"""Traefik in front of the hub: HTTPS with the generated certificate, HTTP redirected."""

import contextlib
import json
import time

import requests

import harness


def test_compose_files_are_valid():
    for file in ("docker-compose.yml", "docker-compose.jlabs.yml"):
        harness.run("docker", "compose", "-f", file, "config", "-q", cwd=harness.REPO)


def test_every_service_is_healthy_or_done(stack):
    states = {}
    for line in stack.compose("ps", "-a", "--format", "json").stdout.splitlines():
        entries = json.loads(line)
        for c in entries if isinstance(entries, list) else [entries]:
            states[c["Service"]] = (c["State"], c.get("Health", ""), c.get("ExitCode"))
    assert states["hub"][:2] == ("running", "healthy")
    assert states["proxy"][:2] == ("running", "healthy")
    assert states["setup"][0] == "exited" and states["setup"][2] == 0
    assert states["jupyterlab-base"][0] == "exited" and states["jupyterlab-base"][2] == 0


def test_http_is_permanently_redirected_to_https(stack):
    r = requests.get(stack.http_url + "/hub/login", allow_redirects=False)
    assert r.status_code in (301, 308)
    assert r.headers["Location"] == stack.url + "/hub/login"


def test_login_page_is_served_with_the_generated_certificate(stack):
    session = requests.Session()
    session.trust_env = False
    r = session.get(stack.url + "/hub/login", verify=stack.ca_file)
    assert r.status_code == 200
    assert 'name="password"' in r.text
    assert int(r.headers["Strict-Transport-Security"].split("max-age=")[1].split(";")[0]) >= 15552000


def login_page(stack) -> str:
    session = requests.Session()
    session.trust_env = False
    return session.get(stack.url + "/hub/login", verify=stack.ca_file).text


@contextlib.contextmanager
def written(stack, files: dict, restart=("hub",)):
    """These site files written for the block; afterwards removed, and `restart` restarted."""
    for path, text in files.items():
        path.write_text(text)
    try:
        yield
    finally:
        for path in files:
            path.unlink()
        if "proxy" in restart:
            stack.wait_until_published("traefik.toml", 'level = "INFO"')
        stack.compose("restart", *restart)
        stack.up()


def test_site_additions_and_copies_are_used(stack):
    """The admin's jupyterhub_config.d files add to LabHub's hub config, in name order; their
    traefik.toml wins over the template."""
    context, proxy = stack.dir / "jupyterhub/context", stack.dir / "reverse-proxy"
    site_dir = context / "jupyterhub_config.d"
    files = {site_dir / "10-notice.py": (site_dir / "site.py.template").read_text()
             + 'c.JupyterHub.template_vars = {"announcement": "Maintenance on Thursday"}\n',
             site_dir / "20-notice.py": 'c.JupyterHub.template_vars = {"announcement": "Maintenance on Friday"}\n',
             proxy / "traefik.toml": (proxy / "traefik.toml.template").read_text().replace('level = "INFO"', 'level = "DEBUG"')}
    with written(stack, files, restart=("hub", "proxy")):
        stack.wait_until_published("traefik.toml", 'level = "DEBUG"')
        stack.compose("restart", "hub", "proxy")
        stack.up()
        assert "Maintenance on Friday" in login_page(stack)
        assert "labhub: site config /srv/jupyterhub/context/jupyterhub_config.d/20-notice.py" in stack.service_log("hub")
        assert "DBG" in stack.service_log("proxy")


def test_a_copy_of_the_former_hub_config_template_keeps_working(stack):
    """Sites that copied the whole former jupyterhub_config.py.template keep their own lines; the
    template's own (old wiring) are LabHub's now, and the hub's log says where the lines go."""
    former = (harness.REPO / "jupyterhub/labhub/former_template.txt").read_text()
    copy = stack.dir / "jupyterhub/context/jupyterhub_config.py"
    with written(stack, {copy: former + 'c.JupyterHub.template_vars = {"announcement": "Kept from the old copy"}\n'}):
        stack.compose("restart", "hub")
        stack.up()
        assert "Kept from the old copy" in login_page(stack)
        assert "a copy of the former hub config template" in stack.service_log("hub")
        assert "move them into jupyterhub/context/jupyterhub_config.d/site.py" in stack.service_log("hub")


def test_a_broken_site_file_stops_the_hub_with_one_line_naming_it(stack):
    site = stack.dir / "jupyterhub/context/jupyterhub_config.d/50-broken.py"
    with written(stack, {site: "c.Spawner.start_timeout = 300\nc.Spawner.cmd = command_nobody_defined\n"}):
        stack.compose("restart", "hub")
        deadline = time.monotonic() + 60
        while "labhub: error: jupyterhub/context/jupyterhub_config.d/50-broken.py" not in (log := stack.service_log("hub")):
            assert time.monotonic() < deadline, log[-2000:]
            time.sleep(1)
        after = log.rsplit("labhub: site config /srv/jupyterhub/context/jupyterhub_config.d/50-broken.py", 1)[-1]
        assert "labhub: error: jupyterhub/context/jupyterhub_config.d/50-broken.py: line 2: NameError: name " \
               "'command_nobody_defined' is not defined; fix it, or remove the file" in after, log[-2000:]
        assert "Traceback" not in after, after
