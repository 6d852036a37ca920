"""The hub's composition root: JupyterHub's config file (jupyterhub/jupyterhub_config.py, in the
hub image) calls configure(), which sets the hub up from the settings, then loads the site's own
additions (labhub.siteconfig), which win.

Each concern's step has one signature, `configure(c, ctx)`, and takes one context (labhub.context,
made here by make_context: settings, the stack, engine facts probed once, the catalog of flavors).
Values several steps add to (the spawner's volumes, mounts, environment, host config, hooks) go
through labhub.hooks, so the steps' order decides nothing but the order of hooks.
"""

import logging
import os
import threading
from pathlib import Path

import docker

from . import (auth, bootstrap, certs, checks, chp, containers, gpu, guard, images, monitoring, network, probe,
               resources, settings, sharing, spawner, stack, storage)
from .context import HubContext
from .settings import CONTEXT_DIR, DATA_DIR, DATABASE, SECRET_DIR, Settings
from .siteconfig import FORMER_COPY, load_site_files, run_former_copy
from .stack import Stack

log = logging.getLogger("JupyterHub")
TEMPLATES = Path(__file__).parent / "templates"

STEPS = (
    auth.configure,  # who may log in, and how
    spawner.configure,  # DockerSpawner (LABHUB_SWARM: Swarm services), noticing a started server at once
    chp.configure,  # the routes to servers live in the chp service, which outlives hub restarts
    network.configure,  # each server alone on a network of its own with the hub
    guard.configure,  # no private ranges, no swarm node (LABHUB_BLOCK_PRIVATE_NETWORKS)
    containers.configure,  # not root, no capabilities, a process limit (sudo for LABHUB_SUDO_USERS)
    storage.configure,  # homes, the host's data folders, the shared folder, host user ids
    images.configure,  # the built flavors, and the chosen one's image and limits
    gpu.configure,  # device requests only where the engine has GPUs
    resources.configure,  # idle servers stopped after LABHUB_IDLE_TIMEOUT
    sharing.configure,  # who may share their servers (LABHUB_SHARING); invitation links that expire
    bootstrap.configure,  # first-login content from bootstrap.sh
    monitoring.configure,  # COMPOSE_PROFILES=monitoring: the hub's metrics for Prometheus, the admins' page
)


def make_context(engine: docker.DockerClient, stack: Stack, s: Settings, secret_dir: Path, environ) -> HubContext:
    """The hub's context; raises the first SettingError the engine's probes found."""
    facts = probe.engine_facts(engine, stack, s)
    if facts.errors:
        raise facts.errors[0]
    mem_limit, cpu_limit = resources.site_limits(facts, s)
    catalog = images.Catalog(engine, gpus_available=bool(facts.gpus), mem_limit=mem_limit, cpu_limit=cpu_limit)
    return HubContext(settings=s, stack=stack, engine=engine, facts=facts, catalog=catalog,
                      secret_dir=secret_dir, environ=environ)


def configure_hub(c, ctx: HubContext) -> None:
    """The hub's own settings: state, security, hub-direct TLS."""
    # State lives in the hub-data volume; config is mounted read-only and never copied into it.
    c.JupyterHub.db_url = f"sqlite:///{DATABASE}"
    c.JupyterHub.cookie_secret_file = str(DATA_DIR / "jupyterhub_cookie_secret")
    # User servers keep running across hub restarts and upgrades.
    c.JupyterHub.cleanup_servers = False
    # Hub-direct mode (docker-compose.hub-ssl.yml): no Traefik in front, the hub serves TLS itself.
    if ctx.settings.hub_ssl:
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = certs.hub_ssl_files(ctx.secret_dir, DATA_DIR, ctx.settings)
    # Security (README, Security): API tokens live 30 days at most; metrics only with a token.
    # LABHUB_USER_SUBDOMAINS: each user's servers on a site of their own (<user>.HOSTNAME), where
    # nothing they serve runs with a visitor's session on the hub's site. The __Host- cookie prefix
    # only then, as JupyterHub advises: it keeps those sites from setting cookies for the hub's, but
    # puts the hub's login cookie on every path of its host, servers' paths included when they share it.
    c.JupyterHub.subdomain_host = ctx.settings.public_url if ctx.settings.user_subdomains else ""
    c.JupyterHub.cookie_host_prefix_enabled = ctx.settings.user_subdomains
    c.JupyterHub.token_expires_in_max_seconds = 30 * 24 * 3600
    c.JupyterHub.authenticate_prometheus = True
    # LabHub's pages (each extends JupyterHub's): the spawn page, which can hold a notice for the
    # user (labhub.spawner); the home page, with the user's shares, and the page where a guest
    # confirms opening a server shared with them (labhub.sharing).
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    # Servers ignore the user's own Jupyter config files (they could undo the hub's settings).
    c.Spawner.disable_user_config = True


def _log_engine_problems(ctx: HubContext) -> None:
    """What `labhub check` finds wrong with the engine (too old, a user image with another
    JupyterHub, a shared folder without its group mode), logged in the background: it starts a
    container per flavor, and nothing in it stops the hub (what does was refused before)."""
    def look():
        for problem in checks.engine_problems(ctx.engine, ctx.stack, ctx.facts, ctx.settings):
            log.warning("labhub check: %s", problem)
        for warning in checks.full_file_systems(ctx.facts):
            log.warning("labhub check: warning: %s", warning)

    threading.Thread(target=look, name="labhub-check", daemon=True).start()


def configure(c, environ=os.environ) -> HubContext:
    """Configures JupyterHub in `c`, then runs the site's additions on it; refuses (SettingError,
    one line) what the hub cannot start with."""
    s = settings.load(environ)
    engine = docker.from_env()
    ctx = make_context(engine, stack.own(engine), s, SECRET_DIR, environ)
    configure_hub(c, ctx)
    for step in STEPS:
        step(c, ctx)
    _log_engine_problems(ctx)
    former_copy = CONTEXT_DIR / FORMER_COPY
    if former_copy.exists():
        run_former_copy(c, ctx, former_copy)
    load_site_files(c)
    return ctx
