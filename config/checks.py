"""What is wrong with the settings, said so a person can fix it.

pydantic names a bad value by its place in the model (``kafka.partitions``);
a person set ``LEADSTREAM_KAFKA__PARTITIONS`` somewhere. These functions name
the variable, where its value came from and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from config._sources import is_placeholder, is_secret
from config.settings import HOW_TO_MAKE_A_KEY, Settings

_PREFIX = "LEADSTREAM_"


def env_name(loc: tuple[Any, ...]) -> str:
    """The environment variable of a pydantic error location.

    >>> env_name(("kafka", "partitions"))
    'LEADSTREAM_KAFKA__PARTITIONS'
    """
    return _PREFIX + "__".join(str(part) for part in loc).upper()


def _source(name: str, loc: tuple[Any, ...], config_file: Path | None) -> str:
    """Where the value of ``name`` came from: the first source, by priority, that has it."""
    section = name.split("__")[0]
    environ = {k.upper() for k in os.environ}
    if name in environ:
        return "from the environment"
    if section != name and section in environ:
        return f"from the environment, in {section}"
    dotenv = Path(".env")
    if dotenv.is_file() and name in {k.upper() for k in dotenv_values(dotenv)}:
        return f"from {dotenv.resolve()}"
    toml = config_file or os.environ.get("LEADSTREAM_CONFIG_FILE")
    if toml and _in_toml(Path(toml), loc):
        return f"from {toml}"
    secrets = os.environ.get("LEADSTREAM_SECRETS_DIR")
    if secrets and (Path(secrets) / name).is_file():
        return f"from {Path(secrets) / name}"
    return "the default" if not loc else "from the settings"


def _in_toml(path: Path, loc: tuple[Any, ...]) -> bool:
    try:
        node: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    for part in loc:
        if not isinstance(node, dict) or str(part) not in node:
            return False
        node = node[str(part)]
    return True


def _is_secret_loc(loc: tuple[Any, ...]) -> bool:
    model: type[BaseModel] | None = Settings
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return False
        if is_secret(field):
            return True
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return False


def describe_settings_error(exc: ValidationError, config_file: Path | None = None) -> list[str]:
    """One line per bad setting: its variable, the value (unless secret), its source, the fix.

    >>> try:
    ...     Settings(kafka={"partitions": "four"})
    ... except ValidationError as exc:
    ...     print(describe_settings_error(exc)[0])
    LEADSTREAM_KAFKA__PARTITIONS='four' (from the settings): expected a valid integer, unable to parse string as an integer
    """
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not isinstance(p, int))
        name = env_name(loc) if loc else "settings"
        shown = "" if _is_secret_loc(loc) or not loc else f"={err.get('input')!r}"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "no such setting (see the settings table in the README)"
        else:
            message = message.replace("Input should be", "expected")
        lines.append(f"{name}{shown} ({_source(name, loc, config_file)}): {message}")
    return lines


def placeholder_secrets(settings: Settings) -> list[str]:
    """One line per secret that still holds a public placeholder, saying how to make a real one.

    >>> from pydantic import SecretStr
    >>> s = Settings(api={"token": SecretStr("change-me-dashboard-api-token")})
    >>> print(*placeholder_secrets(s))  # doctest: +ELLIPSIS
    LEADSTREAM_API__TOKEN is the public placeholder from .env.example; make one with ...
    """
    found = []
    for loc, value in _secret_values(settings, ()):
        if is_placeholder(value):
            found.append(
                f"{env_name(loc)} is the public placeholder from .env.example; {HOW_TO_MAKE_A_KEY}"
            )
    if settings.clickhouse.dsn and is_placeholder(settings.clickhouse.dsn):
        found.append(
            "LEADSTREAM_CLICKHOUSE__DSN holds the public placeholder password from "
            f".env.example; {HOW_TO_MAKE_A_KEY}"
        )
    return found


def _secret_values(model: BaseModel, loc: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if is_secret(field) and value is not None:
            out.append(((*loc, name), value.get_secret_value()))
        elif isinstance(value, BaseModel):
            out += _secret_values(value, (*loc, name))
    return out
