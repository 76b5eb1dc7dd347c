"""Nipype workflows (``init_<x>_wf``) built from the interfaces of ``singlestrip_bids.interfaces``."""

# Imported first for its side effect: it switches Nipype's online version check off before the
# workflow modules import Nipype.
import singlestrip_bids.interfaces  # noqa: F401
