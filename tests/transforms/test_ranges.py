"""transforms/ranges.py: the one range parser."""

import pytest

from singlestrip_bids.transforms.ranges import as_range


def test_invalid_ranges_are_refused():
    with pytest.raises(ValueError):
        as_range((2, 1))
    with pytest.raises(ValueError):
        as_range(-1)
    with pytest.raises(ValueError):
        as_range("wide")


def test_a_scalar_is_a_range_around_a_centre():
    assert as_range(2) == (-2.0, 2.0)
    assert as_range(0.2, around=1.0) == (0.8, 1.2)
    assert as_range([1, 3]) == (1.0, 3.0)
    with pytest.raises(ValueError):
        as_range(True)
