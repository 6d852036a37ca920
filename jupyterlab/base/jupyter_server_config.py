# Read with jupyter_server_config.json, which holds the rest of the server's settings: the store is
# a callable, which JSON cannot name, and the server's memory is closed to its kernels and
# terminals before it serves anyone (labhub_server.py says why).
from labhub_server import HomeSignatureStore, keep_memory_from_children

keep_memory_from_children()
c.NotebookNotary.store_factory = HomeSignatureStore.in_home  # noqa: F821 (c: the config Jupyter loads this with)
