"""Spawner settings that several concerns add to (storage, networks, container limits, GPUs):
each hook runs, in the order added, and DockerSpawner's per-server dicts take every concern's keys.
A plain assignment would silently drop what an earlier section set."""

import inspect


def add_hook(c, name: str, hook) -> None:
    """Adds hook (a function of the spawner, maybe async) to c.Spawner.<name>, after any there."""
    previous = c.Spawner.get(name)
    if previous is None:
        setattr(c.Spawner, name, hook)
        return

    async def both(spawner):
        for h in (previous, hook):
            result = h(spawner)
            if inspect.isawaitable(result):
                await result

    setattr(c.Spawner, name, both)


def _value(item, spawner) -> dict:
    return item(spawner) if callable(item) else item


def _merged(first: dict, second: dict) -> dict:
    merged = dict(first)
    for key, value in second.items():
        merged[key] = merged[key] + value if isinstance(value, list) and isinstance(merged.get(key), list) else value
    return merged


def merge(c, name: str, extra) -> None:
    """c.DockerSpawner.<name> (e.g. extra_host_config) gets extra's keys: lists (group_add,
    device_requests, ...) are joined, other values replaced. extra is a dict or a function of the
    spawner giving one; everything is evaluated per server, in the order added."""
    previous = c.DockerSpawner.get(name, {})
    setattr(c.DockerSpawner, name, lambda spawner: _merged(_value(previous, spawner), _value(extra, spawner)))
