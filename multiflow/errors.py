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


class Terminated(KeyboardInterrupt):
    """Raised by the command-line tools' SIGTERM handler, so a terminated run stops as Ctrl-C stops it."""


class _PartialRun:
    """What a sampling run that stopped after some batches hands back.

    ``result`` holds the designs of the finished batches (a ``DesignSet``, or ``None`` if they could
    not be assembled), ``done`` / ``total`` count designs, ``reason`` says why it stopped, and
    ``__cause__`` is the interruption or error itself. The command-line tools write ``result`` as a
    run folder whose run.json says ``"status": "interrupted: ..."``.
    """

    def __init__(self, reason: str, done: int, total: int, samples: list | None = None, result=None) -> None:
        super().__init__(f"sampling stopped after {done} of {total} designs ({reason})")
        self.reason, self.done, self.total = reason, done, total
        self.samples, self.result = samples, result


class SamplingInterrupted(_PartialRun, KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped sampling after some batches. A ``KeyboardInterrupt``, so code that
    stops on Ctrl-C still stops (``except Exception`` does not swallow it)."""


class SamplingFailed(_PartialRun, MultiflowError):
    """An error stopped sampling after some batches (``__cause__`` is the error)."""


PARTIAL_RUN_STOPS = (SamplingInterrupted, SamplingFailed)


def run_command(body: Callable[[], int], interrupted: str) -> int:
    """Run a command's body; bad input or an OS error prints ``error: ...`` and gives exit code 2, Ctrl-C
    prints ``interrupted`` and gives 130."""
    try:
        return body()
    except MultiflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # unreadable input, unwritable output
        print(f"error: {describe_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def describe_error(err: BaseException) -> str:
    """One line for a user: an OSError as ``<file>: <reason>``, our own errors as their message,
    anything else with its type name (it is likely a bug worth reporting)."""
    if isinstance(err, OSError):
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return f"{where}{err.strerror or err}"
    if isinstance(err, MultiflowError):
        return str(err)
    return f"{type(err).__name__}: {err}"
