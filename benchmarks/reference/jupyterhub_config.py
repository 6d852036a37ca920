# Reference hub: DockerSpawner with stock settings, as in jupyterhub-deploy-docker; TLS served by
# JupyterHub's own proxy. Any password logs in (the benchmark measures spawning, not logins).
import os

c = get_config()  # noqa: F821

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.admin_users = {"admin"}
c.JupyterHub.ssl_cert = "/srv/jupyterhub/tls/tls.crt"
c.JupyterHub.ssl_key = "/srv/jupyterhub/tls/tls.key"

c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = "labhub-bench/reference-lab:latest"
c.DockerSpawner.network_name = os.environ["DOCKER_NETWORK_NAME"]
c.DockerSpawner.prefix = os.environ["CONTAINER_PREFIX"]
c.DockerSpawner.remove = True
c.DockerSpawner.volumes = {os.environ["HOME_VOLUME"]: "/home/jovyan/work"}
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = "hub"
