"""Leaves a JupyterHub 5 database as a running 5.x hub would: the configured users with their
roles. Prints a new API token for olduser (what `jupyterhub token` does, after the role setup a hub
start does and that command skips)."""

import asyncio

from jupyterhub import orm
from jupyterhub.app import JupyterHub


async def main():
    hub = JupyterHub()
    hub.load_config_file("jupyterhub_config.py")
    hub.init_db()
    await hub.init_role_creation()
    await hub.init_users()
    await hub.init_role_assignment()
    print(orm.User.find(hub.db, "olduser").new_api_token(note="made by JupyterHub 5"))


asyncio.run(main())
