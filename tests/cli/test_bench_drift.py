"""The drift benchmark's targets (issue 3) against its numbers; the replays run in `bench drift`."""

from __future__ import annotations

from typing import Any

from cli._bench_drift import targets


def _result(**over: Any) -> dict[str, Any]:
    base = {
        "detection_delay_from_first_drifted": 2452, "detection_delay_from_reach": 451,
        "drifted_examples_before_detection": 360, "recovery_examples_from_reach": 6600,
        "false_alarms_before_drift": 0,
    }  # fmt: skip
    return base | over


def test_the_delay_counts_from_the_first_drifted_example() -> None:
    t = targets(_result())
    assert not t["met"] and t["met_counting_from_reach"] and t["met_counting_drifted_examples"]
    assert targets(_result(detection_delay_from_first_drifted=1990))["met"]


def test_no_detection_slow_recovery_or_a_false_alarm_misses_the_target() -> None:
    assert not targets(_result(detection_delay_from_first_drifted=None))["met"]
    late = targets(
        _result(detection_delay_from_first_drifted=1500, recovery_examples_from_reach=10100)
    )
    assert not late["met"] and not late["met_counting_from_reach"]
    assert not targets(
        _result(detection_delay_from_first_drifted=1500, false_alarms_before_drift=1)
    )["met"]
    free = _result(detection_delay_from_first_drifted=1500, false_alarms_without_drift=2)
    assert not targets(free)["met"]
    assert targets(free | {"false_alarms_without_drift": 0})["met"]
