"""ID・PW発行通知書 and 暗号化鍵ファイル再発行通知書: one A4 page per entry, the ID, password or code and Japanese text
in the PDF, 和暦 dates, the secret never in the metadata."""
import html
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from nanbyo.notices import (FOOTER_Y, MARGIN, PAGE_HEIGHT, PAGE_WIDTH, KeyNoticeEntry, NoticeEntry, both_dates,
                            render_key_notices, render_notices, wareki, wareki_datetime)

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
@pytest.mark.parametrize("second_factor, says, never", [
    ("", ["初回ログインの手順", "鍵ファイルは不要です"], ["お手持ち", "鍵登録コード"]),
    ("key_file", ["パスワードを再設定しました", "次回ログインの手順", "お手持ちの暗号化鍵ファイル"], ["不要です"]),
    ("key_code", ["パスワードを再設定しました", "鍵登録コード"], ["不要です", "お手持ち"]),
])
def test_a_password_reset_notice_says_what_goes_with_the_password(tmp_path, second_factor, says, never):
    """A reset of a user whose key file stays must not tell them they log in without it."""
    text = pdf_text(render_notices([entry(second_factor=second_factor)]), tmp_path).replace("\n", "")
    for expected in says:
        assert expected in text, expected
    for wrong in never:
        assert wrong not in text, wrong


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


# --- render_key_notices (暗号化鍵ファイル再発行通知書) -------------------------------------------------------------

CODE = "ABCD-EFGH-JKLM"
EXPIRES = datetime(2026, 12, 2, 8, 30, tzinfo=timezone.utc)  # 令和8年12月2日 17時30分 in Japan


def key_entry(**changes) -> KeyNoticeEntry:
    base = KeyNoticeEntry(
        login_id="13d0000123", registration_code=CODE, expires_at=EXPIRES, name="山田 太郎", name_kana="ヤマダ タロウ",
        role_label="指定医", institution_code="1310000001", institution_name="東京都立見本総合病院",
        department="脳神経内科", issuer_name="東京都立見本総合病院（責任者）", issued_on=date(2026, 11, 25),
        login_url="https://nanbyo.example.jp/login")
    return replace(base, **changes)


def long_changes() -> dict:
    """A long institution name and department and many designations."""
    return dict(institution_name="地方独立行政法人東京都立見本総合医療センター附属研究所病院" * 3,
                department="脳神経内科・神経難病診療部門・小児慢性特定疾病診療科" * 2,
                designations=[f"難病指定医 13-N-{i:04d}" for i in range(12)] + ["小慢指定医 13-S-0042"])


