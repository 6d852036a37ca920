"""Traefik in front of the hub: HTTPS with the generated certificate, HTTP redirected."""

import json

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


def test_site_copies_win_over_the_templates(stack):
    """An admin's jupyterhub_config.py and traefik.toml are used once they exist."""
    context, proxy = stack.dir / "jupyterhub/context", stack.dir / "reverse-proxy"
    hub_site, proxy_site = context / "jupyterhub_config.py", proxy / "traefik.toml"
    hub_site.write_text((context / "jupyterhub_config.py.template").read_text()
                        + '\nc.JupyterHub.template_vars = {"announcement": "Maintenance on Friday"}\n')
    proxy_site.write_text((proxy / "traefik.toml.template").read_text().replace('level = "INFO"', 'level = "DEBUG"'))
    try:
        stack.wait_until_published("traefik.toml", 'level = "DEBUG"')
        stack.compose("restart", "hub", "proxy")
        stack.up()
        session = requests.Session()
        session.trust_env = False
        assert "Maintenance on Friday" in session.get(stack.url + "/hub/login", verify=stack.ca_file).text
        assert "labhub hub: config /srv/jupyterhub/context/jupyterhub_config.py\n" in stack.service_log("hub")
        assert "DBG" in stack.service_log("proxy")
    finally:
        hub_site.unlink()
        proxy_site.unlink()
        stack.wait_until_published("traefik.toml", 'level = "INFO"')
        stack.compose("restart", "hub", "proxy")
        stack.up()
