"""0/1 labels from the columns people export: ``1``/``0``, ``yes``/``no``, ``Won``/``Open``…

A label has two values. A column with more (a count such as ``visits``) is not
silently read as "non-zero is a conversion": the error asks which value counts
(``--positive VALUE``) or from which number on (``--positive '>=N'``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

_TRUE = frozenset({"1", "true", "t", "yes", "y", "converted", "won", "positive", "closed_won"})
_FALSE = frozenset({
    "0", "false", "f", "no", "n", "not_converted", "unconverted", "lost", "negative",
    "closed_lost",
})  # fmt: skip


def _word(value: Any) -> str:
    text = str(value).strip().lower()
    return text if _is_number(text) else re.sub(r"[\s\-]+", "_", text)


def is_missing(value: Any) -> bool:
    """None, NaN, NA, NaT or blank text."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def labels(values: Iterable[Any], column: str, positive: str | None = None) -> list[int]:
    """0/1 labels from numbers (non-zero is 1) or words (yes/no, true/false, converted…).

    With ``positive``, that value is 1 and every other is 0 (``2`` matches ``2.0``).
    Without it, a column of two distinct values where only one is a known word (``won``
    and ``open``) reads the other as its opposite; two numbers neither of which is 0
    (``1`` and ``2``) are an error asking which one is the conversion, except ``1`` and
    ``-1``, the usual pair of the ±1 convention.

    >>> labels([1, 0, "yes", "No", True, 2.0, "1.0"], "y")
    [1, 0, 1, 0, 1, 1, 1]
    >>> labels([1, -1, "-1", -1.0], "y")
    [1, 0, 0, 0]
    >>> labels(["Converted", "Not Converted"], "y"), labels(["Won", "Open"], "y")
    ([1, 0], [1, 0])
    >>> labels(["hot", "cold", "hot"], "y", positive="Hot")
    [1, 0, 1]

    A count is not a label; a threshold makes one:

    >>> labels([0, 3, 20, 1], "visits")
    Traceback (most recent call last):
    ValueError: label column 'visits' has 4 different numbers (0 to 20), not two: name the value that counts as a conversion with --positive VALUE, or a threshold with --positive '>=N'
    >>> labels([0, 3, 20, 1], "visits", positive=">=3")
    [0, 1, 1, 0]
    """
    values = list(values)
    if positive is not None and (bound := _THRESHOLD.match(positive)):
        return _at_least(values, column, positive, float(bound[2]), strict=bound[1] == ">")
    if positive is not None:
        wanted = _number_word(positive)
        words = [_number_word(v) for v in values]
        if wanted not in words:
            raise ValueError(
                f"label column {column!r} never has the value {positive!r}; "
                f"its values are {_some(values)}"
            )
        return [int(w == wanted) for w in words]
    seen = {_number_word(v) for v in values if not is_missing(v)}
    if seen == {"1", "-1"}:
        return [int(_number_word(v) == "1") for v in values]
    if len(seen) > 2 and all(_is_number(v) for v in seen):
        low, high = sorted(seen, key=float)[:: len(seen) - 1]
        raise ValueError(
            f"label column {column!r} has {len(seen)} different numbers ({low} to {high}), "
            "not two: name the value that counts as a conversion with --positive VALUE, "
            "or a threshold with --positive '>=N'"
        )
    if len(seen) == 2 and all(_is_number(v) for v in seen) and "0" not in seen:
        raise ValueError(
            f"label column {column!r} has the values {_some(values)}: name the one that "
            "counts as a conversion with --positive VALUE"
        )
    out: list[int | None] = [_known(v) for v in values]
    unknown = {_word(v) for v, o in zip(values, out, strict=True) if o is None}
    if unknown:
        known = {_word(v): o for v, o in zip(values, out, strict=True) if o is not None}
        if len(unknown) == 1 and len(set(known.values())) == 1:
            opposite = 1 - next(iter(known.values()))
            out = [opposite if o is None else o for o in out]
        else:
            raise ValueError(
                f"label column {column!r} has the values {_some(values)}: use 0/1, true/false "
                "or yes/no, or name the positive value with --positive VALUE"
            )
    return [int(o) for o in out if o is not None]


#: ``--positive '>=5'`` or ``'>4.5'``: a numeric column turned into a label by a threshold.
_THRESHOLD = re.compile(r"^\s*(>=|>)\s*([-+]?\d+(?:\.\d*)?)\s*$")


def _at_least(
    values: Sequence[Any], column: str, positive: str, bound: float, *, strict: bool
) -> list[int]:
    out = []
    for v in values:
        word = _number_word(v)
        if not _is_number(word):
            raise ValueError(
                f"label column {column!r} has the value {v!r}, not a number, so "
                f"--positive {positive!r} cannot apply to it"
            )
        out.append(int(float(word) > bound if strict else float(word) >= bound))
    if not any(out) or all(out):
        raise ValueError(
            f"with --positive {positive!r} every row of label column {column!r} is "
            f"{'a conversion' if out and all(out) else 'not a conversion'}: choose another threshold"
        )
    return out


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _number_word(v: Any) -> str:
    """A value's word, numbers written the same way whatever their type (``2``, ``2.0``)."""
    word = _word(v)
    if isinstance(v, bool) or not _is_number(word):
        return word
    number = float(word)
    return str(int(number)) if number.is_integer() else repr(number)


def _known(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float) and not is_missing(v):
        return int(v != 0)
    word = _word(v)
    if word in _TRUE:
        return 1
    if word in _FALSE:
        return 0
    try:
        number = float(word)
    except ValueError:
        return None
    return None if math.isnan(number) else int(number != 0)


def _some(values: Sequence[Any], most: int = 5) -> str:
    distinct = list(dict.fromkeys(map(str, values)))
    shown = ", ".join(repr(v) for v in distinct[:most])
    return shown + (f" and {len(distinct) - most} more" if len(distinct) > most else "")
