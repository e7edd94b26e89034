"""Errors raised by sinks."""

from __future__ import annotations

from streaming.exceptions import LeadstreamError


class SinkError(LeadstreamError):
    """A sink could not write a batch."""


class SinkBackpressureError(SinkError):
    """The destination asked to slow down; retry the same batch after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
