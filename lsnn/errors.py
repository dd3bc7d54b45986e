"""Every exception lsnn raises for bad input, in one hierarchy under `LsnnError`.

The CLI turns any `LsnnError` into one line on stderr and a non-zero exit; anything else is a bug.
"""
from __future__ import annotations

from typing import Any, Sequence


class LsnnError(Exception):
    """Base class for every user-facing error (bad input, bad file, rule violations)."""


class DatasetError(LsnnError, ValueError):
    """A dataset directory or file is missing or not in the expected format."""


class ArtifactError(LsnnError, ValueError):
    """A model artifact (model.pt) or compiled net (model.net) is unreadable, foreign or of another version.
    Always one line: a value quoted from the file (a tensor's repr, say) has its line breaks folded."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(LsnnError, ValueError):
    """A configuration file or option is invalid (names the file and key)."""


class IRError(LsnnError, ValueError):
    """A compiler IR node or graph is malformed (wrong shape, dangling edge, bad value)."""


class DesignRuleError(LsnnError):
    """The compiled network breaks one or more rules of the target; all violations at once.

    `violations` are `lsnn.compiler.rules.Violation`s (anything with `rule` and `message`)."""

    def __init__(self, violations: Sequence[Any], target: str = "") -> None:
        if not violations:
            raise ValueError("DesignRuleError needs at least one violation")
        self.violations: list[Any] = list(violations)
        self.target = target
        n = len(self.violations)
        where = f" for target '{target}'" if target else ""
        lines = [f"{n} design-rule violation{'s' if n != 1 else ''}{where}:"]
        lines += [f"  [{v.rule}] {v.message}" for v in self.violations]
        super().__init__("\n".join(lines))

    def rules(self) -> list[str]:
        """The rule ids in the order found (handy for tests and scripts)."""
        return [v.rule for v in self.violations]


class RuntimeGraphError(LsnnError, ValueError):
    """The graph cannot be run (not integer, not delay-balanced, out-of-range values)."""


class LavaUnavailableError(LsnnError):
    """The requested Lava backend cannot be used here (e.g. --hw without lava-loihi)."""


class LavaStalledError(LsnnError):
    """The Lava worker reported no progress for too long (Lava's runtime can deadlock under load)."""


# What Python raises when a loaded document holds a value of the wrong type or shape deep inside
# (a string where a list was expected, a 0-d tensor, ...): loaders turn these into one LsnnError line.
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, RuntimeError)
