"""The site's own additions to the hub's configuration, which survive upgrades: every
jupyterhub/context/jupyterhub_config.d/*.py, in name order, after LabHub's configuration (as TLJH
and Zero to JupyterHub load theirs). Each is an ordinary JupyterHub config file (`c = get_config()`,
then `c.Spawner.start_timeout = 300`, ...); what it sets wins.

Until December 2026 an admin changed the hub by copying the whole jupyterhub_config.py.template
to jupyterhub_config.py. Such a copy keeps working: the hub runs only its own lines, those that
are in no version of that template (former_template.txt), after LabHub's configuration, and says
which; `labhub check` tells the admin to move them into a jupyterhub_config.d file.
"""

import ast
import importlib
import importlib.resources
import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from .settings import CONTEXT_DIR, SettingError

if TYPE_CHECKING:
    from .context import HubContext

log = logging.getLogger("JupyterHub")
SITE_CONFIG_DIR = "jupyterhub_config.d"  # in jupyterhub/context/
FORMER_COPY = "jupyterhub_config.py"  # in jupyterhub/context/
MOVE_TO = f"jupyterhub/context/{SITE_CONFIG_DIR}/site.py"
# The labhub modules the former template imported, for the copy's own lines that use them.
TEMPLATE_MODULES = ("auth", "bootstrap", "certs", "checks", "containers", "gpu", "images", "network", "resources",
                    "settings", "spawner", "stack", "storage")


def site_files(context_dir: Path = CONTEXT_DIR) -> list[Path]:
    return sorted((context_dir / SITE_CONFIG_DIR).glob("*.py"))


def _failed(path: Path, error: Exception, fix: str) -> SettingError:
    """One line: the site file, the line of it that failed, what failed, and the fix."""
    shown = "jupyterhub/context/" + (f"{SITE_CONFIG_DIR}/{path.name}" if path.parent.name == SITE_CONFIG_DIR else path.name)
    if isinstance(error, SyntaxError):
        line, what = error.lineno, error.msg
    else:
        line = next((frame.lineno for frame in reversed(traceback.extract_tb(error.__traceback__))
                     if frame.filename == str(path)), "?")
        what = f"{type(error).__name__}: {error}"
    return SettingError(f"{shown}: line {line}: {what}; {fix}")


def site_file_problems(context_dir: Path) -> list[str]:
    """`labhub check`: each site file must at least parse."""
    problems = []
    for path in site_files(context_dir):
        try:
            ast.parse(path.read_bytes(), str(path))
        except SyntaxError as error:
            problems.append(str(_failed(path, error, "fix it, or remove the file")))
    return problems


def load_site_files(c, context_dir: Path = CONTEXT_DIR) -> None:
    """Runs each jupyterhub_config.d file on the hub's own config c, as if its lines stood at the
    end of the config file: so `c.DockerSpawner.environment.update(...)` or
    `labhub.hooks.merge(c, "extra_host_config", ...)` add to what LabHub set (traitlets'
    load_subconfig would start each from an empty config and replace LabHub's values whole).
    One that fails stops the hub with one line."""
    for path in site_files(context_dir):
        log.info("labhub: site config %s", path)
        try:
            exec(compile(path.read_bytes(), str(path), "exec"), {"c": c, "get_config": lambda: c, "__file__": str(path)})
        except Exception as error:
            raise _failed(path, error, "fix it, or remove the file") from None


def _template_statements() -> set[str]:
    text = importlib.resources.files(__package__).joinpath("former_template.txt").read_text()
    return {ast.dump(statement) for statement in ast.parse(text).body}


def own_statements(copy: Path) -> list[ast.stmt]:
    """The statements of a former template copy that no version of the template had."""
    try:
        tree = ast.parse(copy.read_bytes(), str(copy))
    except SyntaxError as error:
        raise _failed(copy, error, f"fix it, or move your own lines into {MOVE_TO} and remove the file") from None
    template = _template_statements()
    return [statement for statement in tree.body if ast.dump(statement) not in template]


def former_copy_advice(copy: Path) -> str:
    lines = ", ".join(str(statement.lineno) for statement in own_statements(copy)) or "none"
    return (f"jupyterhub/context/{FORMER_COPY}: a copy of the former hub config template; LabHub now configures "
            f"the hub itself and runs only the copy's own lines (line {lines}) after it; move them into "
            f"{MOVE_TO} and remove the copy (see README, JupyterHub itself)")


def run_former_copy(c, ctx: "HubContext", copy: Path) -> None:
    """Runs the copy's own lines, with the names the template gave them (s, lab, engine, catalog, gpus)."""
    namespace = {"c": c, "get_config": lambda: c, "s": ctx.settings, "lab": ctx.stack, "engine": ctx.engine,
                 "catalog": ctx.catalog, "gpus": ctx.facts.gpus, "logging": logging,
                 **{name: importlib.import_module(f"{__package__}.{name}") for name in TEMPLATE_MODULES}}
    own = own_statements(copy)
    log.warning("%s", former_copy_advice(copy))
    try:
        exec(compile(ast.Module(body=own, type_ignores=[]), str(copy), "exec"), namespace)
    except Exception as error:  # an admin's line: say which, in one line, and stop
        raise _failed(copy, error, f"move your own lines into {MOVE_TO} (see README, JupyterHub itself) "
                                   "and remove the copy") from None
