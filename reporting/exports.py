"""A report as files: HTML (Jinja2), PDF (the same HTML through WeasyPrint), CSV, Excel.

- HTML: one self-contained file (inline CSS and SVG charts), escaped by Jinja2.
- PDF: the HTML rendered by WeasyPrint (A4, page numbers).
- CSV: one file per table, header row first, plain numbers (no thousands separators).
- Excel: XlsxWriter, a summary sheet then one sheet per table; numbers, money,
  percentages and dates are typed cells with number formats, not text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import jinja2
import xlsxwriter

from reporting.labels import keep_money_together
from reporting.report import Report

__all__ = ["FORMATS", "Format", "export", "render_html"]

Format = Literal["pdf", "html", "csv", "xlsx"]
FORMATS: tuple[Format, ...] = ("pdf", "html", "csv", "xlsx")

_KPI_CARDS = (
    ("leads", "New leads", "int"), ("sql", "SQLs so far", "int"), ("won", "Won", "int"),
    ("revenue", "Revenue", "money0"), ("spend", "Spend", "money0"),
    ("cpl", "Cost per lead", "money"), ("roas", "Return on ad spend", "ratio"),
    ("conversion_rate", "SQL rate", "pct"),
)  # fmt: skip


def _cell(value: Any, kind: str, currency: str = "") -> str:
    """A value as the HTML shows it.

    Money keeps its currency and amount together (a no-break space between them).

    >>> _cell(1234.5, "money", "USD"), _cell(0.1234, "pct"), _cell(None, "int"), _cell(3, "int")
    ('USD\xa01,234.50', '12.3%', '–', '3')
    >>> _cell(12345, "ratio"), _cell(-2023.6, "money", "USD")
    ('12,345', '−USD\xa02,023.60')
    """
    if value is None:
        return "–"
    if kind == "money":
        sign = "−" if value < 0 else ""
        return f"{sign}{currency}\u00a0{abs(value):,.2f}"
    if kind == "money0":
        sign = "−" if value < 0 else ""
        return f"{sign}{currency}\u00a0{abs(value):,.0f}"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "int":
        return f"{value:,}"
    if kind == "ratio" and isinstance(value, float):
        return f"{value:,.2f}"
    if kind == "ratio" and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _change(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = _cell
    env.filters["change"] = _change
    env.filters["money_together"] = keep_money_together
    return env


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report, current=report.kpis.current.model_dump(), kpi_cards=_KPI_CARDS
    )


def export(report: Report, formats: Iterable[Format], out_dir: Path) -> list[Path]:
    """Write the report in each format into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    html: str | None = None
    for fmt in dict.fromkeys(formats):
        if fmt not in FORMATS:
            raise ValueError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")
        if fmt in ("html", "pdf") and html is None:
            html = render_html(report)
        if fmt == "html":
            path = out_dir / f"{report.stem}.html"
            path.write_text(html or "", encoding="utf-8")
            written.append(path)
        elif fmt == "pdf":
            from weasyprint import HTML  # imported on use: it loads Pango and fonts

            path = out_dir / f"{report.stem}.pdf"
            HTML(string=html or "").write_pdf(path)
            written.append(path)
        elif fmt == "csv":
            written.extend(_csv(report, out_dir))
        else:
            written.append(_xlsx(report, out_dir / f"{report.stem}.xlsx"))
    return written


def _csv(report: Report, out_dir: Path) -> list[Path]:
    paths = []
    for table in report.tables:
        path = out_dir / f"{report.stem}-{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([c.key for c in table.columns])
            for row in table.rows:
                w.writerow(["" if v is None else _plain(v) for v in row])
        paths.append(path)
    return paths


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _xlsx(report: Report, path: Path) -> Path:
    wb = xlsxwriter.Workbook(str(path), {"remove_timezone": True})
    try:
        bold = wb.add_format({"bold": True, "bg_color": "#F3F5F8", "border": 1})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        formats = {
            "int": wb.add_format({"num_format": "#,##0"}),
            "money": wb.add_format({"num_format": f'"{report.currency}" #,##0.00'}),
            "pct": wb.add_format({"num_format": "0.0%"}),
            "ratio": wb.add_format({"num_format": "#,##0.00"}),
            "date": wb.add_format({"num_format": "yyyy-mm-dd"}),
            "text": wb.add_format({}),
        }
        summary = wb.add_worksheet("summary")
        summary.set_column(0, 0, 120)
        summary.write_string(0, 0, report.title, wb.add_format({"bold": True, "font_size": 14}))
        for i, paragraph in enumerate(report.summary, start=2):
            summary.write_string(i, 0, paragraph, wrap)
        for table in report.tables:
            ws = wb.add_worksheet(table.name[:31])
            for j, col in enumerate(table.columns):
                ws.write_string(0, j, col.label, bold)
                ws.set_column(j, j, 14 if col.kind != "text" else 24)
            for i, row in enumerate(table.rows, start=1):
                for j, (col, value) in enumerate(zip(table.columns, row, strict=True)):
                    _write(ws, i, j, value, formats[col.kind])
            ws.freeze_panes(1, 0)
            if table.rows:
                ws.autofilter(0, 0, len(table.rows), len(table.columns) - 1)
    finally:
        wb.close()
    return path


def _write(ws: Any, row: int, col: int, value: Any, fmt: Any) -> None:
    if value is None:
        ws.write_blank(row, col, None, fmt)
    elif isinstance(value, bool):
        ws.write_boolean(row, col, value)
    elif isinstance(value, int | float):
        ws.write_number(row, col, float(value), fmt)
    elif isinstance(value, datetime):
        ws.write_datetime(row, col, value.replace(tzinfo=None), fmt)
    elif isinstance(value, date):
        ws.write_datetime(row, col, datetime(value.year, value.month, value.day), fmt)
    else:
        ws.write_string(row, col, str(value))
