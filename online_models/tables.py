"""Labelled tables as people export them: reading, column kinds, labels, time order, features.

Real exports are untidy: semicolon or tab separators, Windows encodings, a label
written as ``Converted``/``Not Converted``, numbers written as ``$1,200`` or
``12%`` with a ``?`` or ``unknown`` among them, dates written day first. Every
function here either reads such a value or fails with an error naming the fix;
none silently turns it into something else.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import math
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple, cast

import pandas as pd

from online_models.labels import is_missing, labels

_OPENERS: dict[str, Callable[..., IO[str]]] = {
    ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open,
}  # fmt: skip
_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
_CURRENCY_OR_PERCENT = re.compile(r"^[$€£¥]\s*|\s*%$")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?")
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")
#: A mostly numeric column keeps this many distinct words (``unknown``, ``n/a``, ``?``)
#: as indicators of their own; with more, it is a categorical column.
MAX_WORDS_IN_NUMBERS = 10


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (any of ``, ; tab |``, UTF-8 or a Windows encoding, optionally .gz/.bz2/.xz),
    Parquet file or Excel workbook (its first sheet), told apart by content, not by name.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_bytes("id;job;y\\n1;administración;yes\\n".encode("cp1252"))
    >>> read_table(p).to_dict("records")
    [{'id': 1, 'job': 'administración', 'y': 'yes'}]
    """
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return pd.read_parquet(path)
    if magic == b"PK\x03\x04":  # a zip: an Excel workbook, or a zipped CSV
        if "xl/workbook.xml" in zipfile.ZipFile(path).namelist():
            return pd.read_excel(path, engine="openpyxl")
        raise ValueError(f"{path} is a zip archive: unzip it and give the CSV inside")
    suffixes = [s.lower() for s in path.suffixes]
    opener = _OPENERS.get(suffixes[-1] if suffixes else "", cast(Callable[..., IO[str]], open))
    for encoding in _ENCODINGS:
        try:
            with opener(path, "rt", encoding=encoding, newline="") as f:
                sep = _separator(f)
            return pd.read_csv(path, sep=sep, encoding=encoding, low_memory=False)
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError as exc:
            raise ValueError(f"{path} is empty: expected a header line and rows") from exc
        except pd.errors.ParserError as exc:
            raise ValueError(_csv_problem(path, sep, str(exc))) from exc
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _csv_problem(path: Path, sep: str, message: str) -> str:
    """pandas' tokenizer error said with the file, the line and what was expected.

    >>> _csv_problem(Path("a.csv"), ",", "Error tokenizing data. C error: Expected 3 fields in line 5, saw 4")
    "a.csv line 5: 4 values where the header has 3 (separator ','); quote values that contain the separator"
    """
    found = _FIELDS.search(message)
    if found:
        want, line, saw = found.groups()
        return (
            f"{path} line {line}: {saw} values where the header has {want} (separator "
            f"{sep!r}); quote values that contain the separator"
        )
    detail = message.removeprefix("Error tokenizing data. ").removeprefix("C error: ")
    return f"{path} is not a CSV file that can be read: {detail.strip()}"


def _separator(f: IO[str]) -> str:
    sample = f.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:  # one column, or too irregular to tell: the header decides
        header = sample.split("\n", 1)[0]
        return max(",;\t|", key=header.count)


#: Names that say "identifier": ``id``, ``lead_id``, ``Prospect ID``, ``customerID``,
#: ``uuid``, ``Lead Number``, ``record_key``.
_ID_WORD = re.compile(r"(?:^|[_\s.\-])(?:id|uuid|guid|key|number|no)$", re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z](?:Id|ID)$")
# Unix times (seconds) of 2000-01-01 and 2100-01-01: a numeric time column in this range
# (or in milliseconds) is read as dates.
_EPOCH_FROM, _EPOCH_TO = 946_684_800, 4_102_444_800
# A row index written with the table (pandas names a blank header ``Unnamed: 0``).
_ROW_INDEX = re.compile(r"^(?:unnamed: \d+|index|row|#|)$", re.IGNORECASE)


