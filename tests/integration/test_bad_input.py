"""Bad input stops the stack before anything serves, with one line naming the setting and the fix."""

import pytest
import requests

import harness
import pki

# Each case: how to break a fresh deployment, and the line `labhub setup` must print.
CASES = {
    "cert-without-key": (
        lambda d: (d.secret / "tls").mkdir(parents=True) or (d.secret / "tls/tls.crt").write_text("x"),
        "labhub: error: secret/tls/tls.key: missing while secret/tls/tls.crt is there; add it, "
        "or remove secret/tls/tls.crt to use a self-made certificate"),
    "unreadable-cert": (
        lambda d: (d.secret / "tls").mkdir(parents=True) or [(d.secret / f"tls/tls.{ext}").write_text("not PEM")
                                                           for ext in ("crt", "key")],
        "labhub: error: secret/tls/tls.crt: cannot read a PEM certificate"),
    "unknown-login-method": (
        lambda d: d.set_env(auth="kerberos"),
        "labhub: error: LABHUB_AUTH: unknown login method 'kerberos'; set it to one of native, shared-password, "
        "github, oidc, ldap (in .env, see .env.template)"),
    "shared-password-without-password": (
        lambda d: d.set_env(auth="shared-password"),
        "labhub: error: secret/shared-password: missing, or shorter than 8 characters; "
        "put the password users share there (8 or more characters)"),
    "github-without-restriction": (
        lambda d: [d.set_env(auth="github"),
                   (d.secret / "oauth.env").write_text("OAUTH_CLIENT_ID=x\nOAUTH_CLIENT_SECRET=y\n")],
        "labhub: error: LABHUB_GITHUB_ORGS: nobody is allowed to log in with GitHub"),
    "misspelt-setting": (
        lambda d: d.set_env(hostnames="lab.example.edu"),
        "labhub: error: LABHUB_HOSTNAMES: unknown setting; use one of LABHUB_HOSTNAME,"),
    "expired-certificate": (
        lambda d: pki.lab_certificate(names=("localhost",), days=(-90, -1)).install(d.secret),
        "labhub: error: secret/tls/tls.crt: expired on "),
    "certificate-for-another-host": (
        lambda d: pki.lab_certificate(names=("lab.example.edu",)).install(d.secret),
        "labhub: error: secret/tls/tls.crt: made for lab.example.edu, not for LABHUB_HOSTNAME=localhost, "
        "so browsers refuse it; set LABHUB_HOSTNAME to a name it covers"),
    "key-of-another-certificate": (
        lambda d: [pki.lab_certificate(names=("localhost",)).install(d.secret),
                   (d.secret / "tls/tls.key").write_bytes(pki.key_pem(pki.lab_certificate().key))],
        "labhub: error: secret/tls/tls.key: does not match secret/tls/tls.crt; put the private key"),
    "acme-without-email": (
        lambda d: d.set_env(tls="acme", hostname="lab.example.edu"),
        "labhub: error: LABHUB_ACME_EMAIL: '' is not an e-mail address; set the admin's"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_refuses_to_start_with_one_clear_line(case):
    breaks, expected = CASES[case]
    # Ports of its own: Traefik starts (and waits for a configuration) beside the session's stack.
    deployment = harness.Deployment(f"labhubbad-{case}", harness.free_ports())
    try:
        breaks(deployment)
        result = deployment.up(check=False)
        assert result.returncode != 0, "the stack started despite bad input"

        lines = deployment.service_log("setup").splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(expected), lines[0]

        states = deployment.compose("ps", "-a", "--format", "{{.Service}} {{.State}}").stdout.splitlines()
        assert not [s for s in states if s.split()[0] == "hub" and s.split()[1] == "running"], states
        # Traefik waits for a configuration that proxy-config (after setup) never publishes: the
        # front door serves nothing, not even a certificate.
        processes = harness.docker("top", deployment.container("proxy"), "-eo", "pid,args")
        assert not [p for p in processes.splitlines()[1:] if p.split()[1].endswith("traefik")], processes
        with requests.Session() as front, pytest.raises(requests.exceptions.ConnectionError):
            front.trust_env = False
            front.get(deployment.url + "/hub/login", verify=False, timeout=10)  # no certificate was made
    finally:
        deployment.destroy()
