"""What unit tests of the configure steps share: a hub context of plain values."""

from pathlib import Path
from types import SimpleNamespace

from labhub import settings
from labhub.context import EngineFacts, HubContext
from labhub.stack import Stack

STACK = Stack(project="lab", hub_alias="hub", hub_image="sha256:hub", hub_image_name="labhub/hub:latest",
              context_dir="/lab/jupyterhub/context")


def hub_context(s=None, engine=None, catalog=None, secret_dir=Path("/nonexistent"), environ=None, **facts) -> HubContext:
    """The context a configure step takes (labhub.context), with the engine's facts as given."""
    facts = {"api_version": (1, 41), "cpus": 2, "memory": 8 * 2**30, "folders": {}, "gpus": [], **facts}
    return HubContext(settings=s or settings.load({}), stack=STACK, engine=engine or SimpleNamespace(),
                      facts=EngineFacts(**facts), catalog=catalog, secret_dir=secret_dir, environ=environ or {})
