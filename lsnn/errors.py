"""The one exception family the CLI turns into a single line and a non-zero exit."""
from __future__ import annotations


class LsnnError(Exception):
    """Base class for every user-facing error (bad input, bad file, rule violations)."""


class DatasetError(LsnnError, ValueError):
    """A dataset directory or file is missing or not in the expected format."""


class ArtifactError(LsnnError, ValueError):
    """A model artifact (model.pt) or compiled net (model.net) is unreadable, foreign or of another version."""


class ConfigError(LsnnError, ValueError):
    """A configuration file or option is invalid (names the file and key)."""
