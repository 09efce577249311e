"""医療機関ユーザデータファイル saved by a real spreadsheet program (LibreOffice Calc 7.4).

The files are committed in tests/data/ and made by tests/data/make_lo_files.sh: LibreOffice is not needed to run
these tests.
"""
import datetime
from pathlib import Path

import pytest

from nanbyo import userfile
from tests.helpers import gen_institution, gen_municipality

from tests.userfile_helpers import counts

DATA = Path(__file__).parent / "data"
APRIL_2026, MARCH_2031 = datetime.date(2026, 4, 1), datetime.date(2031, 3, 31)


def import_file(municipality, name, expected_rows):
    data = (DATA / name).read_bytes()
    before = counts()
    result = userfile.plan(municipality, name, data)
    assert result.ok, [str(p) for p in result.problems]
    assert [r.outcome for r in result.rows] == ["create"] * expected_rows
    batch = userfile.execute(result, filename=name, data=data)
    users, memberships, designations, institutions, batches = counts()
    assert (users, memberships, designations, institutions, batches) == (
        before[0] + expected_rows, before[1] + expected_rows, before[2] + expected_rows, before[3], before[4] + 1)
    assert batch.created_count == expected_rows and batch.reported_count == 0
    return batch


def summary(user):
    d, m = user.designations[0], user.primary_membership
    return (d.kind, d.number, user.name, user.name_kana, m.department, user.phone, user.email, d.valid_from,
            d.valid_until, m.is_manager)


VALID = [
    ("nanbyo", "13-N-1001", "山田 太郎", "ヤマダ タロウ", "脳神経内科", "03-1234-5678", "yamada@example.jp",
     APRIL_2026, MARCH_2031, True),
    ("nanbyo", "13-N-1002", "鈴木 花子", "スズキ ハナコ", "小児科", "0312345679", None, APRIL_2026, MARCH_2031, False),
    ("nanbyo_kyoryoku", "13-N-1003", "髙橋 一郎", "タカハシ イチロウ", "", "", None, None, None, False),
]


def test_libreoffice_xlsx_with_text_cells(tokyo, hospital):
    batch = import_file(tokyo, "userfile_lo_valid.xlsx", 3)
    assert [summary(u) for u in batch.users] == VALID
    assert batch.institution == hospital and batch.family == "難病"
    assert all(u.issuing_municipality == tokyo and u.must_change_password for u in batch.users)


def test_libreoffice_xlsx_with_date_cells(tokyo, hospital):
    batch = import_file(tokyo, "userfile_lo_dates.xlsx", 3)
    assert [(u.designations[0].number, u.designations[0].valid_from, u.designations[0].valid_until)
            for u in batch.users] == [
        ("13-S-2001", APRIL_2026, MARCH_2031),
        ("13-S-2002", datetime.date(2025, 10, 15), datetime.date(2030, 10, 14)),
        ("13-S-2003", APRIL_2026, None)]
    assert batch.family == "小慢" and {u.designations[0].kind for u in batch.users} == {"shoman"}
    assert [u.name for u in batch.users] == ["佐藤 健", "伊藤 美咲", "渡辺 翔"]


def test_libreoffice_cp932_csv(tokyo, hospital):
    data = (DATA / "userfile_lo_sjis.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    # 髙 as Calc writes it: the IBM extension code 0xFBFC, which is CP932 and not plain Shift_JIS.
    assert b"\xfb\xfc\x8b\xb4" in data and b"\xfb\xfc\x8b\xb4".decode("cp932") == "髙橋"
    batch = import_file(tokyo, "userfile_lo_sjis.csv", 3)
    assert [summary(u) for u in batch.users] == VALID


def test_libreoffice_xlsx_with_numeric_hokkaido_code(app):
    hokkaido = gen_municipality("010006")
    clinic = gen_institution(hokkaido, code="0110000011", name="北海道見本病院")
    batch = import_file(hokkaido, "userfile_lo_hokkaido.xlsx", 1)
    [user] = batch.users
    assert batch.institution == clinic and user.primary_membership.institution == clinic
    assert user.designations[0].number == "01-N-3001" and user.name == "北野 大地"


def test_the_same_file_twice_reports_registered_doctors(tokyo, hospital):
    import_file(tokyo, "userfile_lo_valid.xlsx", 3)
    data = (DATA / "userfile_lo_valid.xlsx").read_bytes()
    again = userfile.plan(tokyo, "userfile_lo_valid.xlsx", data)
    assert again.ok and [r.outcome for r in again.rows] == ["registered"] * 3


# The ministry notice's heading names (and common variants) for the template's labels.
NOTICE_NAMES = {"指定医区分": "指定医", "医療機関コード": "医療機関番号", "医療機関名": "医療機関名称", "勤務区分": "勤務形態",
                "氏名 姓": "氏名（姓）", "カナ 姓": "フリガナ 姓", "カナ 名": "フリガナ 名", "電話": "電話番号",
                "メールアドレス": "E-mail", "指定期間 開始": "指定年月日", "指定期間 終了": "指定期間満了日"}


def import_data(municipality, name, data, expected_rows):
    result = userfile.plan(municipality, name, data)
    assert result.ok, [str(p) for p in result.problems]
    assert [r.outcome for r in result.rows] == ["create"] * expected_rows
    return userfile.execute(result, filename=name, data=data)


def test_libreoffice_xlsx_with_the_notice_heading_names(tokyo, hospital):
    """Calc's file with its heading cells renamed (one of them is rich text: 部署（部門 / "/" / 診療科） in 3 runs)."""
    import io
    import zipfile
    source = zipfile.ZipFile(DATA / "userfile_lo_valid.xlsx")
    strings = source.read("xl/sharedStrings.xml").decode()
    for label, name in NOTICE_NAMES.items():
        old = f'<t xml:space="preserve">{label}</t>'
        assert strings.count(old) == 1, label
        strings = strings.replace(old, f'<t xml:space="preserve">{name}</t>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            z.writestr(info, strings.encode() if info.filename == "xl/sharedStrings.xml" else source.read(info))
    batch = import_data(tokyo, "notice.xlsx", out.getvalue(), 3)
    assert [summary(u) for u in batch.users] == VALID


def test_libreoffice_cp932_csv_with_the_notice_headings_in_another_order(tokyo, hospital):
    import csv
    import io
    rows = list(csv.reader(io.StringIO((DATA / "userfile_lo_sjis.csv").read_bytes().decode("cp932"))))
    order = list(reversed(range(len(rows[0]))))
    rows = [[NOTICE_NAMES.get(rows[0][i], rows[0][i]) for i in order]] + [[row[i] for i in order] for row in rows[1:]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    batch = import_data(tokyo, "notice.csv", buf.getvalue().encode("cp932"), 3)
    assert [summary(u) for u in batch.users] == VALID
