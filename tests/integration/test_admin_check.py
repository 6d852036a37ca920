"""`labhub check` catches each planted mistake with one line naming the setting or file and the
fix, and passes on a good setup. One deployment folder for all (nothing runs but the admin
command), reset between mistakes."""

import datetime
import os
import shutil
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import harness
import pki


@pytest.fixture(scope="module")
def site():
    # Ports nobody holds: the check tests the host's ports too.
    deployment = harness.Deployment("check", ports=harness.free_ports())
    try:
        yield deployment
    finally:
        deployment.destroy()


@pytest.fixture
def fresh(site):
    """The deployment as cloned: no .env beyond its ports, nothing in secret/, no site copies."""
    site.set_env()
    yield site
    site.set_env()
    for path in site.secret.iterdir():
        if path.name != "README.md":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for rel in ("jupyterhub/context/jupyterhub_config.d/site.py", "reverse-proxy/traefik.toml"):
        (site.dir / rel).unlink(missing_ok=True)
    for extra_ca in (site.dir / "ca-certificates").glob("*.crt"):
        extra_ca.unlink()


def check(deployment) -> tuple[int, list[str]]:
    result = deployment.compose("run", "--rm", "-T", "admin", "check", check=False)
    return result.returncode, [line for line in result.stdout.splitlines() if not line.startswith((" Network", " Volume"))]


def caught(deployment, *parts) -> str:
    """Runs the check; the one line holding all parts (the setting or file, and the fix)."""
    code, lines = check(deployment)
    assert code == 1, lines
    found = [line for line in lines if all(part in line for part in parts)]
    assert len(found) == 1, lines
    return found[0]