def is_id(name: str, values: pd.Series) -> bool:
    """A column named like an identifier whose values are all given and all different.

    Such a column cannot carry over to new leads (a number only counts up with time);
    ``account_id`` shared by several leads is not one.

    >>> is_id("Lead Number", pd.Series([660737, 660728, 660727]))
    True
    >>> is_id("account_id", pd.Series(["a", "b", "a"])), is_id("visits", pd.Series([1, 2, 3]))
    (False, False)
    >>> is_id("Unnamed: 0", pd.Series([0, 1, 2]))
    True
    """
    name = name.strip()
    named = _ID_WORD.search(name) or _ID_CAMEL.search(name) or _ROW_INDEX.match(name)
    if not named or values.isna().any():
        return False
    return bool(values.nunique() == len(values))


@dataclass(frozen=True)
class TableSchema:
    """Which columns are what, decided from the data."""

    label: str
    time: str
    ids: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    #: Date columns, as ages in days at the row's time (only with a date as the time column).
    dates: tuple[str, ...] = ()


def numbers(values: pd.Series) -> pd.Series:
    """The values as floats (NaN where not a number), reading ``$1,200``, ``€ 5`` and ``12%`` too.

    A column with no ``.`` in it and a decimal comma that cannot be a thousands separator
    (``3,5``) is read with decimal commas throughout, as European exports write them;
    otherwise commas separate thousands.

    >>> numbers(pd.Series(["1,234.5", "$7", "12%", "?", None, "3,5", 2])).tolist()
    [1234.5, 7.0, 12.0, nan, nan, nan, 2.0]
    >>> numbers(pd.Series(["3,5", "1,250", "-2", "7 %"])).tolist()
    [3.5, 1.25, -2.0, 7.0]
    """
    parsed = pd.to_numeric(values, errors="coerce")
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return parsed.astype(float)
    text = values.astype(str).str.strip().str.replace(_CURRENCY_OR_PERCENT, "", regex=True)
    comma = text.str.fullmatch(_DECIMAL_COMMA)
    thousands = text.str.fullmatch(_THOUSANDS)
    if (comma & ~thousands).any() and not text.str.contains(".", regex=False).any():
        text = text.where(~comma, text.str.replace(",", ".", regex=False))
    else:
        text = text.where(~thousands, text.str.replace(",", ""))
    return parsed.astype(float).fillna(pd.to_numeric(text, errors="coerce").astype(float))


def is_numeric(values: pd.Series) -> bool:
    """Numbers, perhaps with a few words among them: at most 5% of the values, or at
    most :data:`MAX_WORDS_IN_NUMBERS` distinct words among more than twice as many
    distinct numbers that make at least half the values.

    >>> is_numeric(pd.Series([*map(str, range(30)), "unknown", "n/a"] * 2))
    True
    >>> is_numeric(pd.Series(["12", "7", "unknown", "n/a", "3"]))
    False
    >>> is_numeric(pd.Series(["a", "b", "c", "1"]))
    False
    """
    present = values.dropna()
    if not len(present):
        return False
    parsed = numbers(present)
    share = parsed.notna().mean()
    words = present[parsed.isna()].astype(str).str.strip().nunique()
    few_words = words <= MAX_WORDS_IN_NUMBERS < parsed.nunique() / 2
    return bool(share >= 0.95 or (share >= 0.5 and few_words))


