"""transforms/field_of_view.py: clutter in the air, thick slices, cropping."""

import numpy as np
import torch
from helpers_shapes import sphere

from singlestrip_bids.transforms.field_of_view import AirClutter


def test_air_clutter_fills_only_air_outside_the_mask_and_no_classes_is_identity():
    shape = (40, 40, 40)
    brain = sphere(shape, 10)
    head = sphere(shape, 14)
    labels = torch.as_tensor(np.where(brain, 3, np.where(head, 1, 0)).astype(np.uint8))[None]
    mask = torch.as_tensor(brain, dtype=torch.float32)[None]
    assert torch.equal(AirClutter()(labels, mask), labels)
    filled = AirClutter(classes=(0, 2, 5), seed=4)(labels, mask)
    air = torch.as_tensor(~head)
    assert torch.equal(filled[0][~air], labels[0][~air])  # brain and scalp keep their classes
    assert set(filled[0][air].unique().tolist()) == {0, 2, 5}  # the air takes every drawn class
    assert torch.equal(AirClutter(classes=(0, 2, 5), seed=4)(labels, mask), filled)  # the seed decides
    assert not torch.equal(AirClutter(classes=(0, 2, 5), seed=5)(labels, mask), filled)
    # a mask that reaches into the air (a defaced example) keeps its air there unpainted
    wide = torch.as_tensor(sphere(shape, 16), dtype=torch.float32)[None]
    assert (AirClutter(classes=(2,), seed=4)(labels, wide)[0][wide[0] > 0] == 2).sum() == 0