def words(pdf: bytes, tmp_path, page: int = 1) -> list[tuple[float, float, float, float, str]]:
    """(xMin, yMin, xMax, yMax, text) of each word on `page`, y from the top of the page (pdftotext -bbox)."""
    path = tmp_path / "bbox.pdf"
    path.write_bytes(pdf)
    out = subprocess.run([PDFTOTEXT, "-enc", "UTF-8", "-bbox", "-f", str(page), "-l", str(page), str(path), "-"],
                         check=True, capture_output=True).stdout.decode("utf-8")
    return [(float(a), float(b), float(c), float(d), html.unescape(w)) for a, b, c, d, w in
            re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', out)]


@pytest.mark.parametrize("moment, expected", [
    (EXPIRES, "令和8年12月2日 17時30分"),
    (datetime(2026, 12, 2, 15, 5, tzinfo=timezone.utc), "令和8年12月3日 0時05分"),  # the next day in Japan
    (datetime(2019, 4, 30, 15, 0, tzinfo=timezone.utc), "令和元年5月1日 0時00分"),
    (datetime(2026, 12, 2, 3, 30, tzinfo=ZoneInfo("America/New_York")), "令和8年12月2日 17時30分"),
])
def test_wareki_datetime_is_japan_time(moment, expected):
    assert wareki_datetime(moment) == expected


def test_wareki_datetime_rejects_a_naive_datetime():
    with pytest.raises(ValueError):
        wareki_datetime(datetime(2026, 12, 2, 17, 30))


def test_key_notices_empty_list_raises():
    with pytest.raises(ValueError):
        render_key_notices([])


def test_key_notice_with_a_naive_expiry_raises():
    with pytest.raises(ValueError):
        render_key_notices([key_entry(), key_entry(expires_at=datetime(2026, 12, 2, 17, 30))])


def test_key_notices_one_a4_page_per_entry():
    pdf = render_key_notices([key_entry(), key_entry(login_id="13d0000124"), key_entry(login_id="13d0000125")])
    assert pdf.startswith(b"%PDF")
    assert page_count(pdf) == 3
    assert page_count(render_key_notices([key_entry()])) == 1
    assert b"/MediaBox [ 0 0 595.2756 841.8898 ]" in pdf  # A4


def test_key_code_is_not_in_the_metadata():
    pdf = render_key_notices([key_entry()])
    info = re.search(rb"<<[^<>]*/Producer[^<>]*>>", pdf)  # the document information dictionary
    assert info is not None and b"/Title" in info.group(0)
    for secret in (CODE.encode(), CODE.replace("-", "").encode()):
        assert secret not in info.group(0)
        assert secret not in pdf  # reportlab's default page compression: not in the file as plain text either


@needs_pdftotext
def test_key_notice_metadata(tmp_path):
    path = tmp_path / "notice.pdf"
    path.write_bytes(render_key_notices([key_entry()]))
    info = subprocess.run([shutil.which("pdfinfo") or "pdfinfo", str(path)], check=True, capture_output=True)
    out = info.stdout.decode("utf-8")
    assert "難病・小慢データベース 暗号化鍵ファイル再発行通知書" in out
    assert CODE not in out and "13d0000123" not in out


@needs_pdftotext
def test_text_of_the_key_notice(tmp_path):
    second = key_entry(login_id="tokyo-staff-07", registration_code="PQRS-TUVW-XY23", name="佐藤 花子",
                       name_kana="サトウ ハナコ", role_label="自治体 一般ユーザ", institution_code="", institution_name="",
                       department="", issuer_name="東京都", expires_at=datetime(2026, 12, 2, 15, 5, tzinfo=timezone.utc))
    pdf = render_key_notices([key_entry(designations=["難病指定医 13-N-0001"]), second])
    first = pdf_text(pdf, tmp_path, 1)
    flat = re.sub(r"\s*\n\s*", "", first)  # lines joined: a wrapped sentence reads as one
    flat = re.sub(r"(\d\.)[\s　]+", r"\1", flat)  # "3.　新しい…" as "3.新しい…"
    for expected in ["13d0000123", CODE, "山田 太郎", "ヤマダ タロウ", "東京都立見本総合病院（責任者）",
                     "難病・小慢データベース 暗号化鍵ファイル再発行通知書", "令和8年11月25日（2026年11月25日）",
                     "有効期限", "令和8年12月2日 17時30分まで", "2026年12月2日", "1310000001", "脳神経内科",
                     "難病指定医 13-N-0001", "1/2"]:
        assert expected in first.replace(" / ", "/"), expected
    for expected in ["鍵ファイルの登録手順", "https://nanbyo.example.jp/login を開き、ログインIDと現在のパスワード",
                     "ID・PW発行通知書を同時に受け取った場合は、その初期パスワード",
                     "「鍵ファイルの再発行を受けた方」を開き、鍵登録コードを入力",
                     "3.新しい暗号化鍵ファイルをダウンロードし、安全な場所に保管します。",
                     "4.ログインID・パスワード・新しい暗号化鍵ファイルで、改めてログインします。",
                     "これまでの暗号化鍵ファイルは使えなくなりました。", "1回限り",
                     "シュレッダー等により確実に廃棄してください。",
                     "所属医療機関の責任者または発行元の自治体に再発行を依頼してください。"]:
        assert expected in flat, expected
    text = pdf_text(pdf, tmp_path, 2)
    assert "tokyo-staff-07" in text and "PQRS-TUVW-XY23" in text and "佐藤 花子" in text
    assert "令和8年12月3日 0時05分まで" in text  # 15:05 UTC is past midnight in Japan
    assert CODE not in text and "2/2" in text.replace(" / ", "/")
    assert "発行元の自治体に再発行を依頼" in re.sub(r"\s*\n\s*", "", text)  # no institution: no 責任者 to ask


@needs_pdftotext
def test_key_notice_markup_and_missing_glyphs(tmp_path):
    text = pdf_text(render_key_notices([key_entry(name="\U00020bb7田 A&B <C>", institution_name="見本&病院")]), tmp_path)
    assert "〓田 A&B <C>" in text and "見本&病院" in text


@needs_pdftotext
@pytest.mark.parametrize("render, make", [(render_key_notices, key_entry), (render_notices, entry)])
def test_a_long_entry_stays_on_its_page_above_the_footer(tmp_path, render, make):
    changes = long_changes()
    pdf = render([make(**changes), make()])
    assert page_count(pdf) == 2
    page = words(pdf, tmp_path, 1)
    rule = PAGE_HEIGHT - FOOTER_Y - 4.5 * 72 / 25.4  # the footer's rule, from the top of the page
    body = [w for w in page if w[1] < rule]
    footer = [w for w in page if w[1] >= rule]
    assert body and all(y_max <= rule for *_, y_max, _ in body)  # nothing drawn over the footer
    assert all(x_min >= MARGIN - 1 and x_max <= PAGE_WIDTH - MARGIN + 1 for x_min, _, x_max, *_ in page)
    assert "以上" in [w[4] for w in body]
    text = pdf_text(pdf, tmp_path, 1)
    assert "難病指定医 13-N-0011" in text and "小慢指定医 13-S-0042" in text
    assert "附属研究所病院" in re.sub(r"\s*\n\s*", "", text)
    assert "1/2" in "".join(w[4] for w in footer)


@needs_pdftotext
def test_a_long_issuer_name_does_not_run_into_the_footer_title(tmp_path):
    issuer = "地方独立行政法人東京都立見本総合医療センター附属研究所病院（責任者）"
    pdf = render_key_notices([key_entry(issuer_name=issuer)])
    rule = PAGE_HEIGHT - FOOTER_Y - 4.5 * 72 / 25.4
    footer = [w for w in words(pdf, tmp_path) if w[1] >= rule]
    subject = next(w for w in footer if w[4] == "暗号化鍵ファイル再発行通知書")
    left = [w for w in footer if w[2] < subject[0]]
    assert left and left[0][0] >= MARGIN - 1  # the issuer, shrunk or shortened, ends before the subject begins
    assert issuer in re.sub(r"\s*\n\s*", "", pdf_text(pdf, tmp_path))  # printed in full as the sender
