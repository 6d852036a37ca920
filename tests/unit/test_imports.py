"""The labhub package is layered, settings at the bottom and the hub and the CLI on top: no import
cycle, as read from the source with `ast`.

Counted: every `import` and `from ... import` statement naming a labhub module, wherever it
stands: at the top of a module, inside a function (it runs when the function is first called, so a
cycle through it is as real, only later), under try/else. Not counted: imports under
`if TYPE_CHECKING:`, which never run (they let an annotation name a class: every configure step's
`ctx: "HubContext"`, HubContext's `images.Catalog`), and importlib.import_module calls, which are
not statements (siteconfig's names for a former template copy's own lines).
"""

import ast
from pathlib import Path

import labhub

PACKAGE = Path(labhub.__file__).parent
MODULES = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_time_imports(node: ast.AST):
    """Every import statement in node, but those in the body of an `if TYPE_CHECKING:`."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    type_checking = isinstance(node, ast.If) and _is_type_checking(node.test)
    for child in node.orelse if type_checking else ast.iter_child_nodes(node):
        yield from _run_time_imports(child)


def _labhub_modules(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The labhub modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 1 and not node.module:  # from . import a, b
        names = [f"labhub.{alias.name}" for alias in node.names]
    elif node.level == 1:  # from .a import b
        names = [f"labhub.{node.module}"]
    elif node.module == "labhub":  # from labhub import a, b
        names = [f"labhub.{alias.name}" for alias in node.names]
    else:
        names = [node.module or ""]
    return {name.split(".")[1] for name in names if name.startswith("labhub.")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the labhub modules it imports at run time."""
    graph = {}
    for name in MODULES:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(), f"{name}.py")
        graph[name] = set().union(*map(_labhub_modules, _run_time_imports(tree))) & MODULES - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, as its modules in order with the first repeated at the end; [] when none."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph[module]):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return []


def reached(graph: dict[str, set[str]], module: str) -> set[str]:
    """Every module that importing module loads, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        for imported in graph[todo.pop()] - seen:
            seen.add(imported)
            todo.append(imported)
    return seen


def test_the_graph_reads_every_kind_of_import_statement():
    tree = ast.parse("from . import a, b\nfrom .c import X\nimport labhub.d\nfrom labhub import e\nimport os\n"
                     "def f():\n    from .g import Y\n"
                     "if TYPE_CHECKING:\n    from .h import Z\nelse:\n    from . import i\n"
                     "try:\n    from . import j\nexcept ImportError:\n    pass\n")
    # h only under TYPE_CHECKING; os is not labhub's
    assert set().union(*map(_labhub_modules, _run_time_imports(tree))) == {"a", "b", "c", "d", "e", "g", "i", "j"}


def test_find_cycle_names_the_modules_around_it():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert {"hub", "cli", "context", "settings"} <= graph.keys()  # the package was found and read
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(f"labhub.{module}" for module in cycle)


def test_the_hub_context_is_a_leaf():
    """Every configure step names HubContext: the module holding it loads only the settings and
    the stack, so any module may import it without pulling in the others."""
    loaded = reached(import_graph(), "context")
    assert loaded <= {"settings", "stack"}, f"labhub.context loads {', '.join(sorted(loaded))}"
