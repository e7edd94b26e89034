"""The label-delay benchmark: its offline replay schedules, and one small run of the real pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli._bench_label_delay import Recorded, replay_scores, schedule


class _Recorder:
    """A model that writes down what it was asked, in order; it scores by how much it learned."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, bool | None]] = []
        self.n_learned = 0

    def learn_one(self, x: dict[str, float], y: bool, **kwargs: Any) -> None:
        self.calls.append(("learn", x["id"], y))
        self.n_learned += 1

    def predict_proba_one(self, x: dict[str, float], **kwargs: Any) -> dict[bool, float]:
        self.calls.append(("score", x["id"], None))
        return {False: 0.0, True: float(self.n_learned)}


# Lead 0 converts late (its label in batch 3), lead 1 never (horizon in batch 4), lead 2
# converts in the batch it arrives in.
_EXAMPLES = [
    Recorded({"id": 0.0}, True, 0, 3),
    Recorded({"id": 1.0}, False, 1, 4),
    Recorded({"id": 2.0}, True, 2, 2),
]


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        ("delayed", [("score", 0, None), ("score", 1, None), ("score", 2, None), ("learn", 2, True),
                     ("learn", 0, True), ("learn", 1, False)]),
        ("immediate", [("score", 0, None), ("learn", 0, True), ("score", 1, None),
                       ("learn", 1, False), ("score", 2, None), ("learn", 2, True)]),
    ],
)  # fmt: skip
def test_each_timing_learns_labels_when_it_says(timing: str, expected: list[Any]) -> None:
    model = _Recorder()
    scores = replay_scores(lambda: model, _EXAMPLES, timing)  # type: ignore[arg-type,return-value]
    assert model.calls == expected
    # A score is given before anything of its own lead is learned, never after.
    assert scores == [float(sum(1 for c in expected[: expected.index(("score", i, None))]
                                if c[0] == "learn")) for i in range(3)]  # fmt: skip


def test_an_unknown_timing_names_the_choices() -> None:
    with pytest.raises(ValueError, match="timing must be one of delayed, immediate"):
        schedule(_EXAMPLES, "eventually")


@pytest.mark.integration
def test_a_small_run_reproduces_the_pipeline_s_own_scores_offline(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "bench", "label-delay", "--leads", "3000",
         "--kind", "logistic", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "label_delay.json").read_text())
    ratios = result["ratio_to_truth"]["logistic"]
    assert set(ratios) == {"pipeline_horizon", "pipeline_fake_negative", "offline_delayed",
                           "offline_immediate"}  # fmt: skip
    assert result["labelled_examples"] > 1000 and 0.5 < result["truth_auc_second_half"] < 1
    # The offline delayed replay is the pipeline's own learning, up to its drift reaction;
    # the fake-negative replay ran the other policy (its scores differ).
    assert ratios["offline_delayed"] == pytest.approx(ratios["pipeline_horizon"], abs=0.03)
    assert ratios["pipeline_fake_negative"] != ratios["pipeline_horizon"]
