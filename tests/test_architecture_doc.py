"""docs/architecture.md cites only what exists: every dotted name and every signature it gives."""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

DOC = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
PACKAGES = ("io", "model", "transforms", "synthesis", "qc", "inference", "training", "report", "interfaces",
            "workflows", "cli")


def _resolve(dotted: str):
    """``training.group.GroupRun`` → the object, importing the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module("singlestrip_bids." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise ModuleNotFoundError(dotted)


CITED = sorted(set(re.findall(rf"`((?:{'|'.join(PACKAGES)})\.[A-Za-z_][\w.]*)", DOC)))


@pytest.mark.parametrize("dotted", CITED)
def test_every_dotted_name_in_the_prose_exists(dotted):
    _resolve(dotted.rstrip("."))


def _signature_blocks():
    """``(module path, source line)`` for each top-level ``def``/``class`` of the signature block."""
    block = DOC.split("```python", 1)[1].split("```", 1)[0]
    module, entries, current_class = None, [], None
    for line in block.splitlines():
        if line.startswith("# ") and line.endswith(".py"):
            module, current_class = line[2:-3].replace("/", "."), None
        elif line.startswith(("def ", "class ")):
            current_class = line.split()[1].split("(")[0].rstrip(":") if line.startswith("class ") else None
            entries.append((module, None, line))
        elif current_class and line.startswith("    def "):
            entries.append((module, current_class, line.strip()))
        elif current_class and line.startswith("    ") and ":" in line and not line.strip().startswith("#"):
            for field in line.split("#")[0].split(";"):
                if field.strip():
                    entries.append((module, current_class, "attribute " + field.split(":")[0].strip()))
    return entries


def _parameters(line: str) -> list:
    """Parameter names of a ``def`` line (return annotations and ``...`` bodies ignored)."""
    line = re.sub(r"\)\s*->.*", ")", line.split("  #")[0])
    tree = ast.parse(line[:line.rindex(")") + 1] + ": pass")
    arguments = tree.body[0].args
    return [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs] if a.arg != "self"]


ENTRIES = _signature_blocks()


@pytest.mark.parametrize("module, owner, line", ENTRIES, ids=[f"{m}:{o or ''}:{line[:40]}" for m, o, line in ENTRIES])
def test_every_signature_in_the_doc_matches_the_code(module, owner, line):
    target = _resolve(module + (f".{owner}" if owner else ""))
    if line.startswith("attribute "):
        name = line.split()[1]
        assert hasattr(target, name) or name in getattr(target, "__dataclass_fields__", {}), f"{owner}.{name}"
        return
    name = line.split()[1].split("(")[0].rstrip(":")
    obj = getattr(target, name)
    if line.startswith("def "):
        documented = _parameters(line)
        actual = [p for p in inspect.signature(obj).parameters if p != "self"]
        assert documented == actual[:len(documented)] and set(actual[len(documented):]) <= {
            p for p, value in inspect.signature(obj).parameters.items() if value.default is not inspect._empty}, (
            f"{module}.{name}: the doc gives {documented}, the code has {actual}")


def test_the_doc_cites_the_layers_and_stages():
    assert len(CITED) >= 20 and len(ENTRIES) >= 25
