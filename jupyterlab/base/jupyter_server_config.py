# Read with jupyter_server_config.json, which holds the rest of the server's settings: the store is
# a callable, which JSON cannot name, and the server's memory is closed to its kernels and
# terminals before it serves anyone (labhub_server.py says why).
import os

from labhub_server import HomeSignatureStore, keep_memory_from_children

keep_memory_from_children()
c.NotebookNotary.store_factory = HomeSignatureStore.in_home  # noqa: F821 (c: the config Jupyter loads this with)
# jupyter-resource-usage compares the CPU use, in percent, with this limit, which it takes from
# CPU_LIMIT (the hub's, in CPUs): in percent too, or its meter is red from 1 % of one CPU on, and
# hides the home's disk warning.
c.ResourceUseDisplay.cpu_limit = float(os.environ.get("CPU_LIMIT") or 0) * 100  # noqa: F821
