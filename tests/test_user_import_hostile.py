"""医療機関ユーザデータファイル: hostile and messy files.

Each file is either imported correctly or refused with a clear Japanese message, and a refused file changes
nothing. The rules themselves (kinds, codes, kana, duplicates in csv...) are in test_user_import.py.
"""
import datetime
import io
import re
import struct
import time
import tracemalloc
import zipfile

import openpyxl
import pytest

from nanbyo import safe_files, userfile
from tests.helpers import csrf_token, gen_institution, gen_municipality, gen_user, login
from tests.userfile_helpers import counts, csv_bytes, doctor_row, xlsx_bytes

MB = 1024 * 1024
TOO_MANY_ROWS = "データが5000行を超えています。ファイルを分けてください。"
WRONG_KIND = "ファイルの種類が正しくありません（.xlsx または .csv、中身と拡張子が一致すること）。"
UNKNOWN_ENCODING = "文字コードを判別できません。UTF-8 または Shift_JIS（CP932）で保存してください。"
BROKEN = "xlsx ファイルが壊れています。"
UNREADABLE = "xlsx ファイルを読み込めません。"
MERGED = "結合されたセルがあります。セルの結合を解除してください。"
HEADER_UNKNOWN = ("1行目: 見出し{}は使えません。使える見出し: " + "、".join(userfile.LABELS)
                  + "（通知の見出し名などの別名も使えます。一覧は取込画面の「列の定義」にあります）")
DTD = "XML に DOCTYPE や実体宣言は使えません。"


def refused(municipality, filename, data):
    """Plan the file, expect it refused, prove that importing it anyway changes nothing; the messages."""
    before = counts()
    result = userfile.plan(municipality, filename, data)
    assert not result.ok and not result.rows
    with pytest.raises(userfile.FileRefused):
        userfile.execute(result, filename=filename, data=data)
    assert counts() == before
    return [str(p) for p in result.problems]


def imported(municipality, filename, data, expected_rows):
    """Plan and import; the batch's users, checked against the counts."""
    before = counts()
    result = userfile.plan(municipality, filename, data)
    assert result.ok, [str(p) for p in result.problems]
    batch = userfile.execute(result, filename=filename, data=data)
    after = counts()
    assert after[0] == before[0] + expected_rows and after[4] == before[4] + 1
    return batch.users


