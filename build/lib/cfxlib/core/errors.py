"""The base of every error a user can fix (bad input, bad options, missing state).

The command line prints these as one clear message and exits non-zero, without a traceback.
Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix; the message says what to check next."""