def certificate(path, hostname="localhost", days=30, key=None) -> None:
    """A certificate (self-signed, as the lab's own) and key in secret/tls/."""
    cert_key, now = ec.generate_private_key(ec.SECP256R1()), datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(cert_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=60)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(cert_key, hashes.SHA256()))
    (path / "tls").mkdir(parents=True, exist_ok=True)
    (path / "tls/tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key = key or cert_key
    (path / "tls/tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    os.chmod(path / "tls/tls.key", 0o600)


def secret_file(deployment, name: str, text: str, mode=0o600) -> None:
    path = deployment.secret / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def test_a_good_setup_passes_through_the_host_command(fresh):
    env = {**os.environ, "COMPOSE_PROJECT_NAME": fresh.project}
    result = harness.run(str(fresh.dir / "labhub"), "check", cwd="/", check=False, env=env)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("labhub check: no problems found"), result.stdout


def test_misspelt_setting(fresh):
    fresh.set_env(hostnames="lab.example.edu")
    caught(fresh, "LABHUB_HOSTNAMES: unknown setting", "or remove it")


def test_mistyped_value(fresh):
    fresh.set_env(auth="kerberos")
    caught(fresh, "LABHUB_AUTH: unknown login method 'kerberos'", "set it to one of native")


def test_several_mistakes_are_each_one_line(fresh):
    fresh.set_env(hostnames="x", idle_timeout="soon")
    code, lines = check(fresh)
    assert code == 1 and lines[-1] == "labhub check: 2 problem(s)", lines
    assert lines[0].startswith("LABHUB_HOSTNAMES: unknown setting") and lines[1].startswith("LABHUB_IDLE_TIMEOUT:"), lines


def test_per_user_ids_without_home_folders(fresh):
    fresh.set_env(user_ids="per-user")
    caught(fresh, "LABHUB_USER_IDS:", "set LABHUB_HOME_ROOT too")


def test_missing_home_root(fresh):
    fresh.set_env(home_root="/srv/no-such-homes")
    caught(fresh, "LABHUB_HOME_ROOT: host folder /srv/no-such-homes does not exist", "create it")


def test_swarm_mode_on_an_engine_that_is_no_swarm_manager(fresh):
    fresh.set_env(swarm="true", home_root="/tmp")
    caught(fresh, "LABHUB_SWARM: true, but the hub's Docker engine is not a swarm manager", "run `docker swarm init`")


def test_missing_data_folder(fresh):
    fresh.set_env(data_mounts="/srv/no-such-data:/home/jovyan/data:ro")
    caught(fresh, "LABHUB_DATA_MOUNTS: host folder /srv/no-such-data does not exist", "create it")


def test_shared_folder_without_group_permissions(fresh, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    fresh.set_env(shared_dir=shared)
    caught(fresh, f"LABHUB_SHARED_DIR: {shared} has mode 755", f"./host-setup shared-folder {shared}")


def test_shared_password_missing(fresh):
    fresh.set_env(auth="shared-password")
    caught(fresh, "secret/shared-password: missing", "put the password users share there")


def test_github_without_anyone_allowed(fresh):
    fresh.set_env(auth="github")
    secret_file(fresh, "oauth.env", "OAUTH_CLIENT_ID=x\nOAUTH_CLIENT_SECRET=y\n")
    caught(fresh, "LABHUB_GITHUB_ORGS: nobody is allowed", "set LABHUB_GITHUB_ORGS")


def test_oauth_client_secret_missing(fresh):
    fresh.set_env(auth="oidc", oidc_issuer="https://login.example.edu", oidc_allowed_groups="lab")
    secret_file(fresh, "oauth.env", "OAUTH_CLIENT_ID=x\n")
    caught(fresh, "secret/oauth.env: OAUTH_CLIENT_SECRET is missing", "add OAUTH_CLIENT_SECRET=")


def test_ldap_template_without_user_name(fresh):
    fresh.set_env(auth="ldap", ldap_server="ldap.example.edu", ldap_allowed_groups="cn=lab,dc=example",
                  ldap_bind_dn_template="uid=someone,dc=example")
    caught(fresh, "LABHUB_LDAP_BIND_DN_TEMPLATE: has no {username}", "write {username} where the user name goes")


def test_password_readable_by_others(fresh):
    secret_file(fresh, "admin-passwords/admin", "a-long-enough-password\n", mode=0o644)
    caught(fresh, "secret/admin-passwords/admin: readable by others", "chmod 600 secret/admin-passwords/admin")


def test_an_extra_ca_saved_in_der_form(fresh):
    ca, _ = pki.certificate_authority("University CA")
    (fresh.dir / "ca-certificates" / "university.crt").write_bytes(ca.public_bytes(serialization.Encoding.DER))
    caught(fresh, "ca-certificates/university.crt: holds no PEM certificate", "save the CA as PEM")


def test_certificate_and_key_mismatch(fresh):
    certificate(fresh.secret, key=ec.generate_private_key(ec.SECP256R1()))
    caught(fresh, "secret/tls/tls.key: does not match secret/tls/tls.crt", "put the private key that belongs")


def test_expired_certificate(fresh):
    certificate(fresh.secret, days=-1)
    caught(fresh, "secret/tls/tls.crt: expired on", "put the renewed certificate there")


def test_certificate_for_another_host(fresh):
    certificate(fresh.secret, hostname="other.example.edu")
    caught(fresh, "secret/tls/tls.crt: made for other.example.edu, not for LABHUB_HOSTNAME=localhost",
           "set LABHUB_HOSTNAME to a name it covers")


def test_user_subdomains_on_a_name_no_certificate_can_cover(fresh):
    fresh.set_env(user_subdomains="true")
    caught(fresh, "LABHUB_USER_SUBDOMAINS: user servers need names under LABHUB_HOSTNAME, but 'localhost' has none",
           "or lab.localhost on this machine alone")


def test_user_subdomains_without_a_wildcard_dns_record(fresh):
    fresh.set_env(user_subdomains="true", hostname="lab.invalid")
    caught(fresh, "LABHUB_USER_SUBDOMAINS: users' servers are at <user>.lab.invalid, but labhub-check.lab.invalid "
                  "does not resolve", "add a wildcard DNS record *.lab.invalid for the address of lab.invalid")


def test_gpus_insisted_on_without_gpus(fresh):
    fresh.set_env(gpus="on")
    caught(fresh, "LABHUB_GPUS: on, but the Docker engine offers no NVIDIA GPU", "install the NVIDIA driver")


def test_port_taken(fresh):
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        fresh.set_env(https_port=port)
        caught(fresh, f"LABHUB_HTTPS_PORT: port {port} is already taken by another program", "or set another port")


def test_broken_hub_site_file(fresh):
    (fresh.dir / "jupyterhub/context/jupyterhub_config.d/site.py").write_text("c = get_config()\nc.JupyterHub.ip = (\n")
    caught(fresh, "jupyterhub/context/jupyterhub_config.d/site.py: line 2", "fix it, or remove the file")


def test_broken_traefik_config_copy(fresh):
    (fresh.dir / "reverse-proxy/traefik.toml").write_text("[entryPoints\n")
    caught(fresh, "reverse-proxy/traefik.toml:", "or remove the file to use traefik.toml.template")
