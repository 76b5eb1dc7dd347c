"""Run the schema-based BIDS validator (PyPI ``bids-validator-deno``, offline) on the input dataset."""

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from singlestrip_bids.errors import UserError

# The package's own launcher (Deno runtime + bundled validator and schema); run through this
# interpreter so it is found even when the environment's bin/ folder is not on PATH.
_LAUNCHER = "from bids_validator_deno import cli; cli()"
MAX_ERRORS_SHOWN = 3


def validate_bids(bids_dir) -> list[str]:
    """Validate ``bids_dir``; return one line per warning code, raise UserError on any error.

    The UserError message holds the first validator errors (code, file, explanation) on one line.
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise UserError(f"{bids_dir}: no such folder")
    command = [sys.executable, "-c", _LAUNCHER, "--format", "json", "--no-color", str(bids_dir)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(completed.stdout)
        issues = report["issues"]["issues"]
        messages = report["issues"].get("codeMessages", {})
    except (ValueError, KeyError, TypeError):
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"the BIDS validator could not run ({detail}); use --skip-bids-validation to skip it"
        ) from None
    errors = _by_code(issue for issue in issues if issue.get("severity") == "error")
    if errors:
        shown = [_describe(code, found, messages) for code, found in list(errors.items())[:MAX_ERRORS_SHOWN]]
        more = len(errors) - len(shown)
        tail = f" (+{more} more error kinds)" if more > 0 else ""
        raise UserError(f"BIDS validation failed: {'; '.join(shown)}{tail}")
    warnings = _by_code(issue for issue in issues if issue.get("severity") == "warning")
    return [_describe(code, found, messages) for code, found in warnings.items()]


def _by_code(issues) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for issue in issues:
        grouped[issue.get("code", "UNKNOWN")].append(issue)
    return dict(grouped)


def _describe(code: str, issues: list[dict], messages: dict) -> str:
    """``CODE (where, N files): explanation`` on one line."""
    locations = sorted({issue.get("location", "") for issue in issues} - {""})
    where = locations[0] if locations else "dataset"
    if len(locations) > 1:
        where += f" and {len(locations) - 1} more"
    explanation = " ".join(messages.get(code, "").split()).rstrip(".")
    return f"{code} ({where})" + (f": {explanation}" if explanation else "")
