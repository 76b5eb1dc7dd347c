"""Random transforms shared by synthesis, QC-autoencoder training and TTA.

Every random transform is a ``Random<X>`` that samples its parameters from one
``numpy.random.Generator`` and returns the deterministic ``<X>`` holding them, a frozen dataclass:
``dataclasses.asdict`` gives a small JSON-able dict that replays bit for bit on the same device.
Dense random fields (deformation, noise, bias) are described by a ``seed`` and regenerated from it.
Ranges follow TorchIO (:func:`ranges.as_range`).

- ``ranges``: the one range parser and the seeding helpers;
- ``sampling``: resampling volumes at voxel positions, smooth random fields;
- ``spatial``: the synthesis deformation (voxels) and the rigid/scaling/flip matrices (mm) of QC;
- ``intensity``: class intensities, noise, blur, bias, gamma, intensity scaling;
- ``field_of_view``: thick slices, cropping, and clutter in the air around the head.
"""
