"""Named errors raised on bad input. Each message says what was received and what was expected."""


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
