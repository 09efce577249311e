"""Printed 医療意見書 / 臨床調査個人票 and the access-key sheet: pages, text, QR code, draft, privacy of the sheet."""
import random
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date

import pytest
import segno

from nanbyo import document_print
from nanbyo.document_print import (PrintableDocument, QRCodeFlowable, group_key, render_document_pdf,
                                   render_key_sheet_pdf)
from nanbyo.notices import PAGE_HEIGHT
from tests.test_notices import needs_pdftotext, page_count, pdf_text

PDFTOPPM = shutil.which("pdftoppm")
PDFINFO = shutil.which("pdfinfo")
ZBARIMG = shutil.which("zbarimg")
needs_pdftoppm = pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) is not installed")

KEY = "7KQ3WXPM"
NAME, KANA = "見本 花子", "ミホン ハナコ"
DISEASE = "前駆B細胞急性リンパ性白血病"
DOCTOR = "山田 太郎"
UID = "0f3c9a1e2b4d4c8e9a7b6c5d4e3f2a1b"
ONE_MM = 72 / 25.4


def document(**changes) -> PrintableDocument:
    base = PrintableDocument(
        form_title="小児慢性特定疾病 医療意見書", kind="shoman", application_kind_label="新規",
        disease_label=f"01_01_001 {DISEASE}", access_key=KEY,
        written_on=date(2026, 11, 25), diagnosed_on=date(2019, 4, 30),
        patient_rows=[("氏名", NAME), ("カナ", KANA), ("性別", "女"), ("生年月日", "平成30年4月1日（2018年4月1日）"),
                      ("住所", "東京都新宿区西新宿二丁目8番1号"), ("保険", "国民健康保険 被保険者番号 87654321")],
        sections=[("臨床所見", [("発症年月", "令和元年5月"), ("症状", "発熱\n貧血\n出血傾向"),
                               ("骨髄検査", "芽球 92%")])],
        doctor_name=DOCTOR, doctor_designation="小慢指定医 13-S-0042", institution_name="東京都立見本総合病院",
        institution_code="1310000001", institution_address="東京都府中市武蔵台二丁目8番29号",
        destination_name="東京都", explained_on=date(2026, 11, 20), document_uid=UID)
    return replace(base, **changes)


def long_document(rows=80) -> PrintableDocument:
    items = [(f"検査項目{i:02d}", f"結果値{i:02d}" + ("\n経過観察中" if i % 7 == 0 else "")) for i in range(rows)]
    return document(sections=[("臨床所見", items[:30]), ("検査所見", items[30:])])


def flat(text: str) -> str:
    """pdftotext output without its line breaks (a long paragraph wraps anywhere)."""
    return text.replace("\n", "")


