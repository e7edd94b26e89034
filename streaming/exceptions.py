"""The root of every leadstream exception."""

from __future__ import annotations


class LeadstreamError(Exception):
    """Base class of every error leadstream raises on purpose."""
