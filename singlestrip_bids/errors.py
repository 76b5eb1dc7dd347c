"""Errors caused by the user's input: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """A mistake in the input or the options (bad path, bad image, bad label): never a traceback."""
