"""Labelled tables as people export them: separators, encodings, label words, numbers, dates."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli._bench_evaluate import mixed, sklearn_baseline
from online_models.backfill import train
from online_models.bundle import ModelBundle
from online_models.evaluation import evaluate
from online_models.labels import labels
from online_models.tables import (
    TableSchema,
    infer_schema,
    is_numeric,
    labelled,
    numbers,
    read_table,
    rows_to_features,
    time_ordered,
)
from tests.online_models._cli import cli_evaluate


def test_an_untidy_export_gives_the_same_result_as_the_tidy_file(tmp_path: Path) -> None:
    """Semicolons, Windows-1252, day-first dates, ``$1,234.50``, ``12.5%`` and ``0,25``, label words,
    rows without a label: the same rows and metrics as the tidy CSV, to the last digit."""
    frame = mixed(5, n=1500)
    frame["industry"] = frame["industry"].str.replace("ind_1", "indústria_1")
    frame["n0"] = (frame["n0"] * 1000 + 5000).round(2)
    frame["n2"] = (frame["n2"] * 10 + 50).round(1)
    frame["n3"] = frame["n3"].round(2)
    tidy = frame.assign(ts=frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    tidy.to_csv(tmp_path / "tidy.csv", index=False)
    untidy = frame.assign(
        ts=frame["ts"].dt.strftime("%d/%m/%Y %H:%M:%S"),
        n0=[f"${v:,.2f}" for v in frame["n0"]],
        n2=[f"{v}%" for v in frame["n2"]],
        n3=[f"{v:.2f}".replace(".", ",") for v in frame["n3"]],  # decimal commas
        label=frame["label"].map({"yes": "Converted", "no": "Not Converted"}),
    )
    unlabelled = untidy.sample(7, random_state=1).assign(label=None)
    pd.concat([untidy, unlabelled]).to_csv(
        tmp_path / "untidy.csv", index=False, sep=";", encoding="cp1252"
    )
    first = cli_evaluate(tmp_path / "tidy.csv", "ts")
    second = cli_evaluate(tmp_path / "untidy.csv", "ts")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert b.pop("unlabelled_rows") == 7 and a.pop("unlabelled_rows") == 0
    assert {k: v for k, v in a.items() if k != "seconds"} == {
        k: v for k, v in b.items() if k != "seconds"
    }


def test_a_label_without_known_words_needs_positive_and_the_error_says_so(tmp_path: Path) -> None:
    frame = mixed(6, n=800)
    frame["label"] = frame["label"].map({"yes": "hot", "no": "cold"})
    frame.to_csv(tmp_path / "leads.tsv", index=False, sep="\t")
    out = cli_evaluate(tmp_path / "leads.tsv", "ts")
    assert out.returncode == 2 and "--positive VALUE" in out.stderr and "'hot'" in out.stderr
    out = cli_evaluate(tmp_path / "leads.tsv", "ts", "--positive", "hot")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["positives"] == (frame["label"].iloc[400:] == "hot").sum()
    out = cli_evaluate(tmp_path / "leads.tsv", "ts", "--positive", "warm")
    assert out.returncode == 2 and "never has the value 'warm'" in out.stderr


def test_label_words() -> None:
    assert labels(["Closed Won", "closed-lost", "Won"], "y") == [1, 0, 1]
    assert labels(["Won", "Open", "open"], "y") == [1, 0, 0]  # the unknown word is the other class
    assert labels(["1.0", "0.0", 0.0, "1"], "y") == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="--positive"):
        labels(["a", "b", "c"], "y")
    with pytest.raises(ValueError, match="--positive"):
        labels([1, 0, "maybe"], "y")  # two known classes and a third value: no guess
    with pytest.raises(ValueError, match="'1', '2': name the one that counts as a conversion"):
        labels([1, 2, 2, 1], "y")  # 1 and 2 (as in some public sets): which one converted?
    assert labels([1.0, 2.0, 2.0], "y", positive="2") == [0, 1, 1]
    # A count (of visits, or of conversions) is not a label: which value counts is asked for.
    with pytest.raises(ValueError, match=r"3 different numbers \(0 to 3\), not two: .*'>=N'"):
        labels([0, 1, 3, 0], "y")
    assert labels([0, 1, 3, 0], "y", positive=">=1") == [0, 1, 1, 0]
    assert labels([0, 1, 3, 0], "y", positive=">1") == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="choose another threshold"):
        labels([0, 1, 3, 0], "y", positive=">=4")
    assert labels([1, -1, -1], "y") == [1, 0, 0]  # the ±1 convention: -1 did not convert
    assert labels(["-1", "1"], "y") == labels([-1.0, 1.0], "y") == [0, 1]
    frame, dropped = labelled(pd.DataFrame({"y": ["yes", "", None, "no", np.nan]}), "y")
    assert frame["y"].tolist() == ["yes", "no"] and dropped == 3


def test_numbers_in_export_formats_and_words_among_numbers() -> None:
    values = pd.Series(["1,234,567.5", "-1,000", "€ 12", "7.5 %", "1,5", "12,34", "n/a"])
    got = numbers(values).tolist()
    assert got[:4] == [1234567.5, -1000.0, 12.0, 7.5]
    assert all(np.isnan(got[4:]))  # with dots about: not decimal commas, nor thousands
    european = numbers(pd.Series(["1,5", "12,34", "7", "1,250", None])).tolist()
    assert european[:4] == [1.5, 12.34, 7.0, 1.25] and np.isnan(european[4])
    mostly = pd.Series([str(v) for v in range(100)] + ["unknown"] * 20 + ["?"] * 5)
    assert is_numeric(mostly) and not is_numeric(pd.Series(["A1", "B2", "1", "2"]))
    frame = pd.DataFrame({"y": [0, 1, 0], "t": [1, 2, 3], "n": ["5", "unknown", None],
                          "empty": [None, None, None]})  # fmt: skip
    assert infer_schema(frame, "y", "t").categorical == ("n",)  # too few numbers to tell
    assert "empty" not in infer_schema(frame, "y", "t").numeric  # no value at all: left out
    assert rows_to_features(frame, TableSchema("y", "t", (), ("n",), ())) == [
        {"n": 5.0}, {"n=unknown": 1.0}, {"n__missing": 1.0}
    ]  # fmt: skip


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_separators_and_compression(tmp_path: Path, sep: str) -> None:
    frame = pd.DataFrame({"a b": ["x,y", "z"], "n": [1.5, 2.0], "y": ["yes", "no"]})
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        frame.to_csv(f, index=False, sep=sep)
    pd.testing.assert_frame_equal(read_table(path), frame, check_dtype=False)


def test_dates_keep_one_format_for_the_column() -> None:
    # Read value by value, "03/04/2024" would be March 4 and "13/04/2024" April 13.
    frame = pd.DataFrame({"t": ["13/04/2024", "03/04/2024", "02/05/2024"], "v": [1, 2, 3]})
    assert time_ordered(frame, "t")["v"].tolist() == [2, 1, 3]
    frame = pd.DataFrame({"t": ["04/13/2024", "04/03/2024", "05/02/2024"], "v": [1, 2, 3]})
    assert time_ordered(frame, "t")["v"].tolist() == [2, 1, 3]


def test_parquet_and_excel_are_told_by_content_and_a_zip_names_the_fix(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": [1, 2, 3], "c": ["a", "b", "a"], "n": [1.5, None, 2.0]})
    frame.to_parquet(tmp_path / "a.csv")  # a misnamed file: the content decides
    pd.testing.assert_frame_equal(read_table(tmp_path / "a.csv"), frame)
    frame.to_excel(tmp_path / "b.csv", index=False, engine="xlsxwriter")
    pd.testing.assert_frame_equal(read_table(tmp_path / "b.csv"), frame, check_dtype=False)
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("leads.csv", frame.to_csv(index=False))
    with pytest.raises(ValueError, match="is a zip archive: unzip it"):
        read_table(tmp_path / "c.zip")


def test_identifier_columns_are_found_by_name_and_unique_values() -> None:
    frame = mixed(7, n=600).assign(
        lead_id=range(600),  # counts up with time: a trend that cannot carry over
        customerID=[f"C{i:05d}" for i in range(600)],
        account_id=[f"A{i % 50}" for i in range(600)],  # shared by several leads: a feature
        paid=np.arange(600) * 1.5,  # unique numbers, but not named like an identifier
    )
    schema = infer_schema(frame, "label", "ts", ids=("n7",))
    assert schema.ids == ("n7", "lead_id", "customerID")
    assert "account_id" in schema.categorical and "paid" in schema.numeric
    frame.loc[3, "lead_id"] = None  # an identifier is always given
    assert "lead_id" in infer_schema(frame, "label", "ts").numeric
    result = evaluate(frame.assign(lead_id=range(600)), "label", "ts").as_dict()
    assert result["id_columns"] == ["lead_id", "customerID"]


def test_a_row_index_saved_with_the_table_is_left_out(tmp_path: Path) -> None:
    """``to_csv`` with its index after sorting by time: the index counts up with time."""
    frame = mixed(8, n=1500).sort_values("ts").reset_index(drop=True)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    frame.to_csv(tmp_path / "indexed.csv")  # a first column with a blank header
    plain, indexed = (cli_evaluate(tmp_path / f"{n}.csv", "ts") for n in ("plain", "indexed"))
    assert plain.returncode == 0 and indexed.returncode == 0, plain.stderr + indexed.stderr
    first, second = json.loads(plain.stdout), json.loads(indexed.stdout)
    assert second.pop("id_columns") == ["Unnamed: 0"] and first.pop("id_columns") == []
    assert {k: v for k, v in first.items() if k != "seconds"} == {
        k: v for k, v in second.items() if k != "seconds"
    }


def test_a_column_name_with_an_equals_sign_is_still_a_number() -> None:
    """``col=value`` names an indicator; a column named ``income (<=50K)`` is a number all
    the same, scaled like any other, and the sensitivity names it as written."""
    frame = mixed(9, n=1500)
    frame["n0"] = frame["n0"] * 1000 + 20_000  # unscaled, it would be clipped to ±5
    named = frame.rename(columns={"n0": "income (<=50K)", "channel": "source=utm"})
    plain, odd = evaluate(frame, "label", "ts", sensitivity=True), evaluate(
        named, "label", "ts", sensitivity=True
    )
    assert (odd.metrics.auc, odd.metrics.logloss) == (plain.metrics.auc, plain.metrics.logloss)
    renamed = {"n0": "income (<=50K)", "channel": "source=utm"}
    assert odd.sensitivity is not None and plain.sensitivity is not None
    assert [{**e, "column": renamed.get(e["column"], e["column"])} for e in plain.sensitivity] == (
        odd.sensitivity
    )


def test_date_columns_become_ages_at_the_rows_time() -> None:
    rng = np.random.default_rng(12)
    n = 3000
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), "D")
    recency = rng.exponential(30, n)
    frame = pd.DataFrame({
        "ts": ts.strftime("%Y-%m-%d %H:%M"),
        "last_visit": (ts - pd.to_timedelta(recency, "D")).strftime("%d/%m/%Y"),  # day first
        "size": rng.choice(["1-10", "11-50", "51-200"], n),  # not dates, though "1-10" parses
        "founded": rng.integers(1950, 2020, n),  # years are numbers
        "converted": (rng.random(n) < 1 / (1 + np.exp(1 + (recency - 30) / 10))).astype(int),
    })  # fmt: skip
    frame.loc[::50, "last_visit"] = None
    schema = infer_schema(frame, "converted", "ts")
    assert (schema.dates, schema.categorical, schema.numeric) == (("last_visit",), ("size",), ("founded",))
    rows = rows_to_features(frame, schema)
    ages = [r.get("last_visit") for r in rows]
    assert all(abs(a - d) < 1.0 for a, d in zip(ages, recency, strict=True) if a is not None)
    assert rows[0] == {"last_visit__missing": 1.0, "size=" + frame["size"][0]: 1.0,
                       "founded": float(frame["founded"][0])}  # fmt: skip
    ours = evaluate(frame, "converted", "ts")
    base = sklearn_baseline(frame, "converted", "ts", (), 0.5)  # dates as categories
    assert ours.metrics.auc > base.auc + 0.15, (ours.metrics.auc, base.auc)
    typed = frame.assign(ts=pd.to_datetime(frame["ts"]),
                         last_visit=pd.to_datetime(frame["last_visit"], dayfirst=True))
    assert infer_schema(typed, "converted", "ts").dates == ("last_visit",)  # as from Parquet
    assert rows_to_features(typed, schema) == rows
    # Unix times (seconds or milliseconds) are dates to measure from.
    seconds = (typed["ts"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    for epoch in (seconds, seconds * 1000):
        by_epoch = frame.assign(ts=epoch)
        assert infer_schema(by_epoch, "converted", "ts").dates == ("last_visit",)
        assert rows_to_features(by_epoch, schema) == rows
    # Without a date to measure from (a sequence number), a date column stays a category.
    by_number = frame.assign(ts=range(n))
    assert infer_schema(by_number, "converted", "ts").dates == ()


@st.composite
def _tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(30, 160))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    columns: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["number", "category", "words", "empty", "constant", "date"]))
        values: list[Any] = {
            "number": lambda: list(rng.normal(size=n)),
            "category": lambda: list(rng.choice(["a", "b", "c", "d"], n)),
            "words": lambda: [str(round(v, 2)) if v > -1 else "unknown" for v in rng.normal(size=n)],
            "empty": lambda: [None] * n,
            "constant": lambda: ["x"] * n,
            "date": lambda: [f"2024-{m:02d}-{d:02d}" for m, d in
                             zip(rng.integers(1, 13, n), rng.integers(1, 29, n), strict=True)],
        }[kind]()  # fmt: skip
        share = draw(st.sampled_from([0.0, 0.1, 0.9]))
        columns[f"{kind}{i}"] = [None if rng.random() < share else v for v in values]
    pair = draw(st.sampled_from([(1, 0), ("yes", "no"), ("Won", "Open"), (True, False)]))
    rate = draw(st.sampled_from([0.0, 0.05, 0.5]))
    columns["label"] = [pair[0] if rng.random() < rate else pair[1] for _ in range(n)]
    if draw(st.booleans()):
        columns["label"][0] = None
    dates = draw(st.booleans())
    columns["ts"] = [f"{1 + i % 28:02d}/03/2024" for i in range(n)] if dates else list(range(n))
    if draw(st.booleans()):
        columns["ts"][1] = None
    return pd.DataFrame(columns)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_tables(), folds=st.sampled_from([0, 3]))
def test_any_small_table_gives_json_or_an_error_that_names_the_problem(
    frame: pd.DataFrame, folds: int
) -> None:
    try:
        result = evaluate(frame, "label", "ts", folds=folds, sensitivity=True).as_dict()
    except ValueError as exc:  # the one kind of failure, with a message for the user
        assert str(exc)
        return
    json.dumps(result, allow_nan=False)
    left_out = result["unlabelled_rows"] + result["untimed_rows"]
    assert result["rows"] + result["history_rows"] + left_out == len(frame)


def test_rows_without_a_label_or_a_time_are_left_out_and_counted() -> None:
    frame = mixed(3, n=1200)
    frame.loc[[5, 50, 500], "ts"] = None
    frame.loc[[7, 70], "label"] = None
    frame.loc[5, "label"] = None  # neither: counted once, as unlabelled
    result = evaluate(frame, "label", "ts").as_dict()
    assert (result["unlabelled_rows"], result["untimed_rows"]) == (3, 2)
    assert result["rows"] + result["history_rows"] == len(frame) - 5
    history = frame.rename(columns={"label": "converted", "ts": "occurred_at"})
    trained = train(ModelBundle.create(), history, "converted", "occurred_at", passes=1)
    assert trained.left_out == 5
    assert trained.history_rows + trained.validation_rows == len(frame) - 5