def is_date(values: pd.Series) -> bool:
    """Dates or times: at least 95% of the values given carry a four-digit year and read as dates.

    >>> is_date(pd.Series(["2024-03-01", "01/04/2024 10:00", None]))
    True
    >>> is_date(pd.Series(["1-10", "11-50", "51-200"])), is_date(pd.Series([2021, 2022]))
    (False, False)
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    present = values.dropna()
    if not len(present) or pd.api.types.is_numeric_dtype(present):
        return False
    text = present.astype(str)
    if text.str.contains(r"(?<!\d)\d{4}(?!\d)", regex=True).mean() < 0.95:
        return False
    return bool(_dates(text).notna().mean() >= 0.95)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: str = "file") -> None:
    """An error naming the first of ``columns`` that ``frame`` lacks, and the ones it has.

    >>> require_columns(pd.DataFrame({"a": [1]}), ("a", "b"))
    Traceback (most recent call last):
    ...
    ValueError: column 'b' is not in the file; columns are: a
    """
    for col in columns:
        if col not in frame.columns:
            raise ValueError(
                f"column {col!r} is not in the {source}; columns are: "
                f"{', '.join(map(str, frame.columns))}"
            )


def infer_schema(
    frame: pd.DataFrame, label: str, time_col: str, ids: Sequence[str] = ()
) -> TableSchema:
    """Numeric columns stay numbers, the rest are categories; ids and the label are left out.

    A column counts as numeric by :func:`is_numeric`; a column with no value at all is left
    out, and so is one that :func:`is_id` finds to be an identifier, besides ``ids``. When
    the time column holds dates, other date columns (:func:`is_date`) become ``dates``:
    ages in days at each row's time (``last_visit`` 3 days before the lead: 3.0). Unix
    times (:func:`epoch_unit`) are dates; other numbers (a sequence) are not.

    >>> f = pd.DataFrame({"y": [0, 1], "t": [1, 2], "a": ["1.5", "x"], "b": [1, None], "c": ["u", "v"]})
    >>> s = infer_schema(f, "y", "t")
    >>> s.numeric, s.categorical
    (('b',), ('a', 'c'))
    """
    require_columns(frame, (label, time_col, *ids))
    skip = {label, time_col, *ids}
    found = [str(c) for c in frame.columns if c not in skip and is_id(str(c), frame[c])]
    numeric: list[str] = []
    categorical: list[str] = []
    dates: list[str] = []
    time = frame[time_col]
    timed = not pd.api.types.is_numeric_dtype(time) or epoch_unit(time) is not None
    for col in frame.columns:
        if col in skip or col in found or frame[col].isna().all():
            continue
        if pd.api.types.is_datetime64_any_dtype(frame[col]):  # Parquet: not a number
            (dates if timed else categorical).append(str(col))
        elif is_numeric(frame[col]):
            numeric.append(str(col))
        elif timed and is_date(frame[col]):
            dates.append(str(col))
        else:
            categorical.append(str(col))
    return TableSchema(label, time_col, (*ids, *found), tuple(numeric), tuple(categorical),
                       tuple(dates))  # fmt: skip


def time_ordered(frame: pd.DataFrame, time_col: str) -> pd.DataFrame:
    """The rows in time order (stable), the time column read as numbers or as dates.

    Numbers (epoch seconds, sequence numbers) and datetime columns order as they are.
    Text is parsed as dates in one format for the whole column, inferred from the
    values: month first unless a value shows the day comes first. A value that is not
    a date is an error naming the fix; rows without a time are left out (nothing says
    where they belong; :func:`prepare` counts them).

    >>> f = pd.DataFrame({"t": ["01/05/2024", "12/01/2023", "2023-06-30T08:00"], "v": [1, 2, 3]})
    >>> time_ordered(f, "t")["v"].tolist()
    [3, 2, 1]
    >>> f = pd.DataFrame({"t": ["02/01/2024", "13/01/2024", "01/02/2024"], "v": [1, 2, 3]})
    >>> time_ordered(f, "t")["v"].tolist()
    [1, 2, 3]
    >>> time_ordered(pd.DataFrame({"t": [3.0, None, 1.0], "v": [1, 2, 3]}), "t")["v"].tolist()
    [3, 1]
    """
    values = frame[time_col]
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        key = values
    else:
        key = _dates(values)
        bad = key.isna() & values.notna()
        if bad.any():
            raise ValueError(
                f"time column {time_col!r}: {int(bad.sum())} values are not dates or times "
                f"(the first is {values[bad].iloc[0]!r}); use ISO 8601 or epoch seconds"
            )
    order = key.reset_index(drop=True).dropna().sort_values(kind="stable").index
    return frame.iloc[order].reset_index(drop=True)


def _dates(values: pd.Series) -> pd.Series:
    """One format for the column (month first, else day first), else each value on its own."""
    with warnings.catch_warnings():
        # "Could not infer format" is what the fallbacks below are for.
        warnings.simplefilter("ignore", UserWarning)
        for dayfirst in (False, True):
            with_format = pd.to_datetime(values, errors="coerce", utc=True, dayfirst=dayfirst)
            if not (with_format.isna() & values.notna()).any():
                return with_format
        return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")


def _when(values: pd.Series) -> pd.Series:
    """Times in UTC, from datetimes (naive ones taken as UTC), epoch numbers or text."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    unit = epoch_unit(values)
    if unit is not None:
        return pd.to_datetime(values, unit=unit, utc=True)
    return _dates(values.astype("string"))


def epoch_unit(values: pd.Series) -> str | None:
    """``"s"`` or ``"ms"`` when every number given is a Unix time in that unit between
    2000 and 2100; None otherwise (a sequence number, or not numbers).

    >>> epoch_unit(pd.Series([1.7e9, 1.71e9])), epoch_unit(pd.Series([1_700_000_000_000]))
    ('s', 'ms')
    >>> epoch_unit(pd.Series([1, 2, 3])), epoch_unit(pd.Series(["2024-01-01"]))
    (None, None)
    """
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    given = values.dropna()
    if given.empty:
        return None
    lo, hi = float(given.min()), float(given.max())
    for unit, scale in (("s", 1.0), ("ms", 1000.0)):
        if _EPOCH_FROM * scale <= lo and hi < _EPOCH_TO * scale:
            return unit
    return None


