"""Errors raised while managing the local services (`leadstream services`)."""

from __future__ import annotations

from streaming.exceptions import LeadstreamError


class ServiceError(LeadstreamError, RuntimeError):
    """A local service could not be started, checked or stopped."""


class BinaryNotFoundError(ServiceError, FileNotFoundError):
    """The executable of a service is not installed; the message says how to install it."""


class PortInUseError(ServiceError, OSError):
    """A service's port is held by a process that is not ours; the message names the setting."""


class ServiceStartError(ServiceError):
    """A service exited or did not become ready in time; the message quotes its log."""
