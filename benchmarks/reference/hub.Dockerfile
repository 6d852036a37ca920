# Reference hub: JupyterHub and DockerSpawner from PyPI at LabHub's versions, nothing else.
FROM debian:trixie-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv node-configurable-http-proxy \
 && rm -rf /var/lib/apt/lists/*
# The site's extra CAs, as every LabHub image build trusts them (networks that intercept TLS).
COPY ca-certificates/ /usr/local/share/ca-certificates/labhub/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/hub
ENV PATH=/opt/hub/bin:$PATH
COPY jupyterhub/requirements.txt /tmp/hub-requirements.txt
RUN pip install --no-cache-dir -c /tmp/hub-requirements.txt jupyterhub dockerspawner
WORKDIR /srv/jupyterhub
CMD ["jupyterhub", "-f", "/srv/jupyterhub/jupyterhub_config.py"]
