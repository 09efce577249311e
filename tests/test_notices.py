"""ID・PW発行通知書: one A4 page per entry, the ID, password and Japanese text in the PDF, 和暦 dates."""
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date

import pytest

from nanbyo.notices import NoticeEntry, both_dates, render_notices, wareki

PDFTOTEXT = shutil.which("pdftotext")
needs_pdftotext = pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed")


def entry(**changes) -> NoticeEntry:
    base = NoticeEntry(
        login_id="13d0000123", initial_password="Kx7mPq4wRt9bZa", name="山田 太郎", name_kana="ヤマダ タロウ",
        role_label="指定医", designations=["難病指定医 13-N-0001", "小慢指定医 13-S-0042"],
        institution_code="1310000001", institution_name="東京都立見本総合病院", department="脳神経内科",
        issuer_name="東京都", issued_on=date(2026, 11, 25), login_url="https://nanbyo.example.jp/login")
    return replace(base, **changes)


def municipality_entry() -> NoticeEntry:
    return entry(login_id="tokyo-staff-07", initial_password="aB3dE4fG5hJ6kL", name="佐藤 花子",
                 name_kana="サトウ ハナコ", role_label="自治体 一般ユーザ", designations=[], institution_code="",
                 institution_name="", department="")


def page_count(pdf: bytes) -> int:
    # reportlab writes each page object uncompressed as "/Type /Page" (the page tree is "/Type /Pages").
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def pdf_text(pdf: bytes, tmp_path, *pages: int) -> str:
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf)
    args = [PDFTOTEXT, "-enc", "UTF-8"]
    if pages:
        args += ["-f", str(pages[0]), "-l", str(pages[-1])]
    return subprocess.run(args + [str(path), "-"], check=True, capture_output=True).stdout.decode("utf-8")


# --- wareki ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("day, expected", [
    (date(2026, 11, 25), "令和8年11月25日"),
    (date(2019, 5, 1), "令和元年5月1日"),
    (date(2019, 4, 30), "平成31年4月30日"),
    (date(2020, 1, 1), "令和2年1月1日"),
    (date(1989, 1, 8), "平成元年1月8日"),
    (date(1990, 12, 31), "平成2年12月31日"),
])
def test_wareki(day, expected):
    assert wareki(day) == expected


def test_both_dates_shows_wareki_and_seireki():
    assert both_dates(date(2026, 11, 25)) == "令和8年11月25日（2026年11月25日）"


# --- render_notices ----------------------------------------------------------------------------------------------

def test_empty_list_raises():
    with pytest.raises(ValueError):
        render_notices([])


def test_one_a4_page_per_entry():
    pdf = render_notices([entry(), municipality_entry(), entry(login_id="13d0000124")])
    assert pdf.startswith(b"%PDF")
    assert page_count(pdf) == 3
    assert page_count(render_notices([entry()])) == 1
    assert b"/MediaBox [ 0 0 595.2756 841.8898 ]" in pdf  # A4


def test_password_is_not_in_the_metadata():
    pdf = render_notices([entry()])
    info = re.search(rb"<<[^<>]*/Producer[^<>]*>>", pdf)  # the document information dictionary
    assert info is not None and b"/Title" in info.group(0)
    assert b"Kx7mPq4wRt9bZa" not in info.group(0)
    assert b"Kx7mPq4wRt9bZa" not in pdf  # reportlab's default page compression: not in the file as plain text either


@needs_pdftotext
def test_text_of_the_notice(tmp_path):
    pdf = render_notices([entry(), municipality_entry()])
    first = pdf_text(pdf, tmp_path, 1)
    for expected in ["13d0000123", "Kx7mPq4wRt9bZa", "山田 太郎", "ヤマダ タロウ", "令和8年11月25日", "2026年11月25日",
                     "初回ログイン", "ログインID・初期パスワード発行通知書", "東京都立見本総合病院", "1310000001",
                     "難病指定医 13-N-0001", "https://nanbyo.example.jp/login", "鍵ファイル", "1/2"]:
        assert expected in first.replace(" / ", "/"), expected
    second = pdf_text(pdf, tmp_path, 2)
    assert "tokyo-staff-07" in second and "aB3dE4fG5hJ6kL" in second and "佐藤 花子" in second
    assert "Kx7mPq4wRt9bZa" not in second and "2/2" in second.replace(" / ", "/")


@needs_pdftotext
def test_markup_in_user_data_is_printed_as_written(tmp_path):
    pdf = render_notices([entry(name="A&B <C>", institution_name="見本&病院")])
    text = pdf_text(pdf, tmp_path)
    assert "A&B <C>" in text and "見本&病院" in text


@needs_pdftotext
def test_characters_the_fonts_lack_print_as_geta_not_nothing(tmp_path):
    text = pdf_text(render_notices([entry(name="\U00020bb7田 一郎")]), tmp_path)  # 𠮷 is outside the CID fonts
    assert "〓田 一郎" in text


@needs_pdftotext
def test_metadata_title(tmp_path):
    path = tmp_path / "notice.pdf"
    path.write_bytes(render_notices([entry()]))
    info = subprocess.run([shutil.which("pdfinfo") or "pdfinfo", str(path)], check=True, capture_output=True)
    out = info.stdout.decode("utf-8")
    assert "難病・小慢データベース ログインID・初期パスワード発行通知書" in out
    assert "Kx7mPq4wRt9bZa" not in out
