"""LabHub's hub pages rendered as the hub renders them: its template path (labhub.hub) before
JupyterHub's templates, which LabHub's extend as templates/<name> (JupyterHub's loaders)."""

import os

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH
from traitlets.config import Config

from labhub import hub

from contexts import hub_context


def render(name: str, **context) -> str:
    c = Config()
    hub.configure_hub(c, hub_context())
    jupyterhubs = os.path.join(DATA_FILES_PATH, "templates")
    env = Environment(autoescape=True, loader=ChoiceLoader([
        FileSystemLoader(c.JupyterHub.template_paths), PrefixLoader({"templates": FileSystemLoader([jupyterhubs])}, "/"),
        FileSystemLoader([jupyterhubs])]))
    return env.get_template(name).render(static_url=lambda *_, **__: "", base_url="/hub/", **context)
