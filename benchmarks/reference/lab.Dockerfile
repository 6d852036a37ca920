# Reference user image, built the usual way: pip install jupyterlab and the hub's jupyterhub.
FROM debian:trixie-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv tini \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates/ /usr/local/share/ca-certificates/labhub/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN useradd --create-home --uid 1000 jovyan
RUN python3 -m venv /opt/jupyter
ENV PATH=/opt/jupyter/bin:$PATH
COPY jupyterhub/requirements.txt /tmp/hub-requirements.txt
RUN pip install --no-cache-dir -c /tmp/hub-requirements.txt jupyterhub jupyterlab
USER jovyan
WORKDIR /home/jovyan
ENTRYPOINT ["tini", "--"]
CMD ["jupyterhub-singleuser"]
