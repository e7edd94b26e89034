"""Offline evaluation: metrics, column handling, time order, and the CLI contract."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from cli._bench_evaluate import mixed, nonlinear, numeric_wide, sklearn_baseline, wide_mixed
from online_models.evaluation import (
    CHOOSING,
    FOLDS,
    SCORING,
    SENSITIVITY,
    Metrics,
    auc,
    evaluate,
)
from online_models.labels import labels
from online_models.tables import infer_schema
from tests.online_models._cli import cli_evaluate


def test_metrics_agree_with_scikit_learn() -> None:
    rng = random.Random(4)
    y = [int(rng.random() < 0.2) for _ in range(3000)]
    p = [min(0.99, max(0.01, 0.15 + 0.3 * yi + rng.gauss(0, 0.2))) for yi in y]
    p[10:20] = [0.5] * 10  # ties
    m = Metrics.compute(y, p, 0.4)
    assert m.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.logloss == pytest.approx(log_loss(y, p), abs=1e-9)
    assert m.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    top = np.argsort(-np.array(p), kind="stable")[: len(p) // 10]
    assert m.lift_top_decile == pytest.approx(np.mean(np.array(y)[top]) / np.mean(y), rel=0.02)


def test_auc_is_nan_with_one_class() -> None:
    assert np.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_label_words_and_a_clear_error() -> None:
    assert labels(["Yes", "no", "TRUE", 0, 1.0], "y") == [1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="label column 'y' has the values 'maybe'"):
        labels(["maybe"], "y")


def test_schema_and_unknown_column() -> None:
    frame = mixed(0, n=300)
    s = infer_schema(frame, "label", "ts")
    assert "n1" in s.numeric and {"industry", "company_domain", "channel"} <= set(s.categorical)
    with pytest.raises(ValueError, match="column 'nope' is not in the file"):
        infer_schema(frame, "nope", "ts")


def test_reaches_the_batch_baseline_on_every_shape() -> None:
    for frame, label, ts, ids in (
        (numeric_wide(1, n=4000), "converted", "created_at", ("lead_id",)),
        (mixed(1, n=4000), "label", "ts", ()),
        (wide_mixed(1, n=4000), "won", "created", ()),
        (nonlinear(1, n=4000), "converted", "created_at", ()),
    ):
        ours = evaluate(frame, label, ts, ids)
        base = sklearn_baseline(frame, label, ts, ids, 0.5)
        assert ours.metrics.auc >= base.auc - 0.02, (label, ours.metrics.auc, base.auc)


def test_the_stream_learner_is_still_available_and_a_wrong_model_names_the_choices() -> None:
    frame = mixed(2, n=1500)
    sgd = evaluate(frame, "label", "ts", passes=3, model="sgd")
    assert 0.6 < sgd.metrics.auc <= 1 and len(sgd.scores) == sgd.metrics.rows
    with pytest.raises(ValueError, match="model must be one of newton, sgd"):
        evaluate(frame, "label", "ts", model="forest")


def test_model_choice_and_every_score_use_only_labels_known_before_it() -> None:
    # Settings are chosen by cross-validation on the history: the holdout's labels must
    # not reach that choice, the history fit, or any score given before they are learned.
    frame = wide_mixed(2, n=2000).sort_values("created", kind="stable").reset_index(drop=True)
    result = evaluate(frame, "won", "created")
    split = result.history_rows
    late = split + (len(frame) - split) // 2
    flipped = frame.copy()
    flipped.loc[late:, "won"] = 1 - flipped.loc[late:, "won"]
    again = evaluate(flipped, "won", "created")
    k = late - split
    assert again.scores[: k + 1] == result.scores[: k + 1]
    assert again.scores[k + 1 :] != result.scores[k + 1 :]
    shuffled = frame.copy()
    rng = np.random.default_rng(0)
    shuffled.loc[split:, "won"] = rng.permutation(shuffled.loc[split:, "won"].to_numpy())
    assert evaluate(shuffled, "won", "created").scores[0] == result.scores[0]


def test_rows_are_ordered_by_time_before_splitting() -> None:
    # The label flips halfway through time; shuffled rows must not hide it.
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=n)
    t = np.arange(n)
    y = np.where(t < n // 2, x > 0, x < 0).astype(int)
    frame = pd.DataFrame({"x": x, "t": t, "y": y}).sample(frac=1, random_state=1)
    result = evaluate(frame, "y", "t", passes=3, model="sgd")
    # History says "high x converts", the future says the opposite: test-then-train must
    # start badly, so the holdout AUC is far from the in-history fit.
    assert result.metrics.auc < 0.8
    assert result.history_rows == n // 2
    # The Newton model turns round within a few rows, but it starts from the history too.
    newton = evaluate(frame, "y", "t")
    assert newton.history_rows == n // 2
    assert (newton.scores[0] > 0.5) == (x[n // 2] > 0)


def test_folds_report_one_auc_each() -> None:
    result = evaluate(mixed(2, n=1500), "label", "ts", folds=4, passes=3)
    assert result.folds is not None and len(result.folds) == 4
    assert all(0.5 < a < 1 for a in result.folds)


def test_cli_prints_one_json_object_with_the_contracted_fields(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    mixed(3, n=1200).to_csv(path, index=False)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "evaluate",
            str(path),
            "--label",
            "label",
            "--time",
            "ts",
            "--holdout",
            "0.4",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout)
    for key in (
        "rows",
        "positives",
        "auc",
        "logloss",
        "brier",
        "precision",
        "recall",
        "f1",
        "lift_top_decile",
        "seconds",
    ):
        assert key in result, key
    assert result["rows"] == 480 and 0.5 < result["auc"] <= 1.0


def test_cli_names_the_fix_for_a_wrong_column(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    mixed(3, n=200).to_csv(path, index=False)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "evaluate",
            str(path),
            "--label",
            "converted",
            "--time",
            "ts",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "column 'converted' is not in the file" in out.stderr


def test_sensitivity_ranks_the_informative_columns_first() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({
        "strong": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n),
        "channel": rng.choice(["a", "b"], n), "t": np.arange(n),
    })  # fmt: skip
    logit = (
        2.0 * frame["strong"] + 0.4 * frame["weak"] + np.where(frame["channel"] == "a", 0.8, -0.8)
    )
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    result = evaluate(frame, "y", "t", passes=3, sensitivity=True)
    assert result.sensitivity is not None
    order = [e["column"] for e in result.sensitivity]
    assert order[0] == "strong" and order[-1] == "noise"
    by = {e["column"]: e for e in result.sensitivity}
    assert by["strong"]["auc_loss_without"] > 0.1 and by["channel"]["auc_loss_shuffled"] > 0.02
    assert abs(by["noise"]["auc_loss_shuffled"]) < 0.01


def test_text_dates_are_ordered_as_dates_and_a_bad_time_names_the_fix(tmp_path: Path) -> None:
    # Two years of month-first dates: as text, "12/01/2023" sorts after "01/05/2024".
    frame = mixed(4, n=1500)
    frame["ts"] = pd.date_range("2023-03-01", periods=len(frame), freq="8h")
    frame["us"] = frame["ts"].dt.strftime("%m/%d/%Y %H:%M")
    frame["epoch"] = frame["ts"].astype("int64") // 10**9
    shuffled = frame.drop(columns=["ts"]).sample(frac=1, random_state=0)
    as_text = shuffled.drop(columns=["epoch"])
    as_text.to_csv(tmp_path / "us.csv", index=False)
    shuffled.drop(columns=["us"]).to_csv(tmp_path / "epoch.csv", index=False)
    by_text = cli_evaluate(tmp_path / "us.csv", "us")
    by_epoch = cli_evaluate(tmp_path / "epoch.csv", "epoch")
    assert by_text.returncode == 0 and by_epoch.returncode == 0, by_text.stderr + by_epoch.stderr
    first, second = json.loads(by_text.stdout), json.loads(by_epoch.stdout)
    assert {k: v for k, v in first.items() if k != "seconds"} == {
        k: v for k, v in second.items() if k != "seconds"
    }
    lexical = evaluate(as_text.sort_values("us").rename(columns={"us": "order"}).assign(
        order=range(len(as_text))), "label", "order")  # fmt: skip
    assert lexical.metrics.auc != first["auc"]  # text order would have been another split
    broken = as_text.copy()
    broken.iloc[7, broken.columns.get_loc("us")] = "next tuesday"
    broken.to_csv(tmp_path / "bad.csv", index=False)
    out = cli_evaluate(tmp_path / "bad.csv", "us")
    assert out.returncode == 2 and "1 values are not dates or times" in out.stderr
    assert "'next tuesday'" in out.stderr and "ISO 8601" in out.stderr
    broken.iloc[7, broken.columns.get_loc("us")] = None
    broken.to_csv(tmp_path / "missing.csv", index=False)
    out = cli_evaluate(tmp_path / "missing.csv", "us")
    assert out.returncode == 0, out.stderr  # a row without a time is left out and counted
    left = json.loads(out.stdout)
    assert left["untimed_rows"] == 1 and left["unlabelled_rows"] == 0
    assert left["history_rows"] + left["rows"] == len(broken) - 1


def test_a_group_of_columns_is_removed_and_shuffled_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = 3000
    signal = rng.normal(size=n)
    frame = pd.DataFrame({
        # Two noisy copies of one signal: the model leans on both.
        "opens": signal + rng.normal(0, 0.5, n), "clicks": signal + rng.normal(0, 0.5, n),
        "noise": rng.normal(size=n), "t": np.arange(n),
    })  # fmt: skip
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-2.0 * signal))).astype(int)
    result = evaluate(frame, "label", "t", groups={"email": ["opens", "clicks"]})
    assert result.sensitivity is not None  # groups imply sensitivity
    by = {e["column"]: e for e in result.sensitivity}
    assert by["email"]["columns"] == ["clicks", "opens"] and "columns" not in by["opens"]
    alone = max(by["opens"]["auc_loss_without"], by["clicks"]["auc_loss_without"])
    assert by["email"]["auc_loss_without"] > alone + 0.1
    assert by["email"]["auc_without"] == pytest.approx(0.5, abs=0.03)  # nothing left to rank by
    assert by["email"]["auc_loss_shuffled"] > alone
    assert next(iter(by)) == "email"
    with pytest.raises(ValueError, match="group 'x': 'nope' is not a feature column"):
        evaluate(frame, "label", "t", groups={"x": ["opens", "nope"]})
    path = tmp_path / "leads.csv"
    frame.to_csv(path, index=False)
    cli = [sys.executable, "-m", "cli.main", "evaluate", str(path), "--label", "label",
           "--time", "t", "--json"]  # fmt: skip
    out = subprocess.run([*cli, "--group", "email=opens, clicks"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["sensitivity"]
    assert {r["column"] for r in rows} == {"opens", "clicks", "noise", "email"}
    bad = subprocess.run([*cli, "--group", "email"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is not NAME=COL,COL" in bad.stderr


def test_a_holdout_of_one_class_prints_valid_json_with_a_null_auc(tmp_path: Path) -> None:
    frame = mixed(8, n=600)
    frame.loc[300:, "label"] = "no"  # no conversion among the latest rows
    frame.to_csv(tmp_path / "leads.csv", index=False)
    out = cli_evaluate(tmp_path / "leads.csv", "ts", "--folds", "3", "--sensitivity")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert result["auc"] is None and result["positives"] == 0 and result["logloss"] > 0
    assert all(e["auc_without"] is None for e in result["sensitivity"])
    assert len(result["folds_auc"]) == 3 and result["folds_auc_mean"] > 0.5  # history has both


def test_bench_compares_with_the_batch_baseline_on_a_file_of_ones_own(tmp_path: Path) -> None:
    frame = mixed(9, n=1500)
    frame["label"] = frame["label"].map({"yes": "hot", "no": "cold"})
    frame.to_csv(tmp_path / "mine.csv", index=False, sep=";")
    base = [sys.executable, "-m", "cli.main", "bench", "evaluate", "--file", str(tmp_path / "mine.csv")]
    out = subprocess.run([*base, "--label", "label", "--time", "ts", "--positive", "hot",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "evaluate-mine.json").read_text())
    cli = json.loads(cli_evaluate(tmp_path / "mine.csv", "ts", "--positive", "hot").stdout)
    assert result["auc"] == round(cli["auc"], 4) and result["file"] == "mine.csv"
    expected = sklearn_baseline(frame.assign(label=frame["label"] == "hot"), "label", "ts", (), 0.5)
    assert result["sklearn_auc"] == round(expected.auc, 4)
    missing = subprocess.run([*base, "--out", str(tmp_path)], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "name the label and time columns" in missing.stderr



def test_progress_reports_every_stage_to_its_end() -> None:
    seen: dict[str, list[tuple[int, int]]] = {}
    frame = mixed(10, n=1200)
    evaluate(frame, "label", "ts", folds=3, sensitivity=True,
             progress=lambda stage, done, total: seen.setdefault(stage, []).append((done, total)))  # fmt: skip
    assert set(seen) == {CHOOSING, FOLDS, SENSITIVITY, SCORING}
    assert seen[FOLDS][-1] == (3, 3) and seen[SCORING][-1] == (600, 600)
    assert seen[SENSITIVITY][-1] == (11, 11)  # 11 feature columns
    assert all(a[0] <= b[0] for s in seen.values() for a, b in itertools.pairwise(s))
