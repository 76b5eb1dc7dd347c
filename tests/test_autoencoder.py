"""QC autoencoders, their augmentations and the AE score, on a real brain mask."""

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.io.conform import conform_mask
from singlestrip_bids.model.autoencoder import DEFAULTS, build_autoencoder, default_config
from singlestrip_bids.qc.autoencoder import ae_dice, mask_box
from singlestrip_bids.training.autoencoder import train_autoencoder
from singlestrip_bids.transforms.spatial import Scaling

pytestmark = pytest.mark.skipif(not data_available(), reason=f"test data folder {DATA_DIR} is absent")
VOXEL_MM = 4.0
SMALL = {"size": 32, "spacing_mm": 6.0, "channels": [8, 16, 32], "latent": 32}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mask():
    """The FreeSurfer brain mask of fs_training_t1/sub-01 on a 4 mm working grid (bool)."""
    img = nib.load(DATA_DIR / "fs_training_t1" / "sub-01" / "brainmask_bin.nii.gz")
    return conform_mask(img, VOXEL_MM, 8)


@pytest.fixture(scope="module")
def trained(mask):
    """A small 2D autoencoder trained on the mask (seeded), with its loss per step."""
    losses = []
    ae, config = train_autoencoder(mask, kind="2d", steps=150, seed=3, device="cpu", voxel_size=VOXEL_MM,
                                   architecture=SMALL, on_step=lambda step, loss: losses.append(loss))
    return ae, config, losses


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_default_architectures_reconstruct_their_box_shape(kind):
    ae = build_autoencoder(default_config(kind))
    size = DEFAULTS[kind]["size"]
    x = torch.zeros((2, 1) + (size,) * (2 if kind == "2d" else 3))
    with torch.no_grad():
        out = ae(x)
    assert out.shape == x.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert ae.config["kind"] == kind and ae.config["latent"] == 100


def test_unknown_kind_and_bad_size_are_refused():
    with pytest.raises(ValueError, match="kind"):
        default_config("4d")
    with pytest.raises(ValueError, match="multiple"):
        build_autoencoder({**default_config("2d"), "size": 60})


def test_mask_box_is_centred_and_scaled(mask):
    config = {**default_config("2d", VOXEL_MM), **SMALL}
    box = mask_box(mask, config).numpy().astype(bool)
    centre = np.argwhere(box).mean(axis=0)
    np.testing.assert_allclose(centre, (SMALL["size"] - 1) / 2, atol=1.0)
    volume_ml = box.sum() * SMALL["spacing_mm"] ** 3 / 1000
    assert volume_ml == pytest.approx(mask.sum() * VOXEL_MM**3 / 1000, rel=0.1)
    smaller = mask_box(mask, config, Scaling(0.8).matrix()).numpy().sum()
    assert smaller == pytest.approx(box.sum() * 0.8**3, rel=0.1)


def test_training_is_seeded_and_learns(mask, trained):
    ae, config, losses = trained
    assert config["kind"] == "2d" and config["training"]["seed"] == 3 and config["size"] == 32
    assert len(losses) == 150 and np.mean(losses[-20:]) < 0.6 * np.mean(losses[:5])
    again, _ = train_autoencoder(mask, kind="2d", steps=2, seed=3, device="cpu", voxel_size=VOXEL_MM,
                                 architecture=SMALL)
    repeat, _ = train_autoencoder(mask, kind="2d", steps=2, seed=3, device="cpu", voxel_size=VOXEL_MM,
                                  architecture=SMALL)
    for a, b in zip(again.state_dict().values(), repeat.state_dict().values()):
        assert torch.equal(a, b)


def test_ae_dice_ranks_good_over_damaged_masks(mask, trained):
    ae = trained[0]
    good = ae_dice(ae, mask)
    half = mask.copy()
    half[: int(np.argwhere(mask)[:, 0].mean())] = False  # one hemisphere missing
    assert 0.0 <= ae_dice(ae, half) < good <= 1.0
    assert good > 0.8
    assert ae_dice(ae, np.zeros_like(mask)) == 0.0
    assert ae_dice(ae, mask) == good  # deterministic in eval mode


def test_mask_outside_the_box_counts_as_missed(mask, trained):
    ae = trained[0]
    leak = mask.copy()
    leak[:, :, :4] = True  # a slab far below the brain, outside the box
    assert ae_dice(ae, leak) < ae_dice(ae, mask) - 0.05


def test_3d_autoencoder_trains_and_scores(mask):
    ae, config = train_autoencoder(mask, kind="3d", steps=3, seed=0, device="cpu", voxel_size=VOXEL_MM,
                                   architecture={"size": 16, "spacing_mm": 12.0, "channels": [4, 8]},
                                   batch_size=2)
    assert config["kind"] == "3d"
    assert 0.0 <= ae_dice(ae, mask) <= 1.0