def rezip(data, replace):
    """The same zip with some parts' bytes changed: replace = {part name: function(bytes) -> bytes}."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            body = src.read(info.filename)
            z.writestr(info.filename, replace[info.filename](body) if info.filename in replace else body)
    return out.getvalue()


SHEET = "xl/worksheets/sheet1.xml"


# --- ZIP bombs -------------------------------------------------------------------------------------------------------

def zip_bomb(size, lie_about_size=None):
    """A real xlsx whose worksheet part is `size` bytes of zeros, written in 1 MB chunks (the test stays light).

    lie_about_size: the uncompressed size to write into the zip headers instead of the real one.
    """
    template = zipfile.ZipFile(io.BytesIO(xlsx_bytes([doctor_row(1)])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in template.infolist():
            if info.filename == SHEET:
                with z.open(SHEET, "w") as part:
                    chunk = bytes(MB)
                    for _ in range(size // MB):
                        part.write(chunk)
            else:
                z.writestr(info.filename, template.read(info.filename))
    data = bytearray(out.getvalue())
    if lie_about_size is not None:
        info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(SHEET)
        struct.pack_into("<I", data, info.header_offset + 22, lie_about_size)  # local file header
        for match in re.finditer(re.escape(b"PK\x01\x02"), bytes(data)):  # central directory entry
            start = match.start()
            name_length = struct.unpack_from("<H", data, start + 28)[0]
            if data[start + 46:start + 46 + name_length] == SHEET.encode():
                struct.pack_into("<I", data, start + 24, lie_about_size)
    return bytes(data)


@pytest.fixture
def no_openpyxl(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("openpyxl must not open a ZIP bomb")
    monkeypatch.setattr(openpyxl, "load_workbook", refuse)


def peak_memory(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_zip_bomb_is_refused_before_openpyxl_opens_it(tokyo, hospital, no_openpyxl):
    bomb = zip_bomb(200 * MB)
    assert len(bomb) < MB, "200 MB of zeros deflate to a few hundred KB"
    assert zipfile.ZipFile(io.BytesIO(bomb)).getinfo(SHEET).file_size == 200 * MB
    before = counts()
    result, peak = peak_memory(lambda: userfile.plan(tokyo, "bomb.xlsx", bomb))
    assert [str(p) for p in result.problems] == ["xlsx ファイルの展開後のサイズが大きすぎます。"]
    assert peak < 20 * MB, f"peak {peak / MB:.1f} MB while refusing the bomb"
    assert counts() == before


def test_small_zip_bomb_is_refused_by_its_compression_ratio(tokyo, hospital, no_openpyxl):
    bomb = zip_bomb(20 * MB)  # under the 50 MB total, but ~1000:1
    assert refused(tokyo, "bomb.xlsx", bomb) == ["xlsx ファイルの圧縮率が異常です（ZIP 爆弾の疑い）。"]


def test_zip_bomb_that_lies_about_its_size_is_cut_off_by_the_crc(tokyo, hospital):
    # The headers claim 5,000 bytes, so the size and ratio checks pass; zipfile stops inflating at the
    # declared size and the CRC no longer matches.
    bomb = zip_bomb(200 * MB, lie_about_size=5000)
    messages, peak = peak_memory(lambda: refused(tokyo, "bomb.xlsx", bomb))
    assert messages == [BROKEN]
    assert peak < 20 * MB, f"peak {peak / MB:.1f} MB"


def test_zip_with_too_many_parts_is_refused(tokyo, hospital, no_openpyxl):
    data = rezip(xlsx_bytes([doctor_row(1)]), {})
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as z:
        for i in range(100):
            z.writestr(f"xl/media/filler{i}.bin", b"x")
    assert refused(tokyo, "many.xlsx", out.getvalue()) == ["xlsx ファイルの構成要素が多すぎます。"]


def test_bzip2_or_lzma_parts_are_refused(tokyo, hospital, no_openpyxl):
    # zipfile inflates bzip2/LZMA reads without an output limit; xlsx writers only use deflate.
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", method) as z:
            source = zipfile.ZipFile(io.BytesIO(xlsx_bytes([doctor_row(1)])))
            for info in source.infolist():
                z.writestr(info.filename, source.read(info.filename))
        assert refused(tokyo, "u.xlsx", out.getvalue()) == ["xlsx ファイルの圧縮形式に対応していません。"]


def test_entity_expansion_in_the_worksheet_is_refused_before_parsing(tokyo, hospital):
    laughs = b'<!DOCTYPE worksheet [<!ENTITY a0 "ha">' + b"".join(
        b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 9)) + b"]>"
    data = rezip(xlsx_bytes([doctor_row(1)]), {
        SHEET: lambda b: b.replace(b"<worksheet", laughs + b"<worksheet", 1).replace(b"13-N-0001", b"&a8;")})
    messages, peak = peak_memory(lambda: refused(tokyo, "laughs.xlsx", data))
    assert messages == [DTD]
    assert peak < 20 * MB


# --- DTDs in any encoding --------------------------------------------------------------------------------------------

UTF16 = '<?xml version="1.0" encoding="UTF-16"?>'
UTF16_CASES = [("utf-16", UTF16), ("utf-16", ""), ("utf-16-le", UTF16), ("utf-16-be", UTF16)]
UTF16_IDS = ["bom-and-declaration", "bom-only", "le-declared-no-bom", "be-declared-no-bom"]


def utf16(encoding, declaration, root, entity=True):
    """Rewrite a UTF-8 part in UTF-16; entity: an internal DTD declares &e; and the "NAME" text becomes &e;."""
    def rewrite(body):
        text = body.decode("utf-8")
        if entity:
            dtd = f'<!DOCTYPE {root} [<!ENTITY e "偽名">]>'
            text = text.replace(f"<{root}", dtd + f"<{root}", 1).replace("NAME", "&e;")
        return (declaration + text).encode(encoding)
    return rewrite


SST = ('<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
       "<si><t>NAME</t></si></sst>")
SST_TYPE = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SST_REL = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"


def with_shared_strings(data, sst):
    """The data with G2's inline "NAME" moved to a shared strings part whose bytes are sst."""
    data = rezip(data, {
        SHEET: lambda b: b.replace(b'<c r="G2" t="inlineStr"><is><t>NAME</t></is></c>',
                                   b'<c r="G2" t="s"><v>0</v></c>'),
        "[Content_Types].xml": lambda b: b.replace(
            b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="%s"/></Types>' % SST_TYPE),
        "xl/_rels/workbook.xml.rels": lambda b: b.replace(
            b"</Relationships>", b'<Relationship Id="rId9" Type="%s" Target="sharedStrings.xml"/></Relationships>'
            % SST_REL),
    })
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("xl/sharedStrings.xml", sst)
    return out.getvalue()


def named(n):
    return doctor_row(n, **{"氏名 姓": "NAME"})


@pytest.mark.parametrize("encoding,declaration", UTF16_CASES, ids=UTF16_IDS)
def test_utf16_worksheet_with_an_entity_is_refused(tokyo, hospital, encoding, declaration):
    # A byte search for "<!DOCTYPE" missed these, and openpyxl's parser expanded &e; into the doctor's name.
    data = rezip(xlsx_bytes([named(1)]), {SHEET: utf16(encoding, declaration, "worksheet")})
    assert refused(tokyo, "utf16.xlsx", data) == [DTD]


@pytest.mark.parametrize("encoding,declaration", UTF16_CASES, ids=UTF16_IDS)
def test_utf16_shared_strings_with_an_entity_are_refused(tokyo, hospital, encoding, declaration):
    data = with_shared_strings(xlsx_bytes([named(1)]), utf16(encoding, declaration, "sst")(SST.encode()))
    assert refused(tokyo, "utf16.xlsx", data) == [DTD]


@pytest.mark.parametrize("encoding,declaration", UTF16_CASES, ids=UTF16_IDS)
def test_utf16_parts_without_a_dtd_are_imported(tokyo, hospital, encoding, declaration):
    # UTF-16 is valid XML: a part is refused for its DTD, not for its encoding.
    sst = utf16(encoding, declaration, "sst", entity=False)(SST.replace("NAME", "共有").encode())
    data = with_shared_strings(xlsx_bytes([named(1), named(2)]), sst)
    data = rezip(data, {SHEET: utf16(encoding, declaration, "worksheet", entity=False)})
    first, second = imported(tokyo, "utf16.xlsx", data, 2)
    assert (first.name, second.name) == ("共有 医師1", "NAME 医師2")


def test_dtd_in_a_part_with_any_name_is_refused(tokyo, hospital):
    # openpyxl follows the relationships, so a worksheet need not end in .xml: a part is checked by its content.
    renamed = b"xl/worksheets/sheet1.bin"
    data = rezip(xlsx_bytes([named(1)]), {
        SHEET: utf16("utf-16", UTF16, "worksheet"),
        "xl/_rels/workbook.xml.rels": lambda b: b.replace(SHEET.encode(), renamed),
        "[Content_Types].xml": lambda b: b.replace(SHEET.encode(), renamed)})
    data = data.replace(SHEET.encode(), renamed)  # the part's name, in both zip headers (same length)
    assert renamed.decode() in zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert refused(tokyo, "renamed.xlsx", data) == [DTD]


@pytest.mark.parametrize("encoding,declaration", UTF16_CASES + [("utf-8", "")], ids=UTF16_IDS + ["utf-8"])
def test_parse_xml_refuses_a_dtd_in_any_encoding(encoding, declaration):
    entity = (declaration + '<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>').encode(encoding)
    with pytest.raises(safe_files.UnsafeFile, match=DTD):
        safe_files.parse_xml(entity)
    assert safe_files.parse_xml((declaration + "<r>見本</r>").encode(encoding)).text == "見本"


# --- size limits -----------------------------------------------------------------------------------------------------

def many_rows(n):
    return [doctor_row(i) for i in range(1, n + 1)]


def fast_xlsx(rows):
    """xlsx_bytes, but openpyxl's write-only mode (thousands of rows)."""
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(userfile.SHEET_NAME)
    ws.append(userfile.LABELS)
    for row in rows:
        ws.append([row.get(label, "") for label in userfile.LABELS])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_more_than_5000_data_rows_are_refused(tokyo, hospital, fmt):
    rows = many_rows(5001)
    data = csv_bytes(rows) if fmt == "csv" else fast_xlsx(rows)
    assert refused(tokyo, f"big.{fmt}", data) == [TOO_MANY_ROWS]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_exactly_5000_data_rows_are_read(fmt):
    rows = many_rows(5000)
    data = csv_bytes(rows) if fmt == "csv" else fast_xlsx(rows)
    records, problems = userfile.parse_rows(userfile.read_table(f"big.{fmt}", data))
    assert len(records) == 5000 and not problems
    assert records[-1]["_row"] == 5001 and records[-1]["doctor_number"] == "13-N-5000"


def test_formatted_but_empty_rows_do_not_count_as_data(tokyo, hospital):
    # A clerk formats the sheet down to row 8000 (cells styled, nothing typed): 3 doctors, not 8000 rows.
    def format_rows(ws):
        for row in range(5, 8001):
            for column in range(1, len(userfile.LABELS) + 1):
                ws.cell(row=row, column=column).number_format = "@"
    data = xlsx_bytes(many_rows(3), cell_hook=format_rows)
    assert len(imported(tokyo, "formatted.xlsx", data, 3)) == 3
    # Excel saves such a sheet as csv with empty ",,,," lines.
    blank_lines = ("," * 13 + "\r\n") * 8000
    data = csv_bytes([doctor_row(4)]) + blank_lines.encode()
    assert len(imported(tokyo, "formatted.csv", data, 1)) == 1


def test_blank_rows_are_still_limited(tokyo, hospital):
    data = csv_bytes([doctor_row(1)]) + b",\r\n" * userfile.MAX_SHEET_ROWS
    assert refused(tokyo, "blank.csv", data) == [
        "行数が多すぎます（空白行を含めて100000行まで）。不要な行を削除してください。"]


def test_forged_dimension_does_not_make_rows_16384_cells_wide(tokyo, hospital):
    # <dimension ref="A1:XFD…"> makes openpyxl pad every row to the last column: 5,000 rows of 16,384 cells
    # took ~700 MB before the importer capped the width it reads.
    data = rezip(fast_xlsx(many_rows(2000)), {
        SHEET: lambda b: re.sub(rb"<dimension ref=\"[^\"]*\"/>", b"", b).replace(
            b"<sheetData>", b'<dimension ref="A1:XFD2001"/><sheetData>', 1)})
    start = time.monotonic()
    (records, problems), peak = peak_memory(lambda: userfile.parse_rows(userfile.read_table("wide.xlsx", data)))
    assert len(records) == 2000 and not problems
    assert peak < 40 * MB, f"peak {peak / MB:.0f} MB"
    assert time.monotonic() - start < 30


def test_rows_past_the_declared_dimension_are_read(tokyo, hospital):
    # openpyxl's read-only sheet stops at <dimension>'s last row: 3 doctors under "A1:N2" imported 1.
    data = rezip(xlsx_bytes(many_rows(3)), {
        SHEET: lambda b: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:N2"/>', b)})
    users = imported(tokyo, "dimension.xlsx", data, 3)
    assert sorted(u.designations[0].number for u in users) == ["13-N-0001", "13-N-0002", "13-N-0003"]


def test_a_cell_in_the_last_row_is_refused_quickly(tokyo, hospital):
    # Read past <dimension>, a lone cell at row 1,048,576 stands behind a million blank rows: the row limit stops the
    # reading at 100,000 of them, and those cost no per-cell work.
    data = rezip(xlsx_bytes([doctor_row(1)]), {SHEET: lambda b: b.replace(
        b"</sheetData>", b'<row r="1048576"><c r="A1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>')})
    start = time.monotonic()
    assert refused(tokyo, "far.xlsx", data) == [
        "行数が多すぎます（空白行を含めて100000行まで）。不要な行を削除してください。"]
    assert time.monotonic() - start < 5


def test_file_over_10_mb_is_refused(tokyo, hospital):
    data = csv_bytes([doctor_row(1)]) + b" " * (10 * MB)
    assert refused(tokyo, "huge.csv", data) == ["ファイルが大きすぎます（10MB まで）。"]


TOO_LONG = "CSV ファイルを読み込めません: {}行目に1000文字を超える項目があります。"


def test_field_over_1000_characters_is_refused(tokyo, hospital):
    rows = [doctor_row(1), doctor_row(2, **{"部署（部門/診療科）": "x" * 1001})]
    assert refused(tokyo, "long.csv", csv_bytes(rows)) == [TOO_LONG.format(3)]
    rows = [doctor_row(1), doctor_row(2, **{"部署（部門/診療科）": "x" * 200_000})]  # over csv's own limit too
    assert refused(tokyo, "long.csv", csv_bytes(rows)) == [TOO_LONG.format(3)]
    # a quoted field that runs over many lines: csv's own limit
    rows = [doctor_row(1, **{"部署（部門/診療科）": "x\n" * 100_000})]
    assert refused(tokyo, "long.csv", csv_bytes(rows)) == [
        "CSV ファイルを読み込めません（項目が長すぎるか、CSV の形式が正しくありません）。"]


def nine_mb_field(encoding="utf-8-sig", tail=""):
    return csv_bytes([doctor_row(1, **{"部署（部門/診療科）": "x" * (9 * MB - 400) + tail})], encoding=encoding)


@pytest.mark.parametrize("make,row", [
    (lambda: b"x" * (9 * MB), 1),  # the file is one field
    (nine_mb_field, 2),
    (lambda: nine_mb_field("utf-8", tail="😀"), 2),  # one wide character made the decoded text 4 bytes a character
    (lambda: nine_mb_field("cp932"), 2),  # read first as UTF-8
], ids=["one-field", "utf-8-sig", "utf-8-wide-character", "cp932"])
def test_a_9_mb_field_is_refused_without_copying_the_file(tokyo, hospital, make, row):
    # The whole file decoded to one str, then copied by StringIO: 55-110 MB at peak before csv refused the field.
    data = make()
    result, peak = peak_memory(lambda: userfile.plan(tokyo, "long.csv", data))
    assert [str(p) for p in result.problems] == [TOO_LONG.format(row)]
    assert peak < 2 * MB, f"peak {peak / MB:.1f} MB for a {len(data) / MB:.1f} MB file"


# --- sheet, header, merged cells -------------------------------------------------------------------------------------

def test_wrong_sheet_name_is_refused(tokyo, hospital):
    assert refused(tokyo, "u.xlsx", xlsx_bytes([doctor_row(1)], sheet="Sheet1")) == [
        "シート「医療機関ユーザデータ」がありません（テンプレートのシートに入力してください）。"]


def test_data_sheet_need_not_be_the_first(tokyo, hospital):
    def guide_first(ws):
        ws.parent.create_sheet("記入方法", 0).append(["説明"])
        ws.parent.active = 0
    assert len(imported(tokyo, "u.xlsx", xlsx_bytes(many_rows(2), cell_hook=guide_first), 2)) == 2


@pytest.mark.parametrize("header, messages", [
    ([label.replace("指定医番号", "指定医No") for label in userfile.LABELS],
     [HEADER_UNKNOWN.format("「指定医No」"), "1行目: 必須の列がありません: 指定医番号"]),
    (userfile.LABELS + ["備考"], [HEADER_UNKNOWN.format("「備考」")]),
    (userfile.LABELS + ["氏名（姓）"], ["1行目: 「氏名 姓」の列が2つあります（見出し「氏名 姓」「氏名(姓)」）。1列にしてください"]),
    ([label for label in userfile.LABELS if label not in ("指定医区分", "カナ 名")],
     ["1行目: 必須の列がありません: 指定医区分、カナ 名"]),
], ids=["wrong", "extra", "twice", "missing"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_headings_that_name_no_column_or_miss_one_are_refused_by_name(tokyo, hospital, header, messages, fmt):
    rows = [doctor_row(1)]
    data = csv_bytes(rows, header=header) if fmt == "csv" else xlsx_bytes(rows, header=header)
    assert refused(tokyo, f"u.{fmt}", data) == messages


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_headings_in_another_order_and_without_optional_columns_are_read(tokyo, hospital, fmt):
    header = [label for label in reversed(userfile.LABELS) if label not in ("電話", "指定期間 終了")]
    data = csv_bytes(many_rows(2), header=header) if fmt == "csv" else xlsx_bytes(many_rows(2), header=header)
    users = imported(tokyo, f"u.{fmt}", data, 2)
    assert [u.designations[0].number for u in users] == ["13-N-0001", "13-N-0002"]
    assert users[0].phone == "" and users[0].designations[0].valid_until is None
    assert str(users[0].designations[0].valid_from) == "2026-04-01"


def test_thousands_of_unknown_headings_make_one_short_message(tokyo, hospital):
    header = userfile.LABELS + [f"列{i}" for i in range(2000)]
    [message] = refused(tokyo, "wide.csv", csv_bytes([doctor_row(1)], header=header))
    assert "「列9」ほか1990件は使えません" in message and len(message) < 600


def test_a_long_unknown_heading_is_shortened_in_the_message(tokyo, hospital):
    [message] = refused(tokyo, "u.csv", csv_bytes([doctor_row(1)], header=userfile.LABELS + ["あ" * 900]))
    assert f"「{'あ' * 40}…」" in message and len(message) < 400


def test_missing_header_row_is_refused(tokyo, hospital):
    data = csv_bytes([doctor_row(2)], header=userfile.LABELS)
    data = data.split(b"\r\n", 1)[1]  # the header line dropped: the first doctor is read as the header
    message = refused(tokyo, "u.csv", data)[0]
    assert message.startswith("1行目: 見出し「難病指定医」「13-N-0002」")


def test_values_under_an_empty_heading_are_refused(tokyo, hospital):
    header = userfile.LABELS[:5] + [""] + userfile.LABELS[5:]
    keys = userfile.LABELS[:5] + ["空"] + userfile.LABELS[5:]
    data = csv_bytes([doctor_row(1), doctor_row(2, 空="値")], header=header, keys=keys)
    assert refused(tokyo, "u.csv", data) == ["3行目 見出しのない列に値があります"]
    data = csv_bytes([doctor_row(1)], header=header, keys=keys)
    assert len(imported(tokyo, "u.csv", data, 1)) == 1, "an empty column under an empty heading is harmless"


def test_header_with_zenkaku_spaces_is_accepted(tokyo, hospital):
    header, body = csv_bytes([doctor_row(1)]).split(b"\r\n", 1)
    data = header.replace(" ".encode(), "　".encode()) + b"\r\n" + body
    assert "氏名　姓".encode() in data
    assert len(imported(tokyo, "u.csv", data, 1)) == 1


def test_merged_cells_are_refused(tokyo, hospital):
    data = xlsx_bytes(many_rows(3), cell_hook=lambda ws: ws.merge_cells("F2:F4"))
    assert refused(tokyo, "merged.xlsx", data) == [MERGED]


def test_merged_cells_written_with_a_namespace_prefix_are_refused(tokyo, hospital):
    # Valid SpreadsheetML from generators that prefix the main namespace (x:mergeCell); not only <mergeCell .../>.
    merge = (b'<x:mergeCells xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1">'
             b'<x:mergeCell ref="F2:F3"/></x:mergeCells>')
    data = rezip(xlsx_bytes(many_rows(2)), {SHEET: lambda b: b.replace(b"</sheetData>", b"</sheetData>" + merge)})
    assert refused(tokyo, "merged.xlsx", data) == [MERGED]


# --- cell contents ---------------------------------------------------------------------------------------------------

def test_excel_serial_numbers_and_date_cells_are_imported_as_dates(tokyo, hospital):
    def dates(ws):
        ws["M2"], ws["N2"] = 46113, 47938  # Excel serial numbers: 2026-04-01, 2031-03-31
        ws["M3"], ws["N3"] = datetime.date(2026, 4, 1), datetime.datetime(2031, 3, 31)
        ws["M3"].number_format = ws["N3"].number_format = "yyyy/mm/dd"
        ws["M4"], ws["N4"] = 46113.0, None  # a float serial; no end date
    users = imported(tokyo, "dates.xlsx", xlsx_bytes(many_rows(3), cell_hook=dates), 3)
    periods = [(u.designations[0].valid_from, u.designations[0].valid_until) for u in users]
    assert periods == [(datetime.date(2026, 4, 1), datetime.date(2031, 3, 31))] * 2 + [
        (datetime.date(2026, 4, 1), None)]


def test_formulas_are_refused(tokyo, hospital):
    def formulas(ws):
        ws["F2"] = '=HYPERLINK("http://x","y")'
        ws["B3"] = "=1+1"
    assert refused(tokyo, "f.xlsx", xlsx_bytes(many_rows(2), cell_hook=formulas)) == [
        "2行目 部署（部門/診療科）: 数式は使えません。値を入力してください",
        "3行目 指定医番号: 数式は使えません。値を入力してください"]


def test_nul_in_csv_is_refused(tokyo, hospital):
    data = csv_bytes([doctor_row(1, **{"氏名 姓": "見\x00本"})])
    assert refused(tokyo, "nul.csv", data) == ["ファイルに NUL 文字が含まれています（テキストの CSV ではありません）。"]
    # Excel's 「Unicode テキスト」 is UTF-16: NUL bytes everywhere, refused the same way.
    utf16 = csv_bytes([doctor_row(1)], encoding="utf-16")
    assert refused(tokyo, "utf16.csv", utf16) == ["ファイルに NUL 文字が含まれています（テキストの CSV ではありません）。"]


def test_nul_in_an_xlsx_cell_is_refused(tokyo, hospital):
    # openpyxl will not write a NUL (XML 1.0 cannot hold one), so the worksheet XML is edited by hand: a raw NUL
    # byte and a &#0; reference are both malformed XML, found while the sheet is read.
    with pytest.raises(openpyxl.utils.exceptions.IllegalCharacterError):
        xlsx_bytes([doctor_row(1, **{"氏名 姓": "見\x00本"})])
    for nul in (b"\x00", b"&#0;"):
        data = rezip(xlsx_bytes([doctor_row(1)]), {SHEET: lambda b: b.replace(b"13-N-0001", b"13-N" + nul + b"0001")})
        assert refused(tokyo, "nul.xlsx", data) == [UNREADABLE]


def test_cp932_csv_with_japanese_text_is_imported(tokyo, hospital):
    data = csv_bytes([doctor_row(1, **{"氏名 姓": "髙橋", "氏名 名": "﨑子", "カナ 名": "サキコ"})], encoding="cp932")
    [user] = imported(tokyo, "sjis.csv", data, 1)
    assert user.name == "髙橋 﨑子" and user.name_kana == "ミホン サキコ"
    assert user.primary_membership.department == "脳神経内科"


def test_cp932_gaiji_is_refused_naming_row_and_column(tokyo, hospital):
    data = csv_bytes([doctor_row(1), doctor_row(2, **{"氏名 姓": "外字"})], encoding="cp932")
    data = data.replace("外字".encode("cp932"), b"\xf0\x40")  # the first 外字 code point (U+E000 in cp932)
    assert b"\xf0\x40".decode("cp932") == "\ue000"
    assert refused(tokyo, "gaiji.csv", data) == [
        "3行目 氏名 姓: 外字（機種依存文字）が含まれています。常用の文字に置き換えてください"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_encodings_are_detected(tokyo, hospital, encoding):
    data = csv_bytes([doctor_row(1, **{"氏名 姓": "山田", "部署（部門/診療科）": "小児科"})], encoding=encoding)
    [user] = imported(tokyo, f"{encoding}.csv", data, 1)
    assert user.name == "山田 医師1" and user.primary_membership.department == "小児科"


@pytest.mark.parametrize("data", [
    b"\x85\x40\x85\x40,abc\r\n",  # invalid as UTF-8 and as CP932 (0x85 is no CP932 lead byte)
    b"\xef\xbb\xbf" + "見本".encode("cp932"),  # a UTF-8 BOM in front of Shift_JIS text
], ids=["neither", "bom-then-sjis"])
def test_undetectable_encoding_is_refused(tokyo, hospital, data):
    assert refused(tokyo, "u.csv", data) == [UNKNOWN_ENCODING]


def test_euc_jp_is_refused(tokyo, hospital):
    assert refused(tokyo, "euc.csv", csv_bytes([doctor_row(1)], encoding="euc_jp")) == [UNKNOWN_ENCODING]


def test_duplicates_are_found_after_normalising(tokyo, hospital):
    rows = [doctor_row(1), doctor_row(2), doctor_row(3, 指定医番号="１３－Ｎ－０００１"), doctor_row(2)]
    assert rows[2]["指定医番号"] != rows[0]["指定医番号"]
    assert refused(tokyo, "dup.xlsx", xlsx_bytes(rows)) == [
        "4行目 指定医番号: 2行目と同じ指定医が重複しています",
        "5行目 指定医番号: 3行目と同じ指定医が重複しています"]


def test_zenkaku_digits_are_accepted(tokyo, hospital):
    zenkaku = str.maketrans("0123456789-/N", "０１２３４５６７８９－／Ｎ")
    row = doctor_row(1, 医療機関コード="1310000017".translate(zenkaku), 指定医番号="13-N-0001".translate(zenkaku),
                     電話="03-1234-5678".translate(zenkaku), **{"指定期間 開始": "2026/04/01".translate(zenkaku),
                                                              "指定期間 終了": "2031-03-31".translate(zenkaku)})
    assert row["医療機関コード"] == "\uff11\uff13\uff11" + "\uff10" * 5 + "\uff11\uff17"
    [user] = imported(tokyo, "zenkaku.xlsx", xlsx_bytes([row]), 1)
    designation = user.designations[0]
    assert designation.number == "13-N-0001" and user.phone == "03-1234-5678"
    assert (designation.valid_from, designation.valid_until) == (datetime.date(2026, 4, 1), datetime.date(2031, 3, 31))
    assert user.primary_membership.institution == hospital


def test_numeric_hokkaido_code_gets_its_leading_zero_back(app):
    hokkaido = gen_municipality("010006")
    clinic = gen_institution(hokkaido, code="0110000011", name="北海道見本病院")

    def numeric_code(ws):
        ws["C2"] = 110000011  # typed into a 標準 cell, Excel drops the leading 0
    row = doctor_row(1, 指定医番号="01-N-0001", 医療機関名="北海道見本病院")
    [user] = imported(hokkaido, "hokkaido.xlsx", xlsx_bytes([row], cell_hook=numeric_code), 1)
    assert user.primary_membership.institution == clinic and user.issuing_municipality == hokkaido


# --- what the file is ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename,make", [
    ("users.csv", lambda: xlsx_bytes([doctor_row(1)])),  # xlsx named .csv
    ("users.xlsx", lambda: csv_bytes([doctor_row(1)])),  # csv named .xlsx
    ("users.xls", lambda: xlsx_bytes([doctor_row(1)])),
    ("users.txt", lambda: csv_bytes([doctor_row(1)])),
    ("users", lambda: csv_bytes([doctor_row(1)])),
], ids=["xlsx-as-csv", "csv-as-xlsx", "xls", "txt", "no-extension"])
def test_extension_must_match_the_content(tokyo, hospital, filename, make):
    assert refused(tokyo, filename, make()) == [WRONG_KIND]


def test_upper_case_extension_is_accepted(tokyo, hospital):
    assert len(imported(tokyo, "USERS.XLSX", xlsx_bytes([doctor_row(1)]), 1)) == 1


@pytest.mark.parametrize("filename", ["empty.csv", "empty.xlsx"])
def test_empty_file_is_refused(tokyo, hospital, filename):
    assert refused(tokyo, filename, b"") == ["ファイルが空です。"]


def test_header_only_is_refused(tokyo, hospital):
    assert refused(tokyo, "u.csv", csv_bytes([])) == ["データ行がありません"]


def test_damaged_xlsx_files_are_refused(tokyo, hospital):
    good = xlsx_bytes([doctor_row(1)])
    cases = {
        "zip magic, then junk": b"PK\x03\x04" + b"junk" * 10,
        "truncated zip": good[:len(good) // 2],
        "not a workbook": _zip({"hello.txt": b"x"}),
        "worksheet part missing": rezip(good, {"xl/_rels/workbook.xml.rels": lambda b: b.replace(
            b"worksheets/sheet1.xml", b"worksheets/sheet9.xml")}),
        "corrupt deflate stream": _corrupt_part(xlsx_bytes(many_rows(30)), SHEET),
    }
    for name, data in cases.items():
        assert refused(tokyo, "u.xlsx", data) == [BROKEN], name
    truncated_xml = rezip(good, {SHEET: lambda b: b[:len(b) // 2]})
    assert refused(tokyo, "u.xlsx", truncated_xml) == [UNREADABLE]


def _zip(parts):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, body in parts.items():
            z.writestr(name, body)
    return out.getvalue()


def _corrupt_part(data, name):
    """Flip bytes inside the part's compressed data: the zip directory stays intact."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    data = bytearray(data)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 50, start + 300):
        data[i] ^= 0x55
    return bytes(data)


# --- through the screen: refused with 400 and the message, never a 500 -----------------------------------------------

def test_hostile_uploads_get_a_message_not_an_error_page(client, tokyo, hospital):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    token = csrf_token(client, "/admin/user-import/")
    cases = [
        ("bomb.xlsx", zip_bomb(200 * MB), "展開後のサイズが大きすぎます"),
        ("nul.xlsx", rezip(xlsx_bytes([doctor_row(1)]), {SHEET: lambda b: b.replace(b"13-N", b"13\x00N")}),
         UNREADABLE),
        ("bom.csv", b"\xef\xbb\xbf" + "見本".encode("cp932"), UNKNOWN_ENCODING),
        ("long.csv", csv_bytes([doctor_row(1, 電話="0" * 200_000)]), TOO_LONG.format(2)),
        ("gone.xlsx", rezip(xlsx_bytes([doctor_row(1)]), {"xl/_rels/workbook.xml.rels": lambda b: b.replace(
            b"sheet1.xml", b"sheet9.xml")}), BROKEN),
    ]
    before = counts()
    for filename, data, message in cases:
        r = client.post("/admin/user-import/preview", data={"csrf_token": token, "file": (io.BytesIO(data), filename)},
                        content_type="multipart/form-data")
        assert r.status_code == 400, filename
        assert message in r.get_data(as_text=True), filename
    assert counts() == before


# --- the individual form and the confirm's ticks --------------------------------------------------------------------

def _clerk(client, tokyo):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    return csrf_token(client, "/admin/user-import/")


FORM = {"application_ref": "R8-0001", "doctor_kind": "難病指定医", "doctor_number": "13-N-0901",
        "institution_code": "1310000017", "family_name": "見本", "given_name": "太郎", "family_kana": "ミホン",
        "given_kana": "タロウ"}


@pytest.mark.parametrize("changes, message", [
    ({"family_name": "見\x00本"}, "氏名 姓: NUL 文字が含まれています"),
    ({"given_name": "\ue000"}, "氏名 名: 外字（機種依存文字）が含まれています"),
    ({"department": "科" * 200_000}, "部署（部門/診療科）: 100文字以内で入力してください"),
    ({"family_name": "見" * 50, "given_name": "本" * 50}, "氏名 名: 姓と名をあわせて99文字以内で入力してください"),
    ({"family_kana": "ミ" * 51}, "カナ 姓: 50文字以内で入力してください"),
    ({"doctor_kind": "<script>"}, "指定医区分: 難病指定医・協力難病指定医・小慢指定医のいずれかを入力してください"),
    ({"valid_from": "=TODAY()"}, "指定期間 開始: 日付（YYYY-MM-DD）ではありません"),
], ids=["nul", "gaiji", "huge", "name-too-long", "kana-too-long", "forged-kind", "formula-text"])
def test_hostile_individual_form_values_are_refused(client, tokyo, hospital, changes, message):
    token = _clerk(client, tokyo)
    before = counts()
    r = client.post("/admin/user-import/individual", data=dict(FORM, csrf_token=token, **changes))
    assert r.status_code == 400 and message in r.get_data(as_text=True)
    assert "<script>" not in r.get_data(as_text=True)
    client.post("/admin/user-import/confirm", data={"csrf_token": token})
    assert counts() == before


def db_users(number):
    from models.accounts import Designation, User
    from nanbyo.extensions import db
    db.session.expire_all()
    return db.session.query(User).join(Designation).filter(Designation.number == number).all()


def test_individual_form_ignores_a_forged_work_kind(client, tokyo, hospital):
    token = _clerk(client, tokyo)
    r = client.post("/admin/user-import/individual", data=dict(FORM, csrf_token=token, work_kind="兼務"))
    assert r.status_code == 200 and "新規発行" in r.get_data(as_text=True)
    client.post("/admin/user-import/confirm", data={"csrf_token": token})
    [user] = db_users("13-N-0901")
    assert user.primary_membership.kind == "primary"


def test_thousands_of_ticks_are_refused_in_one_message(client, tokyo, hospital):
    token = _clerk(client, tokyo)
    client.post("/admin/user-import/preview", data={"csrf_token": token, "file": (
        io.BytesIO(csv_bytes([doctor_row(1)])), "u.csv")}, content_type="multipart/form-data")
    before = counts()
    r = client.post("/admin/user-import/confirm",
                    data={"csrf_token": token, "change_primary": [str(i) for i in range(10_000)]})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and page.count("主たる勤務先の変更の指定が正しくありません") == 1
    assert counts() == before
