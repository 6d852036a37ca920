"""Traefik's routes to LabHub (labhub.proxy) and the hub's side of them: on one site, or with
LABHUB_USER_SUBDOMAINS each user's servers on a host of their own and the hub's pages on its host alone."""

import re
import tomllib

from traitlets.config import Config

from labhub import hub, proxy, settings

from contexts import hub_context

HOST = "lab.example.edu"


def routers(s) -> dict[str, dict]:
    return tomllib.loads(proxy.routes_config(s))["http"]["routers"]


def matches(rule: str, host: str, path: str) -> bool:
    """Whether a rule of the forms labhub.proxy writes matches a request (Traefik's semantics for them)."""
    expression = rule
    expression = re.sub(r"Host\(`([^`]*)`\)", lambda m: repr(host == m[1]), expression)
    expression = re.sub(r"HostRegexp\(`([^`]*)`\)", lambda m: repr(bool(re.search(m[1], host))), expression)
    expression = re.sub(r"PathRegexp\(`([^`]*)`\)", lambda m: repr(bool(re.search(m[1], path))), expression)
    expression = re.sub(r"PathPrefix\(`([^`]*)`\)", lambda m: repr(path.startswith(m[1])), expression)
    expression = re.sub(r"Path\(`([^`]*)`\)", lambda m: repr(path == m[1]), expression)
    return eval(expression.replace("&&", " and ").replace("||", " or "))


def route(s, host: str, path: str) -> str | None:
    """The router Traefik picks: of those that match, the longest rule (Traefik's default priority)."""
    found = [(len(r["rule"]), name) for name, r in routers(s).items() if matches(r["rule"], host, path)]
    return max(found)[1] if found else None


def test_on_one_site_the_hubs_pages_get_the_restart_page_and_users_files_a_sandbox():
    s = settings.load({"LABHUB_HOSTNAME": HOST})
    assert route(s, HOST, "/hub/login") == "hub" and route(s, "localhost", "/") == "hub"
    assert route(s, HOST, "/user/jo/lab") == "servers"
    assert route(s, HOST, "/user/jo/kernelspecs/k/x.html") == "user-resources"
    assert route(s, HOST, "/user/jo/project/kernelspecs/k/logo-64x64.png") == "user-resources"
    for name, router in routers(s).items():
        assert router["service"] == "chp" and router["middlewares"][0] == "security-headers"
    assert routers(s)["hub"]["middlewares"] == ["security-headers", "hub-restarting"]
    assert routers(s)["user-resources"]["middlewares"] == ["security-headers", "user-content-sandbox"]


def test_with_user_subdomains_a_users_host_serves_their_servers_and_nothing_of_the_hub():
    s = settings.load({"LABHUB_HOSTNAME": HOST, "LABHUB_USER_SUBDOMAINS": "true"})
    user = f"jo-2danne.{HOST}"
    assert route(s, HOST, "/hub/login") == "hub" and route(s, HOST, "/") == "hub"
    assert route(s, HOST, "/user/jo-anne/lab") == "hub"  # the hub sends it on to the user's host
    assert route(s, user, "/user/jo-anne/lab") == "servers"
    assert route(s, user, "/user/jo-anne/kernelspecs/k/x.html") == "user-resources"
    for path in ("/hub/login", "/hub/api/user", "/", "/hub", "/favicon.ico"):
        assert route(s, user, path) is None, path  # Traefik answers 404
    for host in (f"a.b.{HOST}", f"x{HOST}", "localhost", f"{HOST}.evil.example"):
        assert route(s, host, "/user/jo/lab") is None, host


def test_the_hub_puts_users_on_their_hosts_with_cookies_no_user_site_can_set():
    c = Config()
    hub.configure_hub(c, hub_context(settings.load({"LABHUB_HOSTNAME": HOST, "LABHUB_USER_SUBDOMAINS": "true",
                                                    "LABHUB_HTTPS_PORT": "8443"})))
    assert c.JupyterHub.subdomain_host == f"https://{HOST}:8443"
    assert c.JupyterHub.cookie_host_prefix_enabled is True
    c = Config()
    hub.configure_hub(c, hub_context())
    assert c.JupyterHub.subdomain_host == "" and c.JupyterHub.cookie_host_prefix_enabled is False
