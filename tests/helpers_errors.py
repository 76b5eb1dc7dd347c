"""A user mistake must give a single-line ``UserError``."""

import pytest

from singlestrip_bids.errors import UserError


def one_line_user_error(call, *args, **kwargs) -> str:
    """Run ``call(*args, **kwargs)``, expect a ``UserError`` and return its one-line message."""
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def assert_refused(completed, fragment, code=1):
    """Exit ``code``, no traceback, exactly one ``singlestrip_bids: error:`` line containing ``fragment``."""
    assert completed.returncode == code, completed.stderr
    assert "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("singlestrip_bids: error:")]
    assert len(errors) == 1, completed.stderr
    assert fragment in errors[0], errors[0]
