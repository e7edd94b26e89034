"""How `leadstream bench anomalies` grades alarms against the injected truth."""

from __future__ import annotations

from cli._bench_anomalies import PRIMARY, Alarm, false_alarm_rate, grade, plan
from streaming import synthetic

DAY = 86_400


def test_the_plan_injects_every_kind_on_real_campaigns() -> None:
    anomalies = plan(seed=7, days=120, first_day=21)
    assert len(anomalies) >= 15
    assert {a.kind for a in anomalies} == set(PRIMARY)
    for a in anomalies:
        assert a.campaign_id is None or a.campaign_id in synthetic.CAMPAIGNS[a.channel]
        assert a.start_day >= 21 and a.start_day + a.days <= 120


def test_grade_counts_related_alarms_as_true_and_measures_delay_in_windows() -> None:
    spike = synthetic.Anomaly("volume_spike", "email", "em-nurture-02", 30, 3, 3.0)
    drop = synthetic.Anomaly("conversion_drop", "events", None, 50, 3, 0.2)

    def alarm(series: str, day: int, direction: str = "up", wait: int = 0) -> Alarm:
        group, _, metric = series.rpartition("/")
        return Alarm(series, group, metric, direction, day * DAY, (day + 1) * DAY, (day + 1) * DAY + wait)

    alarms = [
        alarm("campaign=em-nurture-02/lead_volume", 30),  # found, one window late
        alarm("channel=email/cost_per_lead", 31, "down"),  # related: true
        alarm("channel=events/conversion_rate", 51, "down", wait=DAY),  # found, 3 windows
        alarm("campaign=ps-brand-01/lead_volume", 40),  # unrelated: false
    ]
    g = grade(alarms, (spike, drop), 0.0, DAY, 0.0, 120 * DAY)
    assert (g["alarms"], g["true_alarms"], g["precision"]) == (4, 3, 0.75)
    assert (g["found"], g["recall"]) == (2, 1.0)
    assert g["delay_windows_by_kind"] == {"volume_spike": [1.0], "conversion_drop": [3.0]}
    assert g["median_delay_windows"] == 2.0
    missed = grade(alarms[1:2], (spike,), 0.0, DAY, 0.0, 120 * DAY)
    assert missed["recall"] == 0.0 and missed["median_delay_windows"] is None


def test_false_alarm_rate_is_per_series_per_30_days() -> None:
    alarms = [Alarm("overall/lead_volume", "overall", "lead_volume", "up", d * DAY, (d + 1) * DAY, 0)
              for d in (20, 40, 70)]  # fmt: skip
    rate = false_alarm_rate(alarms, series=10, eval_from=30 * DAY, eval_to=90 * DAY)
    assert rate == {"alarms": 2, "series": 10, "days": 60.0, "per_series_per_30_days": 0.1}
