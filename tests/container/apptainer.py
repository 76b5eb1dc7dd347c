"""Read an Apptainer definition file and replay its run-time sections the way Apptainer does.

Apptainer cannot be installed on the test machines, and spython's conversion of the definition to
a Dockerfile is not faithful (it turns ``%test`` into ``echo "..." >> /tests.sh`` lines that expand
``$(...)`` and ``"$var"`` at build time, and ``%runscript`` into a shell-form CMD that drops the
arguments). So the tests run the sections themselves in the Docker image the definition bootstraps
from: Apptainer's action scripts source ``%environment`` and then run ``%runscript`` (with the
container's arguments as ``"$@"``) or ``%test`` with ``/bin/sh``.
"""

import textwrap
from pathlib import Path


def definition_sections(path) -> dict[str, str]:
    """``{"runscript": body, "test": body, ...}`` of a definition file; header lines are skipped."""
    sections: dict[str, list[str]] = {}
    name = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("%"):
            name = line[1:].split()[0].lower()
            sections[name] = []
        elif name is not None:
            sections[name].append(line)
    return {key: textwrap.dedent("\n".join(lines)).strip() + "\n" for key, lines in sections.items()}


def action_script(sections: dict[str, str], action: str) -> str:
    """The shell script Apptainer runs for ``action`` ("runscript" or "test")."""
    return sections.get("environment", "") + sections[action]
