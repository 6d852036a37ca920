"""User images (JupyterLab flavors) and what each may use. Each flavor under jupyterlab/ labels its
image: its flavor name, title and description, whether it needs a GPU, and optionally its own
memory and CPU limits. The hub offers exactly the flavors that are built, as their Dockerfiles
name them, looked up again for each spawn so a newly built flavor needs no hub restart."""

import html
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import docker
from tornado import web

from .settings import SettingError

if TYPE_CHECKING:
    from .context import HubContext

FLAVOR_LABEL = "org.labhub.flavor"
TITLE_LABEL = "org.opencontainers.image.title"
DESCRIPTION_LABEL = "org.opencontainers.image.description"
GPU_LABEL = "org.labhub.gpu"
MEM_LABEL = "org.labhub.mem-limit"
CPU_LABEL = "org.labhub.cpu-limit"
DEFAULT_FLAVOR = "base"
# How long one look at the engine's images answers the catalog's questions. A spawn asks several
# (allowed images, limits, GPU) within moments, and a burst of spawns asks them many times over;
# the look is a blocking call in the hub's event loop, so one serves them all. A flavor built
# meanwhile is offered this much later.
LOOK_SECONDS = 5.0


@dataclass(frozen=True)
class Flavor:
    name: str
    title: str
    description: str
    ref: str  # image reference
    gpu: bool
    mem_limit: str  # e.g. "4G"; "" for the site's default
    cpu_limit: float | None


def built_flavors(client: docker.DockerClient) -> dict[str, Flavor]:
    """flavor name -> Flavor, for every tagged flavor image on this engine: one API call (the image
    list carries labels and tags; docker-py's images.list would inspect each image as well). Where
    several tagged images carry one flavor (a copy kept under another tag), the newest is it."""
    found = {}
    for image in sorted(client.api.images(filters={"label": FLAVOR_LABEL}), key=lambda i: i["Created"]):
        tags = [t for t in image.get("RepoTags") or () if t != "<none>:<none>"]
        if not tags:
            continue
        labels = image["Labels"]
        name = labels[FLAVOR_LABEL]
        found[name] = Flavor(
            name=name, title=labels.get(TITLE_LABEL, name), description=labels.get(DESCRIPTION_LABEL, ""),
            ref=sorted(tags)[0], gpu=labels.get(GPU_LABEL) == "true",
            mem_limit=labels.get(MEM_LABEL, ""),
            cpu_limit=float(labels[CPU_LABEL]) if labels.get(CPU_LABEL) else None)
    return found


def _asked_now(spawner) -> bool:
    """Whether the request starting this server carries options (a form, a JSON body, query
    arguments), as against a plain start that reuses the options of the last one."""
    handler = getattr(spawner, "handler", None)
    if handler is None:
        return False
    request = handler.request
    return request.body.strip() not in (b"", b"{}") or bool(set(request.query_arguments) - {"next", "display_name"})


def configure(c, ctx: "HubContext") -> None:
    """The flavors offered, and what the chosen one gets (applied when it is chosen, at each start)."""
    catalog = ctx.catalog
    c.DockerSpawner.image = catalog.default_image
    c.DockerSpawner.allowed_images = catalog.allowed_images
    c.DockerSpawner.options_form = catalog.options_form
    c.Spawner.apply_user_options = catalog.apply_user_options


class Catalog:
    """The flavors users may choose from, with the limits each gets on this machine."""

    def __init__(self, client: docker.DockerClient, gpus_available: bool, mem_limit: str, cpu_limit: float):
        self.client, self.gpus_available = client, gpus_available
        self.mem_limit, self.cpu_limit = mem_limit, cpu_limit
        self._looked_at, self._flavors = float("-inf"), {}
        if DEFAULT_FLAVOR not in self.flavors():
            raise SettingError(
                f"no user image labelled {FLAVOR_LABEL}={DEFAULT_FLAVOR}; build it with "
                "`docker compose -f docker-compose.jlabs.yml build` (or `docker compose up -d` builds it)")

    def flavors(self) -> dict[str, Flavor]:
        """The built flavors, as the engine listed them at most LOOK_SECONDS ago."""
        if time.monotonic() - self._looked_at > LOOK_SECONDS:
            self._flavors, self._looked_at = built_flavors(self.client), time.monotonic()
        return self._flavors

    def _ordered(self) -> list[Flavor]:
        """The built flavors, default first, then by title."""
        return sorted(self.flavors().values(), key=lambda f: (f.name != DEFAULT_FLAVOR, f.title))

    def _usable(self, flavor: Flavor) -> bool:
        return self.gpus_available or not flavor.gpu

    def usable(self) -> dict[str, Flavor]:
        """title -> Flavor, default first; GPU flavors only where there are GPUs."""
        return {f.title: f for f in self._ordered() if self._usable(f)}

    def __deepcopy__(self, memo):
        # traitlets deep-copies config values, bound methods (and so this catalog, with its
        # Docker connection) included: the one catalog is shared, never copied.
        return self

    @property
    def default_image(self) -> str:
        return self.flavors()[DEFAULT_FLAVOR].ref

    def allowed_images(self, spawner=None) -> dict[str, str]:
        return {title: f.ref for title, f in self.usable().items()}

    def chosen(self, spawner) -> Flavor:
        usable = self.usable()
        return usable.get(spawner.user_options.get("image"), next(iter(usable.values())))

    def limits(self, flavor: Flavor) -> tuple[str, float]:
        """Memory and CPUs for a server of this flavor: its own, else the site's."""
        return flavor.mem_limit or self.mem_limit, flavor.cpu_limit or self.cpu_limit

    def apply_user_options(self, spawner, user_options: dict) -> None:
        """JupyterHub's hook for the user's choice, run at each start before the container is made:
        the chosen flavor's image and limits. A choice that is not offered (any more) is forgotten:
        a start that asks for it now is refused; one that reuses it from an earlier start (an
        admin's plain start, or a flavor the admin has since removed) gets the default flavor."""
        choice = user_options.get("image")
        if choice is not None and choice not in self.usable():
            remembered = {k: v for k, v in user_options.items() if k != "image"}
            spawner.orm_spawner.user_options = remembered
            if _asked_now(spawner):
                raise web.HTTPError(400, f"{choice!r} is not offered here; choose one of {', '.join(self.usable())}")
            spawner.log.warning("%s: the remembered choice %r is not offered any more; starting the default, %s",
                                spawner._log_name, choice, next(iter(self.usable())))
            user_options.pop("image")
        flavor = self.chosen(spawner)
        spawner.image = flavor.ref
        spawner.mem_limit, spawner.cpu_limit = self.limits(flavor)

    def options_form(self, spawner) -> str:
        """The spawn form: one choice per flavor with its description and limits; GPU flavors are
        listed as unavailable on a machine without GPUs."""
        flavors = self._ordered()
        if len(flavors) <= 1:
            return ""  # nothing to choose: start straight away
        rows = []
        for i, f in enumerate(flavors):
            mem, cpus = self.limits(f)
            available = self._usable(f)
            note = "" if available else " <strong>(unavailable: this machine has no GPU)</strong>"
            rows.append(
                f'<div class="radio"><label><input type="radio" name="image" value="{html.escape(f.title)}"'
                f'{" checked" if i == 0 else ""}{"" if available else " disabled"}> '
                f"<strong>{html.escape(f.title)}</strong>{note}<br><small>{html.escape(f.description)} "
                f"(up to {mem}B memory, {cpus:g} CPUs)</small></label></div>")
        return "<p>Choose your environment:</p>\n" + "\n".join(rows)
