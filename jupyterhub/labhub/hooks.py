"""The one rule by which several concerns (storage, networks, container limits, GPUs, bootstrap,
culling) add to the same spawner setting: a plain assignment would silently drop what an earlier
step set, so every dict or list trait they share is added to with merge, and every hook with
add_hook."""

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


def merged(first, second):
    """Lists are joined; dicts take the second's keys, their list and dict values merged likewise
    (e.g. the container labels of two concerns)."""
    if isinstance(first, list) and isinstance(second, list):
        return first + second
    result = dict(first)
    for key, value in second.items():
        same_kind = any(isinstance(value, kind) and isinstance(result.get(key), kind) for kind in (list, dict))
        result[key] = merged(result[key], value) if same_kind else value
    return result


def merge(c, name: str, extra, section: str = "DockerSpawner") -> None:
    """c.<section>.<name> (a dict or list trait: volumes, mounts, environment, extra_host_config,
    ...) gets extra added by merged(). extra is a value, or a function of the spawner giving one
    (only for traits that take functions, e.g. extra_host_config): then the trait becomes a function
    too, evaluated per server with every addition in the order made."""
    config = getattr(c, section)
    previous = config.get(name, [] if isinstance(extra, list) else {})
    if callable(previous) or callable(extra):
        def value(item, spawner):
            return item(spawner) if callable(item) else item

        setattr(config, name, lambda spawner: merged(value(previous, spawner), value(extra, spawner)))
    else:
        setattr(config, name, merged(previous, extra))
