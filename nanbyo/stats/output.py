"""A statistics table as a file: CSV (UTF-8 with BOM, or Shift_JIS) and JSON through nanbyo.exports' rules, xlsx by
its writer (rows as ready XML: openpyxl's cell objects took longer than the count of a million documents) with the
counts as numbers (a clerk sums them) and every text cell neutralised as exports.cell_text does."""
import io
import json

from nanbyo import exports

FORMATS = {**exports.FORMATS, "json": ("application/json", "json")}


def render(table, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps({"headings": table.headings, "rows": table.rows, "masked": table.masked},
                          ensure_ascii=False, indent=1).encode()
    if fmt != "xlsx":
        return exports.render(fmt, table.headings, table.rows)
    out = io.BytesIO()
    cells = [[value if type(value) is int else exports.cell_text(value) for value in row] for row in table.rows]
    exports.write_xlsx(out, table.headings, [cells], rows=len(cells), title="統計")  # one chunk: every row
    return out.getvalue()
