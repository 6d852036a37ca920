"""The routing proxy as its own service (labhub.chp), and what docker-compose.yml must agree on
with it: a name, a path or a format written in two files is checked here to be the same."""

import re
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from labhub import chp, network, proxy, settings

from contexts import hub_context

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_hub_drives_the_chp_service_through_its_socket_with_its_token(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("f00d\n")
    monkeypatch.setattr(chp, "TOKEN_FILE", token)
    c = Config()
    chp.configure(c, hub_context())
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http+unix://%2Frun%2Flabhub-proxy%2Fapi.sock"
    assert c.ConfigurableHTTPProxy.auth_token == "f00d"
    assert c.JupyterHub.hub_connect_ip == "hub-front"


def test_hub_direct_mode_runs_chp_inside_the_hub_with_its_api_on_loopback():
    c = Config()
    chp.configure(c, hub_context(settings.load({"LABHUB_HUB_SSL": "true"})))
    assert "should_start" not in c.ConfigurableHTTPProxy
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.JupyterHub.hub_connect_ip == "127.0.0.1"


def test_compose_gives_chp_the_hub_and_the_socket_where_the_hub_looks():
    hub, proxy_service = SERVICES["hub"], SERVICES[chp.SERVICE]
    assert hub["networks"]["default"]["aliases"] == [chp.HUB_FRONT]
    start = proxy_service["command"][-1]
    assert f"--default-target http://{chp.HUB_FRONT}:{network.HUB_PORT}" in start
    assert f"--api-socket {chp.API_SOCKET}" in start and f"cd {chp.API_DIR}" in start
    assert f"proxy-api:{chp.API_DIR}:ro" in hub["volumes"] and f"proxy-api:{chp.API_DIR}" in proxy_service["volumes"]
    # It binds the address its own service name has on the compose network, and nothing else.
    assert f"getent ahostsv4 {chp.SERVICE} " in start


def test_neither_traefik_nor_chp_depends_on_what_upgrades_recreate():
    """Compose restarts a service whenever one it depends on is recreated: the hub, setup,
    proxy-config and the restart page are, with every upgrade (a new hub image) or settings change."""
    assert "depends_on" not in SERVICES["proxy"] and "depends_on" not in SERVICES[chp.SERVICE]


@pytest.mark.parametrize("env", [{}, {"LABHUB_TLS": "ACME", "LABHUB_HOSTNAME": "Lab.Example.EDU",
                                     "LABHUB_ACME_EMAIL": "it@example.edu", "LABHUB_ACME_CHALLENGE": "TLS-ALPN-01"},
                                  {"LABHUB_TLS": "acme", "LABHUB_HOSTNAME": "lab.example.edu", "LABHUB_ACME_EMAIL": "it@example.edu",
                                   "LABHUB_ACME_CHALLENGE": "dns-01", "LABHUB_ACME_DNS_PROVIDER": "Cloudflare",
                                   "LABHUB_USER_SUBDOMAINS": "True"}])
def test_traefik_waits_for_the_static_configuration_of_its_own_settings(env):
    """Traefik's start compares what proxy-config published with its own settings: the same line,
    however the admin wrote the values."""
    start = SERVICES["proxy"]["entrypoint"][-1]
    template = re.search(r'echo "([^"]*)" \| tr A-Z a-z', start)[1]
    environment = SERVICES["proxy"]["environment"]

    def value(variable):  # what compose hands Traefik: .env's value, else the compose default
        return env.get(variable) or re.fullmatch(r"\$\{\w+:-(.*)\}", environment[variable])[1]

    traefiks = re.sub(r"\$\$(LABHUB_\w+)", lambda m: value(m[1]), template).lower()
    assert traefiks == proxy.static_fingerprint(settings.load(env))


def test_only_traefik_gets_the_dns_providers_credentials():
    """secret/acme-dns.env (LABHUB_ACME_CHALLENGE=dns-01), where labhub setup looks for it."""
    env_file = {"path": f"secret/{settings.ACME_DNS_ENV}", "required": False}
    assert SERVICES["proxy"]["env_file"] == [env_file]
    assert not [name for name, service in SERVICES.items() if name != "proxy" and env_file in service.get("env_file", [])]
