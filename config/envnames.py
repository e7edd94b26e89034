"""Environment variable names of the settings, derived from the settings model itself.

The README's settings table and the docker-compose test both read these, so a
field added to :mod:`config.settings` shows up in both without a second list to
keep in sync. Names follow pydantic-settings: the model's ``env_prefix``, then
one name per nesting level joined by ``env_nested_delimiter``, upper-cased
unless the model is case-sensitive.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python
from pydantic_settings import BaseSettings

from config.settings import Settings

__all__ = ["REQUIRED", "UNSET", "settings_env_names", "settings_table"]

#: Shown as the default of secrets (whatever their default) and of fields that default to None.
UNSET = "(unset)"
#: Shown as the default of fields that have none.
REQUIRED = "(required)"


@dataclass(frozen=True)
class _Leaf:
    env: str
    field: FieldInfo
    default: Any


def settings_env_names(model: type[BaseSettings] = Settings) -> set[str]:
    """Every environment variable that sets one leaf field of ``model``.

    A nested section can also be given whole, as JSON under its own name
    (``LEADSTREAM_KAFKA``); those section names are not listed, only the
    leaves that a deployment is expected to set one by one.

    Examples
    --------
    >>> names = settings_env_names()
    >>> sorted(n for n in names if n.startswith("LEADSTREAM_METRICS__"))
    ['LEADSTREAM_METRICS__HOST', 'LEADSTREAM_METRICS__PORT']
    >>> "LEADSTREAM_KAFKA__TOPICS__LEADS" in names, "LEADSTREAM_KAFKA" in names
    (True, False)

    The names come from the model's own configuration:

    >>> from pydantic_settings import SettingsConfigDict
    >>> class Db(BaseModel):
    ...     url: str = "sqlite://"
    >>> class App(BaseSettings):
    ...     model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__")
    ...     db: Db = Db()
    ...     debug: bool = False
    >>> App.model_rebuild()  # resolves "Db": doctests here inherit deferred annotations
    True
    >>> sorted(settings_env_names(App))
    ['APP_DB__URL', 'APP_DEBUG']
    """
    return {leaf.env for leaf in _walk(model)}


def settings_table(model: type[BaseSettings] = Settings) -> list[tuple[str, str, str]]:
    """One ``(env var, default as text, description)`` row per leaf field, in declaration order.

    Defaults are written the way the environment takes them (JSON for lists,
    ``true``/``false`` for booleans). A secret's default is never shown, only
    ``(unset)``; so is a default of None.

    Examples
    --------
    >>> rows = {env: (default, text) for env, default, text in settings_table()}
    >>> rows["LEADSTREAM_METRICS__PORT"]
    ('9464', '0 turns the endpoint off')
    >>> rows["LEADSTREAM_PII_HASH_KEY"][0], rows["LEADSTREAM_CLICKHOUSE__DSN"][0]
    ('(unset)', '(unset)')
    >>> rows["LEADSTREAM_PII_FIELDS"][0]
    '["email", "phone", "first_name", "last_name", "name", "ip_address"]'
    """
    return [(leaf.env, _default_text(leaf), leaf.field.description or "") for leaf in _walk(model)]


def _walk(model: type[BaseSettings]) -> Iterator[_Leaf]:
    if not model.__pydantic_complete__:
        # An unresolved forward reference would pass for a leaf and hide a whole section.
        raise ValueError(f"{model.__name__} is not fully defined; call its model_rebuild() first")
    config = model.model_config
    upper = not config.get("case_sensitive", False)
    prefix = config.get("env_prefix", "")
    delimiter = config.get("env_nested_delimiter") or ""
    yield from _leaves(model, prefix.upper() if upper else prefix, delimiter, upper, None)


def _leaves(
    model: type[BaseModel], prefix: str, delimiter: str, upper: bool, defaults: BaseModel | None
) -> Iterator[_Leaf]:
    for name, field in model.model_fields.items():
        if field.alias is not None or field.validation_alias is not None:
            # pydantic-settings drops the prefix for aliased fields; nothing here uses
            # aliases, so refuse rather than print a name that would not work.
            raise ValueError(
                f"{model.__name__}.{name} has an alias, which settings_env_names does not support"
            )
        env = prefix + (name.upper() if upper else name)
        default = getattr(defaults, name) if defaults is not None else _declared_default(field)
        section = _section_type(field.annotation)
        if section is None or not delimiter:
            # Without a nested delimiter a section can only be set whole, as JSON.
            yield _Leaf(env, field, default)
        else:
            nested = default if isinstance(default, section) else None
            yield from _leaves(section, env + delimiter, delimiter, upper, nested)


def _declared_default(field: FieldInfo) -> Any:
    try:
        return field.get_default(call_default_factory=True)
    except ValueError:
        return PydanticUndefined  # a factory that needs the other fields: no single default


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The model class of a nested section (``Model`` or ``Model | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(models) == 1:
            return _section_type(models[0])
    return None


def _is_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def _default_text(leaf: _Leaf) -> str:
    if _is_secret(leaf.field.annotation):
        return UNSET
    if leaf.default is PydanticUndefined:
        return REQUIRED
    if leaf.default is None:
        return UNSET
    value = to_jsonable_python(leaf.default)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def settings_markdown(model: type[BaseSettings] = Settings) -> str:
    """The settings table as Markdown, as the README shows it.

    >>> settings_markdown().splitlines()[0]
    '| variable | default | meaning |'
    """
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, default, description in settings_table(model):
        shown = default.replace("|", "\\|")
        lines.append(f"| `{name}` | `{shown}` | {description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_markdown())
