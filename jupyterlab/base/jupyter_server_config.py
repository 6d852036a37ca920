# Read with jupyter_server_config.json, which holds the rest of the server's settings: this one
# is a callable, which JSON cannot name (labhub_server.py says why it is there).
from labhub_server import HomeSignatureStore

c.NotebookNotary.store_factory = HomeSignatureStore.in_home  # noqa: F821 (c: the config Jupyter loads this with)
