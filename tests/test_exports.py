"""Exports: formula injection neutralised, CSV encodings, xlsx without formulas, and only rows in scope."""
import csv
import io
from datetime import date, datetime, timezone

import pytest
from openpyxl import load_workbook

from nanbyo import exports
from tests.helpers import OSAKA, TOKYO, gen_institution, gen_municipality, gen_user, login

DANGEROUS = ["=1+1", "+1+1", "-1+1", "@SUM(A1:A2)", "\t=1+1", "\r=1+1", "＝1+1", "＋1", "－1", "＠SUM(A1)",
             '=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0"]
HYPERLINK = '=HYPERLINK("http://x","y")'


# --- cell_text ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", DANGEROUS)
def test_cell_text_neutralises_a_leading_formula_character(value):
    assert exports.cell_text(value) == "'" + value


@pytest.mark.parametrize("value", ["東京見本病院", "abc", "1-2-3", "a=b", "メール@例", "", "'quoted"])
def test_cell_text_leaves_ordinary_text_alone(value):
    assert exports.cell_text(value) == value


def test_cell_text_formats_other_values():
    assert exports.cell_text(None) == ""
    assert exports.cell_text(True) == "はい" and exports.cell_text(False) == "いいえ"
    assert exports.cell_text(date(2026, 4, 1)) == "2026-04-01"
    # Datetimes are shown in JST with the offset, whatever zone they come in.
    assert exports.cell_text(datetime(2026, 3, 31, 15, 30, tzinfo=timezone.utc)) == "2026-04-01T00:30:00+09:00"
    assert exports.cell_text(42) == "42"


# --- render ----------------------------------------------------------------------------------------------------------

HEADERS = ["医療機関コード", "医療機関名", "備考"]
ROWS = [["1310000017", "東京見本病院", "髙橋①"], ["2710000019", HYPERLINK, "＝SUM(A1)"], ["2710000027", None, True]]


def test_csv_starts_with_the_bom_and_neutralises_formulas():
    body = exports.render("csv", HEADERS, ROWS)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))
    assert rows[0] == HEADERS
    assert rows[1] == ["1310000017", "東京見本病院", "髙橋①"]
    assert rows[2] == ["2710000019", "'" + HYPERLINK, "'＝SUM(A1)"]
    assert rows[3] == ["2710000027", "", "はい"]
    assert body.endswith(b"\r\n")


def test_csv_cp932_keeps_japanese_text():
    body = exports.render("csv_cp932", HEADERS, ROWS)
    assert not body.startswith(b"\xef\xbb\xbf")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")  # really CP932, not UTF-8 labelled otherwise
    rows = list(csv.reader(io.StringIO(body.decode("cp932"))))
    assert rows[0] == HEADERS
    assert rows[1] == ["1310000017", "東京見本病院", "髙橋①"]  # NEC/IBM extensions survive in CP932
    assert rows[2][1] == "'" + HYPERLINK


def xlsx_cells(body):
    wb = load_workbook(io.BytesIO(body))
    return [cell for ws in wb.worksheets for row in ws.iter_rows() for cell in row]


def test_xlsx_has_no_formula_cells():
    cells = xlsx_cells(exports.render("xlsx", HEADERS, [[v, v, v] for v in DANGEROUS] + ROWS))
    assert cells
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    values = [c.value for c in cells]
    assert "'" + HYPERLINK in values and "東京見本病院" in values and HEADERS[0] in values


def test_openpyxl_would_have_stored_a_formula():
    """The check above is meaningful: a raw '=' string does become a formula cell in openpyxl."""
    from openpyxl import Workbook
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append([HYPERLINK])
    out = io.BytesIO()
    wb.save(out)
    assert [c.data_type for c in xlsx_cells(out.getvalue())] == ["f"]


# --- through the admin view --------------------------------------------------------------------------------------------

@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    return {
        "tokyo_inst": gen_institution(tokyo, code="1310000017", name="東京見本病院"),
        "tokyo_formula": gen_institution(tokyo, code="1310000025", name=HYPERLINK),
        "osaka_inst": gen_institution(osaka, code="2710000019", name="大阪見本病院"),
        "tokyo_admin": gen_user("municipality_admin", municipality=tokyo),
        "operator": gen_user("operator_admin"),
    }


def export(client, fmt):
    r = client.get(f"/admin/institution/export/{fmt}/")
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.headers["Content-Disposition"].startswith("attachment; filename=")
    return r


def test_view_export_csv_contains_only_rows_in_scope(client, world):
    assert login(client, world["tokyo_admin"]).status_code == 302
    r = export(client, "csv")
    assert r.mimetype == "text/csv" and r.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.data[3:].decode("utf-8"))))
    assert rows[0] == ["医療機関コード", "医療機関名", "所在地", "所管自治体（難病）", "所管自治体（小慢）", "有効"]
    assert sorted(row[0] for row in rows[1:]) == ["1310000017", "1310000025"]
    assert "2710000019" not in r.data.decode("utf-8-sig") and "大阪" not in r.data.decode("utf-8-sig")
    assert ["1310000025", "'" + HYPERLINK, "テスト住所", "東京都", "東京都", "はい"] in rows


def test_view_export_csv_cp932_contains_only_rows_in_scope(client, world):
    login(client, world["tokyo_admin"])
    r = export(client, "csv_cp932")
    text = r.data.decode("cp932")
    assert "東京見本病院" in text and "東京都" in text
    assert "2710000019" not in text and "大阪見本病院" not in text


def test_view_export_xlsx_contains_only_rows_in_scope_and_no_formula(client, world):
    login(client, world["tokyo_admin"])
    r = export(client, "xlsx")
    assert r.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    cells = xlsx_cells(r.data)
    values = {c.value for c in cells}
    assert {"1310000017", "1310000025", "東京見本病院", "'" + HYPERLINK} <= values
    assert not values & {"2710000019", "大阪見本病院", "大阪府"}
    assert [c.coordinate for c in cells if c.data_type == "f"] == []


def test_operator_export_has_every_institution(client, world):
    """The scope test above is not vacuous: an operator's export does contain the 大阪府 row."""
    login(client, world["operator"])
    cells = xlsx_cells(export(client, "xlsx").data)
    values = {c.value for c in cells}
    assert {"1310000017", "1310000025", "2710000019", "大阪見本病院"} <= values
    assert [c.coordinate for c in cells if c.data_type == "f"] == []


def test_osaka_admin_gets_only_osaka(client, world):
    login(client, gen_user("municipality_admin", municipality=gen_municipality(OSAKA)))
    text = export(client, "csv").data.decode("utf-8-sig")
    assert "2710000019" in text and "1310000017" not in text and "HYPERLINK" not in text


def test_unknown_export_format_is_404(client, world):
    login(client, world["operator"])
    assert client.get("/admin/institution/export/json/").status_code == 404
    assert client.get("/admin/institution/export/tsv/").status_code == 404


def test_export_needs_the_export_permission(client, world):
    """A 責任者 may list its institution but not export it."""
    manager = gen_user("designated_doctor", institution=world["tokyo_inst"], manager=True)
    login(client, manager)
    assert client.get("/admin/institution/").status_code == 200
    assert client.get("/admin/institution/export/csv/").status_code == 403
