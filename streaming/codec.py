"""JSON encoding for everything leadstream produces (orjson; decimals as strings)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Encode to JSON bytes; datetimes as RFC 3339, decimals as exact strings.

    >>> from decimal import Decimal
    >>> dumps({"amount": Decimal("12.50")})
    b'{"amount":"12.50"}'
    """
    return orjson.dumps(value, default=_default)
