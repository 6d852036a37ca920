import os
from types import SimpleNamespace

import pytest

from labhub import checks, images, settings, storage
from labhub.stack import Stack

STACK = Stack(project="lab", hub_alias="hub", hub_image="sha256:hub", hub_image_name="labhub/hub:latest",
              context_dir="/lab/jupyterhub/context")


class FakeEngine:
    """What the engine checks ask of Docker: its version and info, images, and containers run."""

    def __init__(self, api="1.41", flavors=None, versions=None):
        self.api_version, self.flavors = api, flavors if flavors is not None else {"base": "labhub/jupyterlab-base:latest"}
        self.versions = versions or {}
        # The image list (GET /images/json), as images.built_flavors reads it.
        self.api = SimpleNamespace(images=lambda filters: [
            {"RepoTags": [ref], "Labels": {images.FLAVOR_LABEL: f}, "Created": 0} for f, ref in self.flavors.items()])
        self.containers = SimpleNamespace(run=self.run)

    def version(self):
        return {"ApiVersion": self.api_version}

    def info(self):
        return {"Runtimes": {"runc": {}}, "MemTotal": 8 * 2**30, "NCPU": 4}

    def run(self, image, command, **kwargs):
        return (self.versions.get(image, checks.importlib.metadata.version("jupyterhub")) + "\n").encode()


def test_every_unknown_setting_is_its_own_line_and_the_rest_is_still_checked():
    s, problems = checks.load_settings({"LABHUB_HOSTNAMES": "x", "LABHUB_AUTHS": "y", "LABHUB_AUTH": "ldap"})
    assert s is not None and s.auth == "ldap"
    assert [p.split(":")[0] for p in problems] == ["LABHUB_AUTHS", "LABHUB_HOSTNAMES"]


def test_config_collects_setting_and_login_problems(tmp_path):
    s, problems = checks.config({"LABHUB_TYPO": "1", "LABHUB_AUTH": "shared-password"}, tmp_path)
    assert [p.split(":")[0] for p in problems] == ["LABHUB_TYPO", "secret/shared-password"]


