"""What every section of settings shares: the rule for a value among named choices, and the
JSON form of a section."""

from __future__ import annotations

import dataclasses
from collections.abc import Container


def check_choice(owner: str, name: str, value, choices: Container) -> None:
    """Raise unless ``value`` is one of ``choices``.

    Raises:
        ValueError: ``"<owner>: <name> must be one of <choices>, got <value>"``.
    """
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {choices}, got {value!r}")


def to_dict(config) -> dict:
    """A JSON-ready dict of any config dataclass (nested ones included)."""
    return dataclasses.asdict(config)
