"""Settings sources: the `.env` file without secrets, and what a placeholder secret looks like.

DESIGN.md reads secrets (the PII key, tokens, passwords) only from the
environment or a secrets directory. pydantic-settings' `.env` source would
read them too, so a copied ``.env.example`` put its public placeholder key to
work without a word. The source here drops every secret field from `.env`.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

#: Every placeholder in ``.env.example`` and the docs contains this.
PLACEHOLDER_MARK = "change-me"


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is one of the public placeholders (``.env.example``, the docs).

    >>> is_placeholder("change-me-pii-hash-key-at-least-16-characters")
    True
    >>> is_placeholder("Jq3v0yD9x0Fq4bS8YtM2kQ")
    False
    """
    return PLACEHOLDER_MARK in value.lower()


def is_secret(field: FieldInfo) -> bool:
    """Whether a field holds a secret (``SecretStr``, optional or not)."""
    ann = field.annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return SecretStr in typing.get_args(ann)
    return ann is SecretStr


def _section(field: FieldInfo) -> type[BaseModel] | None:
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def drop_secrets(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the values of ``model``'s secret fields, at any depth.

    >>> from config.settings import Settings
    >>> drop_secrets(Settings, {"pii_hash_key": "k" * 16, "api": {"token": "t", "port": 1}})
    {'api': {'port': 1}}
    """
    out: dict[str, Any] = {}
    for name, value in data.items():
        field = model.model_fields.get(name)
        if field is not None and is_secret(field):
            continue
        section = _section(field) if field is not None else None
        out[name] = drop_secrets(section, value) if section and isinstance(value, dict) else value
    return out


class SecretlessDotEnv(PydanticBaseSettingsSource):
    """Another source's values (the `.env` file's) without the secret fields."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ below returns the inner source's values, filtered.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return drop_secrets(self.settings_cls, self.inner())
