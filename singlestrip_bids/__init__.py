"""singlestrip_bids: learn MRI skull-stripping from one labeled example, then strip a BIDS dataset."""

__version__ = "0.1.0"
