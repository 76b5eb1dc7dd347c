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
