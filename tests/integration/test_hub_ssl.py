"""Hub-direct mode (docker-compose.hub-ssl.yml): no Traefik; the hub's own proxy serves TLS with
the same certificate, and users log in and spawn over HTTPS on its port; the monitoring probes
that front door, and reads the hub, there too."""

import socket
import ssl

import harness


def test_hub_direct_mode_serves_login_and_spawn_over_https():
    deployment = harness.Deployment("labhubdirect", ports=harness.free_ports())
    try:
        # As the README says: the compose files named once in .env.
        with open(deployment.dir / ".env", "a") as env:
            env.write("COMPOSE_FILE=docker-compose.yml:docker-compose.hub-ssl.yml\nCOMPOSE_PROFILES=monitoring\n")
        result = deployment.up(check=False)
        assert result.returncode == 0, result.stdout[-3000:]
        services = deployment.compose("ps", "-a", "--format", "{{.Service}}").stdout.split()
        assert "proxy" not in services and "proxy-config" not in services, services

        ctx = ssl.create_default_context(cafile=deployment.ca_file)
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", deployment.ports[1])),
                             server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")

        admin = harness.HubClient(deployment)
        landed = admin.login("admin", deployment.admin_password())
        assert landed.status_code == 200 and "/hub/login" not in landed.url
        admin.start_server()
        assert admin.execute(admin.start_kernel(), "5*4") == "20"  # wss through the hub's proxy
        # Where users' browsers connect is what the monitoring probes: the hub's own proxy here.
        for job in ("front-door", "hub"):
            deployment.wait_for_series(f'up{{job="{job}"}} == 1')
        expiry = deployment.wait_for_series("probe_ssl_earliest_cert_expiry")
        assert 'instance="hub-front:' in expiry[0], expiry
    finally:
        deployment.destroy()
