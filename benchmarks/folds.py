"""The folds of the paper's experiment: one labeled image, an unlabeled set and a test set each.

- ``human``: one FreeSurfer T1w head labeled per fold; the other T1w images are the unlabeled set
  and, the data being few, also the in-distribution test set (transductive); T2w/FLAIR/PD images
  are the out-of-distribution test set. The rat is left out.
- ``mouse``: ``mouse_epi_sidneyp`` split BY ANIMAL (the two sessions of one mouse are near-duplicates)
  into five folds, of which the first ``n_folds`` are run. Fold f tests on the animals ``f, f + 5, f + 10``
  (sorted); one image of another animal
  is labeled (a different animal per fold, its mask one piece); self-training uses every other image
  of the remaining animals, the two without a mask included.
"""

from dataclasses import dataclass

from cases import Case, mouse_cases, mouse_unlabeled, shared_cases

DATASETS = ("human", "mouse")
MOUSE_FOLDS = 5


@dataclass(frozen=True)
class Fold:
    labeled: Case
    unlabeled: list  #: Cases; ``reference`` None for an image without a mask
    test: list  #: Cases, each with its ``test_set`` name in :func:`test_set`


def test_set(dataset: str, case: Case) -> str:
    if dataset == "mouse":
        return "held-out mice"
    return "T1w" if case.contrast == "T1w" else "other contrasts"


def make_folds(dataset: str, data_dir, n_folds: int, only=None) -> list:
    """The folds of ``dataset`` (see the module docstring); ``only``: keep unlabeled/test names with these."""
    if dataset == "mouse":
        return _mouse_folds(data_dir)[:n_folds]
    human = [case for case in shared_cases(data_dir) if case.dataset != "rat_t2rare_u2net"]
    kept = [case for case in human if not only or any(text in case.name for text in only)]
    t1w = [case for case in kept if case.contrast == "T1w"]
    other = [case for case in kept if case.contrast != "T1w"]
    folds = []
    for labeled in [case for case in human if case.dataset == "fs_training_t1"][:n_folds]:
        unlabeled = [case for case in t1w if case.name != labeled.name]
        folds.append(Fold(labeled, unlabeled, unlabeled + other))
    return folds


def _one_piece(case: Case) -> bool:
    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    mask = np.asanyarray(nib.load(case.reference).dataobj) > 0
    return ndimage.label(mask, structure=np.ones((3, 3, 3)))[1] == 1


def animal(name: str) -> str:
    """``mouse_epi_sidneyp/sub-04/ses-2`` → ``sub-04``."""
    return name.split("/")[1]


def _mouse_folds(data_dir, n_folds: int = MOUSE_FOLDS) -> list:
    cases = mouse_cases(data_dir)
    extra = [Case(f"mouse_epi_sidneyp/{path.parts[-4]}/{path.parts[-3]}", "mouse_epi_sidneyp", "T2starw", path, None)
             for path in mouse_unlabeled(data_dir)]
    animals = sorted({animal(case.name) for case in cases})
    if len(animals) < n_folds:  # the dataset is absent (or too small): main() says so
        return []
    folds = []
    for number in range(n_folds):
        held_out = set(animals[number::n_folds])
        pool = [case for case in cases if animal(case.name) not in held_out]
        candidates = [case for case in pool if _one_piece(case)]
        pool_animals = sorted({animal(case.name) for case in candidates})
        chosen = pool_animals[number % len(pool_animals)]
        labeled = next(case for case in candidates if animal(case.name) == chosen)
        unlabeled = [case for case in pool + extra
                     if animal(case.name) not in held_out | {chosen}]
        test = [case for case in cases if animal(case.name) in held_out]
        folds.append(Fold(labeled, sorted(unlabeled, key=lambda case: case.name), test))
    return folds
