"""User images. Each flavor under jupyterlab/ labels its image with its flavor name, title and
description, so the hub offers exactly the flavors that are built, named as their Dockerfile says."""

import docker

from .settings import SettingError

FLAVOR_LABEL = "org.labhub.flavor"
TITLE_LABEL = "org.opencontainers.image.title"
DEFAULT_FLAVOR = "base"


def built_flavors(client: docker.DockerClient) -> dict[str, tuple[str, str]]:
    """flavor -> (title, image reference) for every tagged flavor image on this engine."""
    found = {}
    for image in client.images.list(filters={"label": FLAVOR_LABEL}):
        if image.tags:
            flavor = image.labels[FLAVOR_LABEL]
            found[flavor] = (image.labels.get(TITLE_LABEL, flavor), sorted(image.tags)[0])
    return found


def allowed_images(client: docker.DockerClient) -> tuple[str, dict[str, str]]:
    """The default image and the {title: image} choices for DockerSpawner."""
    flavors = built_flavors(client)
    if DEFAULT_FLAVOR not in flavors:
        raise SettingError(
            f"no user image labelled {FLAVOR_LABEL}={DEFAULT_FLAVOR}; build it with "
            "`docker compose -f docker-compose.jlabs.yml build` (or `docker compose up -d` builds it)")
    choices = {title: ref for title, ref in sorted(flavors.values())}
    return flavors[DEFAULT_FLAVOR][1], choices
