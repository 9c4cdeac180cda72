"""What a statement returned: columns, rows as JSON values, and a table to read in a terminal."""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CELL_WIDTH = 60
"""Longest cell in the text table; longer values are cut with an ellipsis (the JSON keeps them whole)."""


@dataclass(frozen=True)
class Rows:
    """The result of one statement, at most `max_rows` rows of it."""

    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool
    rowcount: int | None = None

    @classmethod
    def build(
        cls, columns: list[str], fetched: Sequence[Sequence[Any]], max_rows: int, rowcount: int | None = None
    ) -> Rows:
        """`fetched` holds up to `max_rows + 1` rows; one more than `max_rows` means there were more."""
        columns = _unique(columns)
        rows = [dict(zip(columns, (json_value(v) for v in row), strict=True)) for row in fetched[:max_rows]]
        return cls(columns, rows, len(fetched) > max_rows, rowcount)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"columns": self.columns, "rows": self.rows, "truncated": self.truncated}
        if self.rowcount is not None:
            out["rowcount"] = self.rowcount
        return out


def _unique(columns: list[str]) -> list[str]:
    """Column names as row keys: a repeated name gets a suffix (`id`, `id_2`)."""
    seen: set[str] = set()
    out: list[str] = []
    for name in columns:
        key, n = name, 1
        while key in seen:
            n += 1
            key = f"{name}_{n}"
        seen.add(key)
        out.append(key)
    return out


def json_value(value: Any) -> Any:
    """A database value as JSON: bytes as base64, decimals as exact strings, times in ISO 8601."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | datetime.timedelta):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def _line(cells: Iterable[str], widths: list[int]) -> str:
    return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def render(rows: Rows) -> str:
    """A plain-text table of the rows, with a count line (and the row count of a write)."""
    lines: list[str] = []
    if rows.columns:
        body = [[_cell(r[c]) for c in rows.columns] for r in rows.rows]
        widths = [max([len(c), *(len(b[i]) for b in body)]) for i, c in enumerate(rows.columns)]
        lines.append(_line(rows.columns, widths))
        lines.append("-+-".join("-" * w for w in widths))
        lines.extend(_line(b, widths) for b in body)
        count = len(rows.rows)
        more = f", truncated: more rows exist (max_rows = {count})" if rows.truncated else ""
        lines.append(f"({count} row{'s' if count != 1 else ''}{more})")
    if rows.rowcount is not None:
        lines.append(f"{rows.rowcount} row{'s' if rows.rowcount != 1 else ''} affected")
    return "\n".join(lines) if lines else "OK"
