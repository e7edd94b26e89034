"""The report's numbers against the source data, and every artefact opened and read back.

The expected values are computed in Python from the ingested events (not through the
query layer), then read back out of the generated text with regular expressions.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import openpyxl
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from reporting._period import Period
from reporting.labels import keep_money_together
from tests.reports.conftest import AUC_END, AUC_START, PERIOD, Store


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _truth(store: Store, period: Period) -> dict[str, Any]:
    """Leads created in ``period``, their outcomes so far, spend; overall and per channel."""
    ev = store.loaded.events
    created, campaign_of = {}, {}
    for e in ev["lead"]:
        if (
            e["event_type"] == "lead_created"
            and period.start <= e["occurred_at"].date() <= period.end
        ):
            created[e["lead_id"]] = e["channel"]
            campaign_of[e["lead_id"]] = e["campaign_id"]
    reached, won, revenue = set(), set(), defaultdict(float)
    for c in ev["conversion"]:
        if c["lead_id"] in created:
            if c["stage"] in ("sql", "opportunity", "won"):
                reached.add(c["lead_id"])
            if c["stage"] == "won":
                won.add(c["lead_id"])
                revenue[c["lead_id"]] = max(revenue[c["lead_id"]], float(c["revenue"]))
    spend: dict[str, float] = defaultdict(float)
    by_campaign: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for s in ev["spend"]:
        day = s["date"] if isinstance(s["date"], date) else date.fromisoformat(str(s["date"]))
        if period.start <= day <= period.end:
            spend[s["channel"]] += float(s["amount"])
            by_campaign[s["campaign_id"]][2] += float(s["amount"])
    for lead, campaign in campaign_of.items():
        by_campaign[campaign][0] += 1
        by_campaign[campaign][1] += revenue.get(lead, 0.0)
    by_channel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for lead, channel in created.items():
        by_channel[channel][0] += 1
        by_channel[channel][1] += revenue.get(lead, 0.0)
    for channel, amount in spend.items():
        by_channel[channel][2] += amount
    return {
        "leads": len(created), "sql": len(reached), "won": len(won),
        "revenue": sum(revenue.values()), "spend": sum(spend.values()), "channels": by_channel,
        "campaigns": by_campaign,
    }  # fmt: skip


def test_headline_numbers_come_from_the_data(store: Store) -> None:
    now, before = _truth(store, PERIOD), _truth(store, PERIOD.previous())
    text = store.report.summary[0]
    m = re.search(
        r"([\d,]+) new leads arrived \(([+-][\d.]+)% against the previous week\); ([\d,]+) of them"
        r" have reached SQL so far \(([\d.]+)% of them\), and ([\d,]+) deals worth USD ([\d,]+)"
        r" were won from them\. Spend was USD ([\d,]+) \(([+-][\d.]+)%\), a cost per lead of"
        r" USD ([\d,.]+) and a return on ad spend of ([\d.]+)\.", text)  # fmt: skip
    assert m, text
    leads, d_leads, sql, rate, won, revenue, spend, d_spend, cpl, roas = (
        _num(g) for g in m.groups()
    )
    assert leads == now["leads"] > 0
    assert d_leads == round(100 * (now["leads"] - before["leads"]) / before["leads"], 1)
    assert sql == now["sql"] and won == now["won"]
    assert rate == round(100 * now["sql"] / now["leads"], 1)
    assert revenue == round(now["revenue"])
    assert spend == round(now["spend"])
    assert d_spend == pytest.approx(
        100 * (now["spend"] - before["spend"]) / before["spend"], abs=0.051
    )
    assert cpl == pytest.approx(now["spend"] / now["leads"], abs=0.006)
    assert roas == pytest.approx(now["revenue"] / now["spend"], abs=0.006)


def test_best_and_worst_channels_come_from_the_data(store: Store) -> None:
    channels = _truth(store, PERIOD)["channels"]
    roas = {ch: rev / sp for ch, (_, rev, sp) in channels.items() if sp > 0}
    text = store.report.summary[1]
    m = re.search(r"Best paid channel: (\w+), with a return on ad spend of ([\d.]+) \(USD ([\d,]+)"
                  r" revenue on USD ([\d,]+) spend\); weakest: (\w+) at ([\d.]+)", text)  # fmt: skip
    assert m, text
    best, worst = max(roas, key=lambda c: roas[c]), min(roas, key=lambda c: roas[c])
    assert (m[1], m[5]) == (best, worst)
    assert _num(m[2]) == pytest.approx(roas[best], abs=0.006)
    assert _num(m[3]) == round(channels[best][1]) and _num(m[4]) == round(channels[best][2])
    assert _num(m[6]) == pytest.approx(roas[worst], abs=0.006)


def test_campaign_and_lead_change_sentences_come_from_the_data(store: Store) -> None:
    now, before = _truth(store, PERIOD), _truth(store, PERIOD.previous())
    roas = {c: rev / sp for c, (n, rev, sp) in now["campaigns"].items() if sp > 0 and n >= 10}
    m = re.search(r"Among campaigns with at least 10 leads, ([\w-]+) returned the most per USD spent"
                  r" \(([\d.]+)\) and ([\w-]+) the least \(([\d.]+)\)", store.report.summary[2])  # fmt: skip
    assert m, store.report.summary[2]
    assert _num(m[2]) == pytest.approx(max(roas.values()), abs=0.006) and roas[m[1]] == max(
        roas.values()
    )
    assert _num(m[4]) == pytest.approx(min(roas.values()), abs=0.006) and roas[m[3]] == min(
        roas.values()
    )
    change = {
        c: now["channels"][c][0] - before["channels"].get(c, [0.0])[0] for c in now["channels"]
    }
    m = re.search(
        r"The largest change in leads came from (\w+): ([+-][\d,]+) against",
        store.report.summary[1],
    )
    assert m and _num(m[2]) == change[m[1]] and abs(change[m[1]]) == max(map(abs, change.values()))


def test_anomaly_and_model_sentences_match_the_stored_rows(store: Store) -> None:
    story = " ".join(store.report.summary)
    assert (
        "2 anomalies were detected (1 critical); the most serious: paid_social leads 3.0x" in story
    )
    m = re.search(
        r"AUC of ([\d.]+) \(([\d.]+) at the start of the week; 0.5 is chance\) over ([\d,]+)"
        r" labelled",
        story,
    )
    assert m and (_num(m[1]), _num(m[2]), _num(m[3])) == (AUC_END, AUC_START, 2500)


def test_recommendation_text_matches_its_estimates(store: Store) -> None:
    recs = store.report.recommendations
    assert recs.budget == pytest.approx(_truth(store, PERIOD)["spend"], rel=1e-6)
    assert recs.period_start == PERIOD.end + timedelta(days=1)
    assert sum(c.recommended for c in recs.campaigns) == pytest.approx(recs.budget, rel=1e-6)
    moved = sum(abs(c.change) for c in recs.campaigns) / 2
    assert moved <= recs.guardrails["max_shift"] * recs.budget + 0.05
    assert recs.moves, "a market with very different returns per campaign should move money"
    for move in recs.moves:
        m = re.search(r"Move USD ([\d,]+) from ([\w-]+) \([\w ]+\) to ([\w-]+) \([\w ]+\): ([+-][\d.,]+)"
                      r" expected SQLs \(80% interval ([+-][\d.,]+) to ([+-][\d.,]+)\)", move.text)  # fmt: skip
        assert m, move.text
        assert (_num(m[1]), m[2], m[3]) == (round(move.amount), move.source, move.target)
        digits = 0 if abs(move.conversions.mean) >= 10 else 1
        assert _num(m[4]) == round(move.conversions.mean, digits)
        assert _num(m[5]) <= _num(m[4]) <= _num(m[6])
    first = store.report.summary[-1]
    assert (
        f"move USD {round(sum(abs(c.change) for c in recs.campaigns) / 2):,} of the USD {round(recs.budget):,}"
        in first
    )
    assert all(
        s.direction in ("higher", "lower") and s.rate_low <= s.rate <= s.rate_high
        for s in recs.segments
    )


def test_pdf_has_the_summary_and_renders(store: Store) -> None:
    pdf = next(p for p in store.files if p.suffix == ".pdf")
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    flat = " ".join(text.split())
    leads = f"{store.report.kpis.current.leads:,} new leads arrived"
    assert leads in flat
    assert "Executive summary" in flat and "Recommended spend next period" in flat
    doc = pdfium.PdfDocument(str(pdf))
    try:
        assert len(doc) >= 2
        for i in range(2):
            image = doc[i].render(scale=0.5).to_pil().convert("L")
            lo, hi = image.getextrema()
            assert hi - lo > 100, f"page {i + 1} looks blank"
    finally:
        doc.close()


def test_html_is_self_contained_with_charts(store: Store) -> None:
    html = next(p for p in store.files if p.suffix == ".html").read_text()
    assert html.count("<svg") == 4 and "<script" not in html
    shown = keep_money_together(store.report.summary[0], "USD")  # no break inside "USD 12"
    assert shown.replace("–", "&ndash;") in html or shown in html


def test_workbook_has_typed_sheets(store: Store) -> None:
    wb = openpyxl.load_workbook(next(p for p in store.files if p.suffix == ".xlsx"))
    assert wb.sheetnames == ["summary", *(t.name for t in store.report.tables)]
    assert wb["summary"]["A3"].value == store.report.summary[0]
    channels = next(t for t in store.report.tables if t.name == "channels")
    ws = wb["channels"]
    assert [c.value for c in ws[1]] == [c.label for c in channels.columns]
    for i, row in enumerate(channels.rows, start=2):
        cells = ws[i]
        assert cells[0].value == row[0]
        assert isinstance(cells[1].value, (int, float)) and cells[1].value == row[1]
        assert cells[4].value == pytest.approx(row[4]) and cells[4].number_format.endswith(
            "#,##0.00"
        )
    cohorts = wb["cohorts"]
    assert cohorts["A2"].is_date and cohorts["E2"].number_format == "0.0%"


def test_csv_one_file_per_table(store: Store) -> None:
    csvs = {p.stem.rsplit("-", 1)[-1]: p for p in store.files if p.suffix == ".csv"}
    assert set(csvs) == {t.name for t in store.report.tables}
    for table in store.report.tables:
        with csvs[table.name].open(newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == [c.key for c in table.columns]
        assert len(rows) == len(table.rows) + 1
        for got, want in zip(rows[1:], table.rows, strict=True):
            for g, w, col in zip(got, want, table.columns, strict=True):
                if w is None:
                    assert g == ""
                elif col.kind in ("int", "money", "pct", "ratio"):
                    assert float(g) == pytest.approx(float(w))
                else:
                    assert g == (w.isoformat() if isinstance(w, date) else str(w))


def _blocks(html: str) -> list[str]:
    """The text of every paragraph and list item, whitespace (no-break spaces too) folded."""
    found = re.findall(r"<(p|li)\b[^>]*>(.*?)</\1>", html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", body).split()) for _, body in found]


def test_no_paragraph_twice_and_every_label_reads_as_words(store: Store) -> None:
    html = next(p for p in store.files if p.suffix == ".html").read_text()
    blocks = [b for b in _blocks(html) if len(b) > 30]
    assert len(blocks) >= 8
    assert len(blocks) == len(set(blocks)), [b for b in blocks if blocks.count(b) > 1]
    for a in blocks:  # not repeated inside another either (a move inside the summary)
        assert not [b for b in blocks if b != a and a in b], a
    kpis = next(t for t in store.report.tables if t.name == "kpis")
    labels = [row[0] for row in kpis.rows]
    assert "Cost per lead" in labels and "SQL rate" in labels
    for row in kpis.rows:
        assert re.fullmatch(r"([A-Z][a-z]+|SQL)( [a-z]+| MQL| SQL)*", row[0]), row[0]
        assert row[1], f"{row[0]} has no unit"
    rate = next(r for r in kpis.rows if r[0] == "SQL rate")
    assert rate[1] == "% of new leads" and 1 < rate[2] < 100  # in percent, as labelled
    stages = [row[0] for row in next(t for t in store.report.tables if t.name == "funnel").rows]
    assert stages[:3] == ["New leads", "MQL", "SQL"]
    for table in store.report.tables:
        for column in table.columns:
            assert "_" not in column.label, (table.name, column.label)
    # Money never breaks between its currency and its amount.
    assert not re.search(r"USD \d", html) and re.search("USD\u00a0\\d", html)
    assert "=yes" not in html and "=no" not in html
