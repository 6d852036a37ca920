# LabHub's JupyterHub configuration, in the hub image: LabHub configures the hub from .env, then
# loads the site's own additions, jupyterhub/context/jupyterhub_config.d/*.py, which win (README,
# JupyterHub itself). Change the hub there, never here.
from labhub import hub

hub.configure(get_config())  # noqa: F821 (JupyterHub provides it)