def test_secrets_readable_by_others_are_named_with_the_fix(tmp_path):
    for name, mode in (("tls/tls.key", 0o644), ("tls/tls.crt", 0o644), ("oauth.env", 0o640), ("shared-password", 0o600)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
        os.chmod(tmp_path / name, mode)
    os.chmod(tmp_path, 0o777)
    problems = checks.secret_permissions(tmp_path)
    assert problems[0] == "secret/: others may write in it; run `chmod go-w secret`"
    assert [p.split(":")[0] for p in problems[1:]] == ["secret/oauth.env", "secret/tls/tls.key"]
    assert problems[2].endswith("run `chmod 600 secret/tls/tls.key`")


def test_site_config_files_and_the_traefik_copy_must_parse(tmp_path):
    (tmp_path / "jupyterhub/context/jupyterhub_config.d").mkdir(parents=True)
    (tmp_path / "reverse-proxy").mkdir()
    assert checks.site_files(tmp_path) == []
    (tmp_path / "jupyterhub/context/jupyterhub_config.d/site.py").write_text("c = get_config()\n")
    (tmp_path / "jupyterhub/context/jupyterhub_config.d/README.md").write_text("not python (\n")
    (tmp_path / "reverse-proxy/traefik.toml").write_text("[ping]\n")
    assert checks.site_files(tmp_path) == []
    (tmp_path / "jupyterhub/context/jupyterhub_config.d/site.py").write_text("if True\n")
    assert checks.site_files(tmp_path) == [
        "jupyterhub/context/jupyterhub_config.d/site.py: line 1: expected ':'; fix it, or remove the file"]


def test_a_copy_of_the_former_template_is_named_with_its_own_lines_and_where_they_go(tmp_path):
    (tmp_path / "jupyterhub/context").mkdir(parents=True)
    copy = tmp_path / "jupyterhub/context/jupyterhub_config.py"
    copy.write_text("c = get_config()\nc.JupyterHub.cleanup_servers = False\nc.Spawner.start_timeout = 300\n")
    [problem] = checks.site_files(tmp_path)
    assert problem.startswith("jupyterhub/context/jupyterhub_config.py: a copy of the former hub config template;")
    assert "(line 3)" in problem and "move them into jupyterhub/context/jupyterhub_config.d/site.py" in problem
    copy.write_text("if True\n")
    [problem] = checks.site_files(tmp_path)
    assert problem.startswith("jupyterhub/context/jupyterhub_config.py: line 1: expected ':'")


def test_an_engine_too_old_is_the_one_problem_named():
    problems = checks.probed_engine_problems(FakeEngine(api="1.40"), STACK, settings.load({}))
    assert problems == ["Docker engine: API 1.40 is older than 1.41 (Docker Engine 20.10), which LabHub needs; upgrade Docker"]


def test_a_good_engine_has_no_problems():
    assert checks.probed_engine_problems(FakeEngine(), STACK, settings.load({})) == []


def test_a_user_image_with_another_jupyterhub_is_named():
    engine = FakeEngine(flavors={"base": "labhub/jupyterlab-base:latest", "old": "lab/old:1"}, versions={"lab/old:1": "5.4.3"})
    problems = checks.probed_engine_problems(engine, STACK, settings.load({}))
    assert len(problems) == 1 and problems[0].startswith("image lab/old:1: has jupyterhub 5.4.3, the hub ")
    assert "rebuild it" in problems[0]


def test_missing_default_image_is_named_with_the_build_command():
    problems = checks.probed_engine_problems(FakeEngine(flavors={}), STACK, settings.load({}))
    assert len(problems) == 1 and "docker compose -f docker-compose.jlabs.yml build" in problems[0]


@pytest.mark.parametrize("mode, ok", [(0o2770, True), (0o2775, True), (0o755, False), (0o770, False)])
def test_shared_folder_needs_setgid_and_group_write(monkeypatch, mode, ok):
    monkeypatch.setattr(storage, "probe_host_folders",
                        lambda engine, stack, s, also=(): {"/data/shared": storage.HostFolder(1234, mode)})
    problems = checks.probed_engine_problems(FakeEngine(), STACK, settings.load({"LABHUB_SHARED_DIR": "/data/shared"}))
    assert (problems == []) == ok
    if not ok:
        assert problems[0].startswith("LABHUB_SHARED_DIR: /data/shared has mode") and "./host-setup shared-folder" in problems[0]


# Traefik's log line when its ACME client cannot set the DNS provider up (colours and all).
TRAEFIK_ACME_ERROR = ("\x1b[90m2026-12-05T08:29:17Z\x1b[0m \x1b[31mERR\x1b[0m \x1b[1mUnable to obtain ACME certificate for "
                      "domains\x1b[0m \x1b[36merror=\x1b[0m\x1b[31m\x1b[1m\"cannot get ACME client {}\"\x1b[0m\x1b[0m "
                      "\x1b[36mACME CA=\x1b[0mhttps://pebble:14000/dir \x1b[36mdomains=\x1b[0m[\"lab.test\",\"*.lab.test\"] "
                      "\x1b[36mproviderName=\x1b[0macme.acme\n")


def test_what_lego_refused_in_traefiks_log_is_one_line_naming_the_setting_or_secret():
    def dns_01(provider):
        return settings.load({"LABHUB_TLS": "acme", "LABHUB_HOSTNAME": "lab.test", "LABHUB_ACME_EMAIL": "it@lab.test",
                              "LABHUB_ACME_CHALLENGE": "dns-01", "LABHUB_ACME_DNS_PROVIDER": provider})

    unknown = TRAEFIK_ACME_ERROR.format("unrecognized DNS provider: cloudflair") * 2  # at every attempt
    assert checks.lego_refusals(unknown, dns_01("cloudflair")) == [
        "LABHUB_ACME_DNS_PROVIDER: Traefik's ACME client (lego) knows no DNS provider 'cloudflair'; set its code "
        "from https://go-acme.github.io/lego/dns/ (in .env, see .env.template)"]
    missing = TRAEFIK_ACME_ERROR.format("cloudflare: some credentials information are missing: CF_API_EMAIL,CF_API_KEY or "
                                        "some credentials information are missing: CF_DNS_API_TOKEN,CF_ZONE_API_TOKEN")
    assert checks.lego_refusals(missing, dns_01("cloudflare")) == [
        "secret/acme-dns.env: lego says of cloudflare: some credentials information are missing: CF_API_EMAIL,CF_API_KEY "
        "or some credentials information are missing: CF_DNS_API_TOKEN,CF_ZONE_API_TOKEN; add them as "
        "https://go-acme.github.io/lego/dns/cloudflare/ names them, then `docker compose up -d`"]
    # Nothing refused, or refused of another provider than the one set now.
    assert checks.lego_refusals(unknown + missing, dns_01("route53")) == []
    assert checks.lego_refusals(TRAEFIK_ACME_ERROR.format("get directory at 'https://pebble:14000/dir': timeout"),
                                dns_01("cloudflare")) == []
