"""Tabular exports: CSV (UTF-8 with BOM, or CP932 on request) and xlsx, with formula injection neutralised."""
import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook

JST = ZoneInfo("Asia/Tokyo")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "csv_cp932": ("text/csv; charset=shift_jis", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


def jst_text(value: datetime | None, seconds: bool = False) -> str:
    """A time as people here read it on screen: Japan time, 2026-11-25 14:03 (with seconds: 14:03:09), no offset,
    no microseconds. Exports keep cell_text()'s ISO 8601 with the offset, which no reader can misread."""
    if value is None:
        return ""
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def cell_text(value) -> str:
    """A value as text a spreadsheet will not execute: a leading formula character gets a quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, datetime):
        return value.astimezone(JST).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def render(fmt: str, headers: list[str], rows) -> bytes:
    """Render rows (iterables of raw values) in one of FORMATS. Every cell goes through cell_text()."""
    if fmt == "xlsx":
        wb = Workbook(write_only=True)
        ws = wb.create_sheet()
        ws.append([cell_text(h) for h in headers])
        for row in rows:
            ws.append([cell_text(v) for v in row])  # strings only: nothing is stored as a formula
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([cell_text(h) for h in headers])
    for row in rows:
        writer.writerow([cell_text(v) for v in row])
    if fmt == "csv_cp932":
        return buf.getvalue().encode("cp932", errors="replace")
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")
