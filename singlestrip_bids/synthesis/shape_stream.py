"""The purely synthetic stream: every pair drawn from a fresh :class:`synthesis.shapes.SyntheticHead`."""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from singlestrip_bids.synthesis.generator import Draw, SynthesisConfig, Synthesizer, render_pair
from singlestrip_bids.synthesis.shapes import RandomSyntheticHead, SyntheticHead


@dataclass(frozen=True)
class ShapeDraw:
    """One synthetic pair with no real source: the head it is drawn from, and the synthesis draw."""

    head: SyntheticHead
    draw: Draw

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ShapeDraw":
        return cls(SyntheticHead.from_dict(values["head"]), Draw.from_dict(values["draw"]))


class ShapeSynthesizer(Synthesizer):
    """:class:`synthesis.generator.Synthesizer` whose one source is redrawn for every pair from
    ``heads`` (a :class:`RandomSyntheticHead`, default ranges if None); no image is read. ``batch``, ``sample`` and
    ``render`` work as in the parent, with :class:`ShapeDraw` draws."""

    def __init__(self, heads: RandomSyntheticHead | None = None, config: SynthesisConfig | None = None,
                 *, seed: int = 0, device="cpu"):
        self.config, self.heads = config or SynthesisConfig(), heads or RandomSyntheticHead()
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.labels, self.contrasts, self.n_labeled = [None], [None], 1
        self.n_classes = self.heads.n_classes

    def sample(self, patch_shape=None) -> ShapeDraw:
        head = self.heads(self.rng)
        return ShapeDraw(head, super().sample(patch_shape))

    def render(self, draw: ShapeDraw):
        labels, mask = draw.head(self.device)
        centre = torch.nonzero(mask).float().mean(dim=0).cpu().numpy()
        return render_pair(draw.draw, labels[None], mask[None].float(), centre)
