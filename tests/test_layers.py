"""The import graph is layered with no cycles (docs/architecture.md): each sub-package imports only from the layers
below it, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "inference" / "brasyn_infer"
#: lowest first; a module may import its own layer and those below
LAYERS = [
    {"brasyn_infer", "brasyn_infer.constants", "brasyn_infer.errors"},
    {"brasyn_infer.io"},
    {"brasyn_infer.synthesis", "brasyn_infer.segmentation"},
    {"brasyn_infer.runtime"},
    {"brasyn_infer.orchestration"},
    {"brasyn_infer.pipeline"},
    {"brasyn_infer.evaluation", "brasyn_infer.authoring"},
    {"brasyn_infer.cli"},
    {"brasyn_infer.container", "brasyn_infer.__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every brasyn_infer module ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("brasyn_infer"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("brasyn_infer"))
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(name: str) -> int:
    best = None
    for index, members in enumerate(LAYERS):
        for member in members:
            if (name == member or name.startswith(member + ".")) and (best is None or len(member) > len(best[1])):
                best = (index, member)
    assert best is not None, f"{name} is in no layer"
    return best[0]


def test_every_import_goes_down_or_sideways():
    known = modules()
    wrong = []
    for name, path in sorted(known.items()):
        for target in sorted(imports(path)):
            if target not in known and target.rsplit(".", 1)[0] in known:
                target = target.rsplit(".", 1)[0]  # `from package.module import name`
            if target in known and layer(target) > layer(name):
                wrong.append(f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = set()
        for target in imports(path):
            if target not in known and target.rsplit(".", 1)[0] in known:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_module_is_over_400_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
