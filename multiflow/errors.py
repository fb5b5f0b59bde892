"""Named errors raised on bad input. Each message says what was received and what was expected.

:func:`run_command` is how the command-line entry points turn them into exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class MultiflowError(Exception):
    """Base class of every error this package raises on purpose."""


class BadStructureError(MultiflowError, ValueError):
    """A structure file or record cannot be used (corrupt, empty, no protein, NaN coordinates...)."""


class UnknownChainError(BadStructureError, KeyError):
    """A requested chain id is not present in the structure."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BadSequenceError(MultiflowError, ValueError):
    """A sequence contains letters outside the alphabet or is empty."""


class MissingWeightsError(MultiflowError, FileNotFoundError):
    """A model weight file is not where it was expected; the message says where to put it."""


class ConfigError(MultiflowError, ValueError):
    """A configuration value or command-line flag is invalid."""


def run_command(body: Callable[[], int], interrupted: str) -> int:
    """Run a command's body; bad input or an OS error prints ``error: ...`` and gives exit code 2, Ctrl-C
    prints ``interrupted`` and gives 130."""
    try:
        return body()
    except MultiflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # unreadable input, unwritable output
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
