"""References between steps: `{{ now.text }}`, `{{ now.structured.items.0.name }}`, `{{ input.x }}`.

A reference names a source (a step id, or `input` for a route's inputs) and a
path into it. A step is seen as `{"text": ..., "structured": ...}`: `text` is
its text content, `structured` its `structuredContent`. A path segment that is
a number indexes a list.

An argument string that is exactly one reference takes the referenced JSON
value itself (a number stays a number, an object an object); any other string
has each reference replaced by its value as text (JSON for non-strings).

This module only reads and walks JSON; which references a plan may use is
decided in `gateway.patterns.validation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError

INPUT = "input"
"""The source name of a route's inputs; no step may take it as its id."""

_TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")
_WHOLE = re.compile(r"\s*\{\{([^{}]*)\}\}\s*")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


class UnresolvedReference(GatewayError):
    """A reference points at nothing (a missing key, an index past the end, a step with no text)."""


@dataclass(frozen=True)
class Reference:
    """One `{{ source.path }}` as written in a step's arguments."""

    source: str
    """A step id, or `input`."""
    path: tuple[str, ...]
    """The segments after the source (`("structured", "items", "0")`)."""

    def __str__(self) -> str:
        return "{{ " + ".".join((self.source, *self.path)) + " }}"


def parse(expression: str) -> Reference:
    """The reference inside `{{ ... }}`. Raises ValueError naming what is wrong with it."""
    text = expression.strip()
    if not text:
        raise ValueError("empty reference {{ }}")
    segments = text.split(".")
    bad = [s for s in segments if not _SEGMENT.fullmatch(s)]
    if bad:
        raise ValueError(f"malformed reference {{{{ {text} }}}}: bad segment {bad[0]!r}")
    return Reference(segments[0], tuple(segments[1:]))


def scan(value: Any) -> list[str]:
    """Every `{{ ... }}` expression in a JSON value (strings inside lists and objects), in order."""
    if isinstance(value, str):
        return [m.group(1) for m in _TEMPLATE.finditer(value)]
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in scan(v)]
    if isinstance(value, list | tuple):
        return [e for v in value for e in scan(v)]
    return []


def find(value: Any) -> list[Reference]:
    """Every well-formed reference in a JSON value; malformed ones are left to `scan` + `parse`."""
    found: list[Reference] = []
    for expression in scan(value):
        try:
            found.append(parse(expression))
        except ValueError:
            continue
    return found


def resolve(value: Any, sources: Mapping[str, Any]) -> Any:
    """`value` with every reference replaced, looking sources up in `sources`.

    :param sources: source name -> JSON value (`{"now": {"text": "..."}, "input": {...}}`).
    :raises UnresolvedReference: a reference points at nothing; the message names its path.
    """
    if isinstance(value, str):
        whole = _WHOLE.fullmatch(value)
        if whole:
            return lookup(_parse_or_fail(whole.group(1)), sources)
        return _TEMPLATE.sub(lambda m: _as_text(lookup(_parse_or_fail(m.group(1)), sources)), value)
    if isinstance(value, Mapping):
        return {k: resolve(v, sources) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, sources) for v in value]
    return value


def lookup(reference: Reference, sources: Mapping[str, Any]) -> Any:
    """The JSON value a reference points at. Raises UnresolvedReference naming the path."""
    if reference.source not in sources:
        raise UnresolvedReference(f"{reference}: no result named {reference.source!r}")
    current = sources[reference.source]
    walked = reference.source
    for segment in reference.path:
        if isinstance(current, Mapping) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit():
            if int(segment) >= len(current):
                raise UnresolvedReference(f"{reference}: {walked} has {len(current)} items, no item {segment}")
            current = current[int(segment)]
        elif isinstance(current, Mapping):
            raise UnresolvedReference(f"{reference}: {walked} has no {segment!r}")
        else:
            kind = "a list" if isinstance(current, list) else f"a {type(current).__name__}"
            raise UnresolvedReference(f"{reference}: {walked} is {kind}, it has no {segment!r}")
        walked = f"{walked}.{segment}"
    return current


def _parse_or_fail(expression: str) -> Reference:
    try:
        return parse(expression)
    except ValueError as exc:
        raise UnresolvedReference(str(exc)) from None


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
