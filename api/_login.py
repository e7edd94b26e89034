"""Browser login: where a request really comes from, whether it came over TLS, and a limit.

Behind a reverse proxy the peer of every request is the proxy. Its
``X-Forwarded-Proto`` and ``X-Forwarded-For`` headers are believed only when the
peer is one of ``api.trusted_proxies``; from anyone else they could be forged.
The session cookie is marked ``Secure`` when the request came over TLS, directly
or through a trusted proxy that says so. Failed logins are limited per client
address: after ``api.login_attempts`` failures within ``api.login_window_s``
seconds, ``/login`` answers 429 (with ``Retry-After``) without looking at the
token. The count is kept in the process; each worker process keeps its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection

from fastapi import Request


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def over_tls(request: Request, trusted: Collection[str]) -> bool:
    """Whether the request came over HTTPS: its own scheme, or a trusted proxy's word."""
    if request.url.scheme == "https":
        return True
    if _peer(request) not in trusted:
        return False
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https"


def client_address(request: Request, trusted: Collection[str]) -> str:
    """The client's address: the peer, or behind trusted proxies the last hop they name.

    ``X-Forwarded-For`` lists every hop, the nearest last; hops that are trusted
    proxies are skipped, and the first one that is not is the client.
    """
    address = _peer(request)
    if address not in trusted:
        return address
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return address


class LoginLimiter:
    """Counts failed logins per client address over a sliding window.

    Examples
    --------
    >>> now = [0.0]
    >>> limit = LoginLimiter(attempts=2, window_s=60, clock=lambda: now[0])
    >>> limit.retry_after("1.2.3.4"), limit.failed("1.2.3.4"), limit.failed("1.2.3.4")
    (None, None, None)
    >>> limit.retry_after("1.2.3.4"), limit.retry_after("5.6.7.8")
    (60, None)
    >>> now[0] = 61.0
    >>> limit.retry_after("1.2.3.4") is None
    True
    """

    def __init__(
        self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        with self._lock:
            times = self._recent(address)
            if len(times) < self.attempts:
                return None
            return max(1, int(times[0] + self.window_s - self.clock() + 0.999))

    def failed(self, address: str) -> None:
        """Count a failed login from ``address``."""
        with self._lock:
            if len(self._failures) > 10_000:  # forget the addresses whose failures expired
                cutoff = self.clock() - self.window_s
                self._failures = {a: t for a, t in self._failures.items() if t and t[-1] > cutoff}
            self._recent(address).append(self.clock())

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times