def pdf_info(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    return subprocess.run([PDFINFO, "-enc", "UTF-8", str(path)], check=True, capture_output=True).stdout.decode()


def info_dict(pdf: bytes) -> dict[str, str]:
    """The document information dictionary, its literal strings decoded (octal escapes, UTF-16BE with a BOM)."""
    info = re.search(rb"<<[^<>]*/Producer[^<>]*>>", pdf)
    assert info is not None
    entries = {}
    for name, raw in re.findall(rb"/(\w+) \(((?:[^\\()]|\\.)*)\)", info.group(0)):
        value = re.sub(rb"\\([0-7]{1,3}|.)",
                       lambda m: bytes([int(m[1], 8)]) if m[1][:1].isdigit() else m[1], raw)
        entries[name.decode()] = (value[2:].decode("utf-16-be") if value.startswith(b"\xfe\xff")
                                  else value.decode("latin-1"))
    return entries


@pytest.fixture
def qr_calls(monkeypatch):
    """Records every key handed to make_qr and where each QR code was drawn (page, origin, module size, matrix)."""
    calls = {"keys": [], "drawn": []}
    make_qr, draw = document_print.make_qr, QRCodeFlowable.draw

    def spy_make_qr(key):
        calls["keys"].append(key)
        return make_qr(key)

    def spy_draw(self):
        draw(self)
        x, y = self.canv.absolutePosition(0, 0)
        calls["drawn"].append({"page": self.canv.getPageNumber(), "x": x, "y": y, "size": self.width,
                               "module": self.module_size, "matrix": [list(r) for r in self.qr.matrix],
                               "key": self.key})

    monkeypatch.setattr(document_print, "make_qr", spy_make_qr)
    monkeypatch.setattr(QRCodeFlowable, "draw", spy_draw)
    return calls


def rasterise(pdf: bytes, tmp_path, dpi: int, page: int = 1):
    from PIL import Image
    path = tmp_path / "page.pdf"
    path.write_bytes(pdf)
    subprocess.run([PDFTOPPM, "-r", str(dpi), "-f", str(page), "-l", str(page), "-png", "-singlefile", str(path),
                    str(tmp_path / "page")], check=True, capture_output=True)
    return Image.open(tmp_path / "page.png").convert("L")


def modules_on_page(image, drawn, dpi: int) -> list[list[int]]:
    """The module grid (quiet zone included) read back from the rendered page by sampling each module's centre."""
    scale, m = dpi / 72, drawn["module"]
    count = round(drawn["size"] / m)
    top = drawn["y"] + drawn["size"]
    grid = []
    for row in range(count):
        y = (PAGE_HEIGHT - (top - (row + 0.5) * m)) * scale
        grid.append([int(image.getpixel(((drawn["x"] + (col + 0.5) * m) * scale, y)) < 128) for col in range(count)])
    return grid


def expected_modules(key: str) -> list[list[int]]:
    """What a reader must see: segno's own QR code of the key, with the 4-module quiet zone."""
    qr = segno.make(key, error="m", micro=False)
    return [[int(bool(v)) for v in row] for row in qr.matrix_iter(border=4)]


# --- helpers -----------------------------------------------------------------------------------------------------

def test_group_key():
    assert group_key("7KQ3WXPM") == "7KQ3 WXPM"


def test_unknown_kind_or_odd_key_is_refused():
    with pytest.raises(ValueError):
        render_document_pdf(document(kind="other"))
    with pytest.raises(ValueError):
        render_document_pdf(document(access_key="7KQ3 WXP"))


# --- the document ------------------------------------------------------------------------------------------------

def test_short_document_is_one_a4_page():
    pdf = render_document_pdf(document())
    assert pdf.startswith(b"%PDF")
    assert page_count(pdf) == 1
    assert b"/MediaBox [ 0 0 595.2756 841.8898 ]" in pdf  # A4


@needs_pdftotext
def test_long_document_flows_onto_more_pages_each_with_header_and_footer(tmp_path):
    pdf = render_document_pdf(long_document(80))
    pages = page_count(pdf)
    assert pages >= 2
    for n in range(1, pages + 1):
        text = pdf_text(pdf, tmp_path, n)
        assert KEY in text, n
        assert "小児慢性特定疾病 医療意見書" in text, n
        assert f"{n}/{pages}" in text, n
        assert UID in text, n
    whole = pdf_text(pdf, tmp_path)
    for i in range(80):  # nothing lost at the page breaks
        assert f"検査項目{i:02d}" in whole and f"結果値{i:02d}" in whole, i
    assert "上記のとおり診断します。" in pdf_text(pdf, tmp_path, pages)


@needs_pdftotext
def test_split_section_repeats_its_heading(tmp_path):
    pdf = render_document_pdf(document(sections=[("検査所見", [(f"項目{i}", f"値{i}") for i in range(120)])]))
    pages = page_count(pdf)
    assert pages >= 3
    assert all("検査所見" in pdf_text(pdf, tmp_path, n) for n in range(2, pages))


@needs_pdftotext
def test_very_long_value_is_split_over_pages(tmp_path):
    letters = "".join(random.Random(7).choice("ghijkmnpqrstuvwxyz") for _ in range(6000))  # one line, no spaces
    lines = "\n".join(f"経過{i:03d}" for i in range(150))
    pdf = render_document_pdf(document(sections=[("経過", [("臨床経過", letters), ("メモ", lines)])]))
    assert page_count(pdf) >= 3
    text = pdf_text(pdf, tmp_path)
    assert "".join(re.findall("[g-z]+", text)) == letters  # all of it, in order (nothing else has g-z)
    assert "臨床経過（続き）" in text
    assert "\n".join(re.findall("経過[0-9]{3}", text)) == lines


@needs_pdftotext
def test_text_of_the_document(tmp_path):
    text = pdf_text(render_document_pdf(document()), tmp_path)
    one_line = flat(text)
    for expected in [
        KEY, group_key(KEY), "小児慢性特定疾病 医療意見書", "新規", "東京都",
        NAME, KANA, "平成30年4月1日（2018年4月1日）", "東京都新宿区西新宿二丁目8番1号", "87654321",
        DISEASE,
        "令和8年11月25日", "2026年11月25日",  # 作成年月日
        "平成31年4月30日", "2019年4月30日",  # 診断年月日, the last day of 平成
        "令和8年11月20日", "2026年11月20日",  # 説明日
        "診断年月日", "作成年月日", "説明日",
        "臨床所見", "発症年月", "令和元年5月", "症状", "骨髄検査", "芽球 92%",
        DOCTOR, "医師氏名（記名）", "小慢指定医 13-S-0042", "東京都立見本総合病院", "1310000001",
        "東京都府中市武蔵台二丁目8番29号", "1/1", UID,
    ]:
        assert expected in text, expected
    assert "この書類のアクセスキーを申請窓口に提出してください" in one_line
    assert "発熱\n貧血\n出血傾向" in text  # a multi-line value keeps its lines
    assert "下書き" not in text


@needs_pdftotext
def test_markup_in_user_data_is_printed_as_written(tmp_path):
    pdf = render_document_pdf(document(
        patient_rows=[("氏名", "A&B <C>"), ("住所", "見本&amp;町 <b>1</b>")],
        sections=[("所見 <i>", [("比較 <", "a < b && c > d"), ("記号", "<br/>改行ではない")])],
        doctor_name="医師 <font>", institution_name="病院&診療所"))
    text = pdf_text(pdf, tmp_path)
    for expected in ["A&B <C>", "見本&amp;町 <b>1</b>", "所見 <i>", "比較 <", "a < b && c > d",
                     "<br/>改行ではない", "医師 <font>", "病院&診療所"]:
        assert expected in text, expected


@needs_pdftotext
def test_characters_outside_the_font_are_marked_not_dropped(tmp_path):
    text = pdf_text(render_document_pdf(document(patient_rows=[("氏名", "𠮷田\x00 一郎\x07")])), tmp_path)
    assert "〓田 一郎" in text


# --- the QR code -------------------------------------------------------------------------------------------------

def test_qr_code_is_made_of_exactly_the_key(qr_calls):
    render_document_pdf(document())
    assert qr_calls["keys"] and set(qr_calls["keys"]) == {KEY}
    drawn = qr_calls["drawn"][-1]
    assert drawn["page"] == 1 and drawn["key"] == KEY
    qr = segno.make(KEY, error="m", micro=False)
    assert not qr.is_micro  # a Micro QR (segno.make's choice for 8 characters) is not read by phones
    assert drawn["matrix"] == [list(row) for row in qr.matrix]
    assert drawn["module"] * len(drawn["matrix"]) >= 25 * ONE_MM  # the symbol itself at least 25 mm wide


@needs_pdftoppm
@pytest.mark.parametrize("render", [render_document_pdf, render_key_sheet_pdf])
def test_qr_code_on_the_page_reads_back_as_the_key(qr_calls, tmp_path, render):
    pdf = render(document())
    drawn = qr_calls["drawn"][-1]
    image = rasterise(pdf, tmp_path, dpi=300, page=drawn["page"])
    seen = modules_on_page(image, drawn, dpi=300)
    assert seen == expected_modules(KEY)  # every module, and the white quiet zone around them
    assert seen != expected_modules("7KQ3WXPN")


@pytest.mark.skipif(ZBARIMG is None or PDFTOPPM is None, reason="zbarimg (zbar-tools) or pdftoppm is not installed")
@pytest.mark.parametrize("render", [render_document_pdf, render_key_sheet_pdf])
def test_a_barcode_reader_decodes_the_key(tmp_path, render):
    rasterise(render(document()), tmp_path, dpi=150).save(tmp_path / "scan.png")
    out = subprocess.run([ZBARIMG, "-q", "--raw", str(tmp_path / "scan.png")], capture_output=True)
    assert out.stdout.decode().split() == [KEY]


# --- the draft ---------------------------------------------------------------------------------------------------

@needs_pdftotext
def test_draft_is_marked_and_has_no_qr_code(qr_calls, tmp_path):
    pdf = render_document_pdf(document(access_key=""))
    assert qr_calls["keys"] == [] and qr_calls["drawn"] == []
    assert page_count(pdf) == 1
    text = pdf_text(pdf, tmp_path)
    assert "下書き（確定前）" in text and "未発行" in text
    assert NAME in text and "令和8年11月25日" in text


@needs_pdftotext
def test_every_page_of_a_long_draft_says_draft(tmp_path):
    pdf = render_document_pdf(replace(long_document(80), access_key=""))
    pages = page_count(pdf)
    assert pages >= 2 and pages == page_count(render_document_pdf(long_document(80)))  # paginated like the final
    for n in range(1, pages + 1):
        text = pdf_text(pdf, tmp_path, n)
        assert "下書き（確定前）" in text and f"{n}/{pages}" in text, n
        assert KEY not in text


@pytest.mark.skipif(ZBARIMG is None or PDFTOPPM is None, reason="zbarimg (zbar-tools) or pdftoppm is not installed")
def test_draft_has_nothing_to_scan(tmp_path):
    rasterise(render_document_pdf(document(access_key="")), tmp_path, dpi=150).save(tmp_path / "scan.png")
    out = subprocess.run([ZBARIMG, "-q", "--raw", str(tmp_path / "scan.png")], capture_output=True)
    assert out.stdout == b""


# --- the key sheet -----------------------------------------------------------------------------------------------

def test_key_sheet_requires_a_key():
    with pytest.raises(ValueError):
        render_key_sheet_pdf(document(access_key=""))


def test_key_sheet_is_one_page_with_the_qr_code(qr_calls):
    pdf = render_key_sheet_pdf(long_document(80))
    assert page_count(pdf) == 1
    assert set(qr_calls["keys"]) == {KEY} and qr_calls["drawn"][-1]["page"] == 1


PRIVATE = [NAME, KANA, "見本", "ミホン", DISEASE, "白血病", DOCTOR, "山田", "小慢指定医", "13-S-0042",
           "東京都立見本総合病院", "1310000001", "武蔵台", "西新宿", "87654321", "平成30年4月1日", "2018年4月1日",
           "臨床所見", "芽球", UID, "説明日", "2026年11月20日"]


@needs_pdftotext
def test_key_sheet_has_the_key_and_dates_and_nothing_about_the_patient(tmp_path):
    pdf = render_key_sheet_pdf(document())
    text = pdf_text(pdf, tmp_path)
    for expected in [group_key(KEY), "アクセスキー（申請書類の電子データ照会用）", "小児慢性特定疾病 医療意見書",
                     "作成年月日", "令和8年11月25日", "2026年11月25日", "診断年月日", "平成31年4月30日", "2019年4月30日"]:
        assert expected in text, expected
    assert KEY in re.sub(r"\s", "", text)
    for private in PRIVATE:
        assert private not in text, private


@needs_pdftotext
def test_key_sheet_without_a_diagnosis_date(tmp_path):
    text = pdf_text(render_key_sheet_pdf(document(diagnosed_on=None, kind="nanbyo", form_title="臨床調査個人票")),
                    tmp_path)
    assert "診断年月日" in text and "記載なし" in text and "臨床調査個人票" in text and "指定難病" in text


# --- metadata ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("render, title", [
    (render_document_pdf, "小児慢性特定疾病 医療意見書"),
    (render_key_sheet_pdf, "アクセスキー（申請書類の電子データ照会用）"),
])
def test_metadata_has_no_key_and_no_patient_data(tmp_path, render, title):
    pdf = render(document())
    info = info_dict(pdf)
    assert info["Title"] == title and info["Author"] == "難病・小慢データベース"
    metadata = " ".join(info.values())
    for private in [KEY, group_key(KEY)] + PRIVATE:
        assert private not in metadata, private
    if PDFINFO:
        out = pdf_info(pdf, tmp_path)
        assert f"Title:           {title}" in out
        assert "Author:          難病・小慢データベース" in out
        for private in [KEY, group_key(KEY), UID] + PRIVATE:
            assert private not in out, private
    assert b"/XML" not in pdf and b"/Metadata" not in pdf  # no XMP packet carrying anything else