def labelled(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, int]:
    """The rows whose label is given, and how many were left out for having none.

    >>> f, dropped = labelled(pd.DataFrame({"y": [1, None, " ", 0]}), "y")
    >>> f["y"].tolist(), dropped
    ([1, 0], 2)
    """
    require_columns(frame, (label,))
    keep = [not is_missing(v) for v in frame[label].tolist()]
    return frame[keep].reset_index(drop=True), len(keep) - sum(keep)


class Prepared(NamedTuple):
    """A table ready to learn from."""

    schema: TableSchema
    #: The rows with a label and a time, in time order.
    rows: pd.DataFrame
    #: Their labels, 1 for a conversion.
    ys: list[int]
    #: Rows left out for having no label.
    unlabelled: int
    #: Labelled rows left out for having no time.
    untimed: int


def prepare(
    frame: pd.DataFrame,
    label: str,
    time_col: str,
    ids: Sequence[str] = (),
    positive: str | None = None,
) -> Prepared:
    """The table's schema, its labelled rows in time order and their 0/1 labels.

    >>> f = pd.DataFrame({"t": [2, 1, 3, None], "y": ["yes", "no", None, "no"], "a": [0.5, 1.5, 2.5, 0]})
    >>> p = prepare(f, "y", "t")
    >>> p.schema.numeric, p.rows["a"].tolist(), p.ys, p.unlabelled, p.untimed
    (('a',), [1.5, 0.5], [0, 1], 1, 1)
    """
    schema = infer_schema(frame, label, time_col, ids)
    rows, unlabelled = labelled(frame, label)
    timed = time_ordered(rows, time_col)
    ys = labels(timed[label].tolist(), label, positive)
    return Prepared(schema, timed, ys, unlabelled, len(rows) - len(timed))


def feature_column(column: str) -> str:
    """A column's name in feature names: an ``=`` in it (``income (<=50K)``) is written as
    a full-width ``＝``, since ``col=value`` names a category's indicator.

    >>> feature_column("income (<=50K)"), feature_column("visits")
    ('income (<＝50K)', 'visits')
    """
    return column.replace("=", "\uff1d")


def rows_to_features(frame: pd.DataFrame, schema: TableSchema) -> list[dict[str, float]]:
    """One feature dict per row: numbers as numbers, categories as ``col=value`` indicators.

    A missing number becomes a ``col__missing`` indicator, a word in a numeric column
    (``unknown``) a ``col=unknown`` indicator, a missing category ``col=__missing__``.

    Features are named by :func:`feature_column` of their column.

    >>> f = pd.DataFrame({"n": ["$1,200", "unknown", None], "c": ["a", None, "b"]})
    >>> rows_to_features(f, TableSchema("y", "t", (), ("n",), ("c",)))
    [{'n': 1200.0, 'c=a': 1.0}, {'n=unknown': 1.0, 'c=__missing__': 1.0}, {'n__missing': 1.0, 'c=b': 1.0}]
    """
    numeric = {
        feature_column(c): (numbers(frame[c]).tolist(), frame[c].tolist()) for c in schema.numeric
    }
    if schema.dates:
        at = _when(frame[schema.time])
        for c in schema.dates:
            numeric[feature_column(c)] = (
                ((at - _when(frame[c])).dt.total_seconds() / 86400).tolist(), frame[c].tolist()
            )  # fmt: skip
    categorical = {feature_column(c): frame[c].tolist() for c in schema.categorical}
    out = []
    for i in range(len(frame)):
        x: dict[str, float] = {}
        for c, (col, raw) in numeric.items():
            v = col[i]
            if not math.isnan(v) and not math.isinf(v):
                x[c] = v
            elif is_missing(raw[i]) or math.isinf(v):
                x[f"{c}__missing"] = 1.0
            else:
                x[f"{c}={str(raw[i]).strip()}"] = 1.0
        for c, col in categorical.items():
            v = col[i]
            x[f"{c}={'__missing__' if is_missing(v) else str(v).strip()}"] = 1.0
        out.append(x)
    return out
