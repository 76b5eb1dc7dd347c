"""The package's layers point down: cli → workflows → interfaces → pure modules, and no import circle.

Every ``import`` of the package is read with ``ast`` (module level and inside functions alike).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "singlestrip_bids"
PURE = ("io", "model", "transforms", "synthesis", "qc", "inference", "training", "report")
UPPER = ("cli", "workflows", "interfaces")
NIPYPE_ALLOWED = ("workflows", "interfaces")


def _part(module: str) -> str:
    """``singlestrip_bids.qc.score`` → ``qc``; a top-level module (``errors``) is its own part; a name
    of the package itself (``singlestrip_bids.__version__``) is ``""``."""
    parts = module.split(".")
    if len(parts) < 2 or not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return ""
    return parts[1]


def imports() -> dict:
    """Module name → the set of modules it imports (absolute names)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module if node.level == 0 else ".".join(name.split(".")[:-node.level] + [node.module])
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        found[name] = targets
    return found


def package_graph() -> dict:
    """Part of the package → the other parts it imports."""
    graph = {}
    for module, targets in imports().items():
        source = _part(module)
        for target in targets:
            if target.startswith("singlestrip_bids.") and _part(target) not in ("", source):
                graph.setdefault(source, set()).add(_part(target))
    return graph


@pytest.mark.parametrize("part", PURE)
def test_pure_modules_import_no_upper_layer(part):
    graph = package_graph()
    assert not graph.get(part, set()) & set(UPPER), f"{part}/ imports {graph[part] & set(UPPER)}"


def test_only_workflows_and_interfaces_import_nipype():
    offenders = [module for module, targets in imports().items()
                 if any(t == "nipype" or t.startswith("nipype.") for t in targets)
                 and _part(module) not in NIPYPE_ALLOWED]
    assert offenders == []


def test_no_import_circle_between_parts():
    graph = package_graph()

    def reaches(start, goal, seen=()):
        return any(step == goal or (step not in seen and reaches(step, goal, (*seen, step)))
                   for step in graph.get(start, ()))

    circles = sorted(part for part in graph if reaches(part, part))
    assert circles == [], {part: sorted(graph[part]) for part in circles}


def test_the_walk_sees_function_level_imports():
    """A lazy import inside a function counts: the driver imports the training stages that way."""
    assert "singlestrip_bids.training.group" in imports()["singlestrip_bids.cli.group"]
