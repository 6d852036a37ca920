"""LabHub: the building blocks that jupyterhub_config.py calls, and the `labhub` admin command."""
