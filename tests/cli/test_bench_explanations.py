"""The explanations benchmark's verdict (issue 3) from its numbers; the worker runs are in `bench`.

What makes the verdict robust on a shared machine: each round's on and off runs are
paired, the estimate is the median of the rounds' drops, and one disturbed round
moves neither it nor the verdict.
"""

from __future__ import annotations

from cli._bench_explanations import MAX_DROP, batch_ends, bootstrap_interval, verdict


def test_a_single_disturbed_round_does_not_decide_the_verdict() -> None:
    # Six rounds drop 4-6%; one run with explanations on was hit by another process.
    eps_on = [960.0, 950.0, 600.0, 945.0, 955.0, 940.0, 962.0]
    eps_off = [1000.0] * 7
    cpu_on = [104.0, 105.0, 160.0, 106.0, 104.0, 106.0, 103.0]
    cpu_off = [100.0] * 7
    v = verdict(eps_on, eps_off, cpu_on, cpu_off)
    assert v["throughput"]["drop"] == 0.05
    assert v["targets"]["met"] and v["targets"]["met_with_confidence"]
    assert v["targets"]["met_uses"].startswith("throughput.drop")
    lo, hi = v["throughput"]["drop_ci95"]
    assert 0.04 <= lo <= 0.05 <= hi < MAX_DROP
    assert v["worker_cpu_us_per_event"]["drop"] == round(1 - 100 / 105, 4)


def test_a_drop_over_ten_percent_in_most_rounds_misses_the_target() -> None:
    eps_on = [880.0, 870.0, 1000.0, 860.0, 885.0]
    v = verdict(eps_on, [1000.0] * 5, [113.0] * 5, [100.0] * 5)
    assert v["throughput"]["drop"] == 0.12 and not v["targets"]["met"]


def test_noisy_rounds_widen_the_interval_and_withhold_confidence() -> None:
    eps_on = [1030.0, 800.0, 960.0, 1100.0, 750.0, 940.0, 990.0]
    v = verdict(eps_on, [1000.0] * 7, [100.0] * 7, [100.0] * 7)
    lo, hi = v["throughput"]["drop_ci95"]
    assert v["targets"]["met"] and not v["targets"]["met_with_confidence"]
    assert lo < 0 < MAX_DROP < hi


def test_the_interval_is_reproducible() -> None:
    drops = [0.03, 0.08, -0.02, 0.05, 0.11, 0.04, 0.06]
    assert bootstrap_interval(drops) == bootstrap_interval(drops)


def test_batches_are_told_apart_by_the_gap_between_their_records() -> None:
    # Three batches of a worker: records ~0.1 ms apart, 0.3 s between batches.
    stamps = [10.0 + i * 1e-4 for i in range(50)]
    stamps += [10.4 + i * 1e-4 for i in range(40)]
    stamps += [10.8 + i * 1e-4 for i in range(7)]
    ends = batch_ends(stamps)
    assert [n for _, n in ends] == [50, 40, 7]
    assert ends[0][0] == stamps[49] and ends[-1][0] == stamps[-1]
    assert batch_ends([]) == []
