"""Journeys in the generator: several channels per lead, and a truth that means what it says."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from streaming.events import EVENT_MODELS
from streaming.synthetic import (
    DIRECT,
    JOURNEY,
    ChannelTruth,
    Emitted,
    GeneratorConfig,
    LeadTruth,
    generate,
    write_jsonl,
)

CFG = GeneratorConfig(seed=21, leads=6000, days=40, journeys=True)
J = tuple[list[Emitted], list[LeadTruth], ChannelTruth]


@pytest.fixture(scope="module")
def journeys() -> tuple[list[Emitted], list[LeadTruth], ChannelTruth]:
    truths: list[LeadTruth] = []
    channels = ChannelTruth()
    return list(generate(CFG, truth=truths.append, channel_truth=channels)), truths, channels


def _values(events: list[Emitted], kind: str) -> list[dict[str, object]]:
    return [e.value for e in events if e.kind == kind and isinstance(e.value, dict)]


def test_journeys_are_deterministic_by_seed(tmp_path: Path) -> None:
    cfg = GeneratorConfig(seed=3, leads=400, days=10, journeys=True)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_jsonl(generate(cfg), a)
    write_jsonl(generate(cfg), b)
    write_jsonl(generate(GeneratorConfig(seed=3, leads=400, days=10)), c)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_touchpoints_come_from_several_channels_and_validate(
    journeys: J,
) -> None:
    events, truths, _ = journeys
    own = {t.lead_id: t.channel for t in truths}
    foreign = defaultdict(set)
    for e in events:
        assert isinstance(e.value, dict)
        EVENT_MODELS[e.kind].model_validate(e.value)
        if e.kind == "touchpoint":
            v = e.value
            assert v["channel"] is not None
            if v["channel"] not in (DIRECT, own[str(v["lead_id"])]):
                foreign[str(v["lead_id"])].add(v["channel"])
                assert str(v["campaign_id"]) in next(
                    jc.campaigns for jc in JOURNEY if jc.channel == v["channel"]
                )
    # most leads are reached by another channel; many by two or more
    assert len(foreign) > 0.7 * len(truths)
    assert sum(len(s) >= 2 for s in foreign.values()) > 0.3 * len(truths)


def test_journey_touches_come_before_the_funnel(
    journeys: J,
) -> None:
    events, _, _ = journeys
    last_touch: dict[str, str] = {}
    for v in _values(events, "touchpoint"):
        if v["channel"] != DIRECT:
            last_touch[str(v["lead_id"])] = max(
                last_touch.get(str(v["lead_id"]), ""), str(v["occurred_at"])
            )
    for v in _values(events, "conversion"):
        assert str(v["occurred_at"]) > last_touch.get(str(v["lead_id"]), "")


def test_truth_removal_effects(journeys: J) -> None:
    _, truths, truth = journeys
    removal = truth.removal()
    # without its creator there is no lead: every lead loses at least its whole propensity
    assert sum(removal.values()) > sum(t.propensity for t in truths)
    assert DIRECT not in removal
    shares = truth.shares()
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    zero = [jc.channel for jc in JOURNEY if jc.effect == 0.0]
    assert zero == ["paid_social"]
    # paid_social's removal effect is only the leads it created
    created = sum(t.propensity for t in truths if t.channel == "paid_social")
    assert truth.removal()["paid_social"] == pytest.approx(created)


def test_reached_leads_convert_as_the_effects_say(
    journeys: J,
) -> None:
    """Conversion rates with and without a channel differ by its effect, not by its reach."""
    events, truths, _ = journeys
    reached: dict[str, set[str]] = defaultdict(set)
    for v in _values(events, "touchpoint"):
        reached[str(v["channel"])].add(str(v["lead_id"]))
    rate = {}
    for jc in JOURNEY:
        with_c = [t.converted for t in truths if t.lead_id in reached[jc.channel]]
        without = [t.converted for t in truths if t.lead_id not in reached[jc.channel]]
        rate[jc.channel] = statistics.mean(with_c) - statistics.mean(without)
    assert abs(rate["paid_social"]) < 0.03
    assert rate["events"] > 0.08 and rate["sales_outreach"] > 0.06
    assert rate["events"] > rate["email"] > rate["paid_social"]


def test_truth_file(tmp_path: Path, journeys: J) -> None:
    truth = journeys[2]
    path = tmp_path / "truth.channels.json"
    truth.write(path)
    doc = orjson.loads(path.read_bytes())
    assert doc["leads"] == len(journeys[1]) and doc["outcome"] == "sql"
    assert doc["shares"][DIRECT] == 0.0 and doc["effects"]["events"] == 0.9
    assert sum(doc["shares"].values()) == pytest.approx(1.0, abs=1e-5)


def test_single_channel_default_has_no_journeys() -> None:
    truths: list[LeadTruth] = []
    channels = ChannelTruth()
    cfg = GeneratorConfig(seed=2, leads=200, days=5)
    events = list(generate(cfg, truth=truths.append, channel_truth=channels))
    assert channels.removal() == {}
    for v in _values(events, "touchpoint"):
        assert v["channel"] == next(t.channel for t in truths if t.lead_id == v["lead_id"])


def test_generate_command_writes_the_channel_truth(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    args = ["generate", "--leads", "300", "--days", "5", "--journeys",
            "--jsonl", str(tmp_path / "e.jsonl"), "--truth", str(tmp_path / "truth.csv")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = orjson.loads((tmp_path / "truth.channels.json").read_bytes())
    assert doc["leads"] == len((tmp_path / "truth.csv").read_text().splitlines()) - 1
    assert sum(doc["shares"].values()) == pytest.approx(1.0, abs=1e-5)
    lines = (tmp_path / "e.jsonl").read_bytes().splitlines()
    channels = {orjson.loads(x)["value"].get("channel") for x in lines}
    assert {DIRECT, "sales_outreach"} <= channels
