"""A statistics table as a file: CSV (UTF-8 with BOM, or Shift_JIS) and JSON through nanbyo.exports' rules, xlsx with
the counts as numbers (a clerk sums them) and every text cell neutralised as exports.cell_text does."""
import io
import json

from openpyxl import Workbook

from nanbyo import exports

FORMATS = {**exports.FORMATS, "json": ("application/json", "json")}


def render(table, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps({"headings": table.headings, "rows": table.rows, "masked": table.masked},
                          ensure_ascii=False, indent=1).encode()
    if fmt != "xlsx":
        return exports.render(fmt, table.headings, table.rows)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("統計")
    sheet.append([exports.cell_text(h) for h in table.headings])
    for row in table.rows:
        sheet.append([value if isinstance(value, int) else exports.cell_text(value) for value in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
