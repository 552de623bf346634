"""``section.key=value`` settings on top of a preset (the command line's ``--set`` and
``--config FILE``): every value is converted to, or checked against, the annotated type of its
dataclass field, and the section's own ``__post_init__`` rules still apply."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import types
import typing
from collections.abc import Iterable, Mapping
from os import PathLike

from tf_bimodal.config.experiment import ExperimentConfig

OVERRIDE_FORMAT = "section.key=value"

Overrides = typing.Union[Iterable[typing.Union[str, tuple[str, str, object]]], Mapping[str, Mapping[str, object]], None]
"""What :func:`apply_overrides` takes: ``section.key=value`` strings and ``(section, key, value)``
triples, or a ``{section: {key: value}}`` mapping."""

_TRUE_WORDS = ("true", "1", "yes")
_FALSE_WORDS = ("false", "0", "no")
_NONE_WORD = "none"


class _Mismatch(Exception):
    """A value that does not fit a field's type (turned into a ``ValueError`` by the caller)."""


@functools.lru_cache(maxsize=None)
def _section_classes() -> dict:
    """``{section: dataclass}`` for the fields of ``ExperimentConfig`` that hold a dataclass."""
    hints = typing.get_type_hints(ExperimentConfig)
    return {
        field.name: hints[field.name]
        for field in dataclasses.fields(ExperimentConfig)
        if dataclasses.is_dataclass(hints[field.name])
    }


