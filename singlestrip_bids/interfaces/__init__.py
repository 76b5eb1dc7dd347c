"""Nipype interfaces: thin wrappers, one per step, over the package's pure functions."""

import os

# Nipype would otherwise ask a web service for its latest version whenever an interface is built;
# this app sends nothing anywhere.
os.environ.setdefault("NIPYPE_NO_ET", "1")
