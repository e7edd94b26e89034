"""Single-flight: concurrent calls for the same key share one computation.

When sixteen users open the same dashboard at once, the cache is empty for all
of them; without this, each would run the same queries. The first caller of a
key computes; the others that arrive while it runs wait for its answer (or its
exception) instead of computing again. Nothing is kept after the call: storing
answers is the cache's job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class _Call(Generic[_T]):
    """One computation in flight and what it produced."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: _T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[_T]):
    """Shares the computation of a key among the callers that ask while it runs.

    Examples
    --------
    >>> flight: SingleFlight[int] = SingleFlight()
    >>> flight.do("k", lambda: 42)
    (42, False)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[_T]] = {}

    def do(self, key: str, compute: Callable[[], _T]) -> tuple[_T, bool]:
        """``compute()``'s value, and whether it came from another caller's computation."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.value, True  # type: ignore[return-value]  # set before done
        try:
            call.value = compute()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.value, False