@functools.lru_cache(maxsize=None)
def _field_types(cls) -> dict:
    """``{key: resolved type}`` of a section dataclass's fields, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def override_keys() -> dict[str, tuple[str, ...]]:
    """Every section an override may name and its keys (for help texts and error messages)."""
    return {section: tuple(_field_types(cls)) for section, cls in _section_classes().items()}


def _split_optional(hint) -> tuple[object, bool]:
    """``(type, optional)``: ``int | None`` gives ``(int, True)``, ``int`` gives ``(int, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = tuple(arg for arg in args if arg is not type(None))
        if len(rest) != 1:
            raise TypeError(f"unsupported field type {hint}")
        return rest[0], len(rest) < len(args)
    return hint, False


def _is_tuple(base) -> bool:
    return typing.get_origin(base) is tuple


def _element_types(base, count: int) -> tuple:
    """The element types of a tuple type for ``count`` items; ``_Mismatch`` on a wrong count."""
    args = typing.get_args(base)
    if len(args) == 2 and args[1] is Ellipsis:
        return (args[0],) * count
    if count != len(args):
        raise _Mismatch
    return args


def _describe(hint) -> str:
    """A type in words, for error messages."""
    base, optional = _split_optional(hint)
    if _is_tuple(base):
        args = typing.get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            example = {int: "(8,16,32)", float: "(0.01,0.001)", str: "(bce,dice)"}.get(args[0], "(a,b)")
            text = f"a tuple of {args[0].__name__} such as {example} or {example[1:-1]}"
        else:
            names = " / ".join(sorted({arg.__name__ for arg in args}))
            text = f"a tuple of {len(args)} {names} such as ({','.join(['8'] * len(args))})"
    elif base is bool:
        text = "a bool (true/false/1/0/yes/no)"
    elif base is float:
        text = "a finite float"
    elif base in (int, str):
        text = f"{'an' if base is int else 'a'} {base.__name__}"
    else:
        text = str(base)
    return f"{text} or none" if optional else text


def _check_supported(section: str, key: str, hint) -> None:
    base, _ = _split_optional(hint)
    inner = typing.get_args(base) if _is_tuple(base) else (base,)
    if not all(t in (bool, int, float, str) or t is Ellipsis for t in inner):
        raise ValueError(f"override {section}.{key}: a field of type {hint} cannot be set by an override")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _scalar_from_text(text: str, base):
    if base is bool:
        lowered = text.lower()
        if lowered in _TRUE_WORDS:
            return True
        if lowered in _FALSE_WORDS:
            return False
        raise _Mismatch
    if base is int:
        try:
            return int(text)
        except ValueError:
            raise _Mismatch from None
    if base is float:
        try:
            value = float(text)
        except ValueError:
            raise _Mismatch from None
        if not math.isfinite(value):
            raise _Mismatch
        return value
    if base is str:
        return _unquote(text)
    raise _Mismatch


def _from_text(text: str, hint):
    """Convert the text of an override to the type ``hint`` (``_Mismatch`` when it cannot)."""
    base, optional = _split_optional(hint)
    text = text.strip()
    if optional and text.lower() == _NONE_WORD:
        return None
    if not _is_tuple(base):
        return _scalar_from_text(text, base)
    if len(text) >= 2 and (text[0], text[-1]) in (("(", ")"), ("[", "]")):
        text = text[1:-1].strip()
    items = [item.strip() for item in text.split(",")] if text else []
    if len(items) > 1 and items[-1] == "":
        items.pop()  # a trailing comma, as in (8,)
    if any(item == "" for item in items):
        raise _Mismatch
    return tuple(_scalar_from_text(item, t) for item, t in zip(items, _element_types(base, len(items))))


def _scalar_from_value(value, base):
    if base is bool and isinstance(value, bool):
        return value
    if base is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if base is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    if base is str and isinstance(value, str):
        return value
    raise _Mismatch


def _from_value(value, hint):
    """Check an already typed value (from TOML / JSON / Python) against ``hint``: an int is a
    fine float, a list a fine tuple; ``None`` or ``"none"`` only for an optional field."""
    base, optional = _split_optional(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() == _NONE_WORD):
        if optional:
            return None
        raise _Mismatch
    if not _is_tuple(base):
        return _scalar_from_value(value, base)
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    return tuple(_scalar_from_value(item, t) for item, t in zip(value, _element_types(base, len(value))))


def _field_type(section: str, key: str, named: str):
    """The annotated type of ``section.key``; a ``ValueError`` naming ``named`` when unknown."""
    sections = _section_classes()
    if section not in sections:
        raise ValueError(
            f"override {named}: unknown section {section!r}; the sections are {', '.join(sections)}"
        )
    types_ = _field_types(sections[section])
    if key not in types_:
        raise ValueError(
            f"override {named}: section {section!r} has no key {key!r}; its keys are {', '.join(types_)}"
        )
    _check_supported(section, key, types_[key])
    return types_[key]


def parse_override(text: str) -> tuple[str, str, object]:
    """Parse one ``section.key=value`` override into ``(section, key, value)``.

    ``section`` is a field of ``ExperimentConfig`` holding settings (``segmentation``,
    ``classification``, ``grid_search``, ``runtime``) and ``key`` a field of its dataclass.
    The value is converted to the field's annotated type: ``int``; ``float`` (finite);
    ``bool`` (``true``/``false``/``1``/``0``/``yes``/``no``, any case); ``str`` (as written,
    one pair of surrounding quotes removed); ``none`` for an optional field; tuples as
    ``(8,16,32)``, ``[8,16,32]`` or ``8,16,32`` (``(8,)`` for one item, ``()`` for none).

    Examples: ``segmentation.epochs=5``, ``classification.learning_rate=1e-2``,
    ``segmentation.stackwise_num_filters=(8,16,32)``, ``segmentation.image_size=none``,
    ``classification.backbone_weights=/data/vgg16.weights.h5``, ``runtime.tensorboard=false``.

    Raises:
        ValueError: no ``=`` or no ``section.key``; an unknown section or key (the message
            lists the allowed ones); a value that does not convert (the message gives the
            expected type and the value received).
    """
    if not isinstance(text, str):
        raise ValueError(f"override: expected a {OVERRIDE_FORMAT!r} string, got {text!r}")
    target, equals, raw = text.partition("=")
    parts = target.strip().split(".")
    if not equals or len(parts) != 2 or not all(parts):
        raise ValueError(
            f"override {text!r}: expected {OVERRIDE_FORMAT} (e.g. segmentation.epochs=5) with a section among "
            f"{', '.join(_section_classes())}"
        )
    section, key = parts
    hint = _field_type(section, key, repr(text))
    try:
        value = _from_text(raw, hint)
    except _Mismatch:
        raise ValueError(
            f"override {text!r}: {section}.{key} expects {_describe(hint)}, got {raw.strip()!r}"
        ) from None
    return section, key, value


def check_override(section: str, key: str, value) -> tuple[str, str, object]:
    """Check an already typed override (from a file or from Python) and return it normalised
    (``(section, key, value)`` with lists as tuples and ints as floats where a float is due).

    Raises:
        ValueError: an unknown section or key, or a value of the wrong type (a ``str`` where
            an ``int`` is expected, a ``float`` where an ``int`` is, ...), naming the override.
    """
    named = f"{section}.{key}={value!r}"
    hint = _field_type(section, key, named)
    try:
        return section, key, _from_value(value, hint)
    except _Mismatch:
        raise ValueError(
            f"override {named}: {section}.{key} expects {_describe(hint)}, got {value!r} "
            f"({type(value).__name__})"
        ) from None


def _format_value(value) -> str:
    if value is None:
        return _NONE_WORD
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        inner = ",".join(_format_value(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_override(section: str, key: str, value) -> str:
    """The normalised ``section.key=value`` text of an override; :func:`parse_override` reads
    it back to the same value (e.g. ``segmentation.stackwise_num_filters=(8,16,32)``)."""
    return f"{section}.{key}={_format_value(value)}"


def normalize_overrides(overrides: Overrides) -> list[tuple[str, str, object]]:
    """Every override of ``overrides`` as a checked ``(section, key, value)`` triple, in order.

    Args:
        overrides: an iterable of ``section.key=value`` strings (:func:`parse_override`) and
            ``(section, key, value)`` triples (:func:`check_override`), or a mapping
            ``{section: {key: value}}`` (as read by :func:`load_overrides_file`), or None.

    Raises:
        ValueError: as :func:`parse_override` and :func:`check_override`; an item that is
            neither a string nor a triple.
    """
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(overrides, Mapping):
        return _mapping_overrides(overrides, "overrides")
    triples = []
    for item in overrides:
        if isinstance(item, str):
            triples.append(parse_override(item))
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            triples.append(check_override(*item))
        else:
            raise ValueError(
                f"overrides: each item must be a {OVERRIDE_FORMAT!r} string or a (section, key, value) "
                f"triple, got {item!r}"
            )
    return triples


def _mapping_overrides(data: Mapping, where: str) -> list[tuple[str, str, object]]:
    """Triples of a ``{section: {key: value}}`` mapping (``{"section.key": value}`` too)."""
    triples = []
    for section, keys in data.items():
        if isinstance(keys, Mapping):
            triples.extend(check_override(section, key, value) for key, value in keys.items())
        elif isinstance(section, str) and section.count(".") == 1:
            triples.append(check_override(*section.split("."), keys))
        else:
            raise ValueError(
                f"{where}: {section!r} must be a section holding keys (e.g. [segmentation] with "
                f"epochs = 5); the sections are {', '.join(_section_classes())}, got {keys!r}"
            )
    return triples


def _read_toml(text: str, path: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError(
                f"overrides file {path}: reading TOML needs Python >= 3.11 (tomllib) or the tomli "
                "package; write the same sections as a .json file instead"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"overrides file {path}: not valid TOML: {error}") from None


def load_overrides_file(path: str | PathLike) -> list[tuple[str, str, object]]:
    """Read overrides from a TOML (``.toml``) or JSON (``.json``) file of sections.

    The file holds one table per section, its keys being fields of that section's dataclass::

        [segmentation]
        epochs = 5
        stackwise_num_filters = [8, 16, 32]

        [classification]
        backbone_weights = "/data/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
        require_backbone_weights = true

    or ``{"segmentation": {"epochs": 5}, ...}`` in JSON (``null`` for None; TOML, which has
    no null, spells it ``"none"``, accepted for optional fields only). The values are
    checked against the fields' types (:func:`check_override`): an int where a float is
    expected is fine, a string where an int is expected is an error.

    Returns:
        The checked ``(section, key, value)`` triples in file order, for
        :func:`apply_overrides` (which also takes them mixed with ``section.key=value``
        strings, e.g. ``load_overrides_file(path) + ["segmentation.epochs=3"]``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: another suffix than ``.toml`` / ``.json``; a file that does not parse;
            TOML on Python 3.10 without ``tomli``; an unknown section or key or a value of
            the wrong type (the message names the file and the override).
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"overrides file {path}: must end in .toml or .json, got {suffix or 'no suffix'!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"overrides file {path}: no such file")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if suffix == ".toml":
        data = _read_toml(text, path)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"overrides file {path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"overrides file {path}: must hold sections ({{\"segmentation\": {{...}}}}), got {data!r}")
    try:
        return _mapping_overrides(data, f"overrides file {path}")
    except ValueError as error:
        message = str(error)
        if not message.startswith(f"overrides file {path}"):
            message = f"overrides file {path}: {message}"
        raise ValueError(message) from None


def _replace_section(config, changes: dict):
    """``dataclasses.replace`` of a section, its ``__post_init__`` rules included."""
    return dataclasses.replace(config, **changes)


def apply_overrides(experiment: ExperimentConfig, overrides: Overrides) -> ExperimentConfig:
    """A new ``ExperimentConfig``: ``experiment`` with ``overrides`` replacing fields of its sections.

    All overrides of one section are applied together (so ``segmentation.image_size`` and
    ``segmentation.stackwise_num_filters`` may change in step), a later override of the same
    key winning; each section's ``__post_init__`` rules then run as for any config. The
    applied overrides, normalised (:func:`format_override`), are added to
    ``experiment.overrides`` (one entry per key, the latest value). Overrides change the
    section configs, and the runs' cache keys hash those configs, so results made with other
    settings are never reused.

    Args:
        experiment: the settings to start from (a preset's, :func:`resolve_experiment`).
        overrides: ``section.key=value`` strings and ``(section, key, value)`` triples, or a
            ``{section: {key: value}}`` mapping (:func:`normalize_overrides`).

    Raises:
        ValueError: a bad override (:func:`parse_override`, :func:`check_override`), or one
            that breaks a section's rule: the section's own message, prefixed with the
            override(s) at fault, e.g. ``override segmentation.batch_size=0:
            SegmentationConfig: batch_size, ... must be >= 1``.
    """
    triples = normalize_overrides(overrides)
    if not triples:
        return experiment
    changes: dict[str, dict[str, object]] = {}
    for section, key, value in triples:
        changes.setdefault(section, {})[key] = value
    replaced = {}
    for section, fields in changes.items():
        base = getattr(experiment, section)
        try:
            replaced[section] = _replace_section(base, fields)
        except ValueError as error:
            at_fault = [key for key in fields if _breaks(base, {key: fields[key]})] or list(fields)
            named = ", ".join(format_override(section, key, fields[key]) for key in at_fault)
            raise ValueError(f"override {named}: {error}") from error
    recorded = {item.split("=", 1)[0]: item for item in experiment.overrides}
    for section, key, value in triples:
        recorded.pop(f"{section}.{key}", None)
        recorded[f"{section}.{key}"] = format_override(section, key, value)
    return dataclasses.replace(experiment, **replaced, overrides=tuple(recorded.values()))


def _breaks(config, changes: dict) -> bool:
    try:
        _replace_section(config, changes)
    except ValueError:
        return True
    return False
