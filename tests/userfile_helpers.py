"""Building 医療機関ユーザデータファイル for tests: rows as dicts by column label, written as csv or xlsx."""
import csv
import io

import pytest
from openpyxl import Workbook

from models.accounts import Designation, ImportBatch, Membership, User
from models.institutions import Institution
from nanbyo.extensions import db
from nanbyo.userfile import LABELS, SHEET_NAME
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user


@pytest.fixture
def tokyo(app):
    return gen_municipality(TOKYO)


@pytest.fixture
def hospital(tokyo):
    """The institution of doctor_row()'s 医療機関コード."""
    return gen_institution(tokyo, code="1310000017", name="東京見本病院")


def counts():
    """Rows an import may write: users, memberships, designations, institutions, batches."""
    db.session.expire_all()
    return tuple(db.session.query(m).count() for m in (User, Membership, Designation, Institution, ImportBatch))


def doctor_row(n=1, **overrides):
    row = {"指定医区分": "難病指定医", "指定医番号": f"13-N-{n:04d}", "医療機関コード": "1310000017",
           "医療機関名": "東京見本病院", "勤務区分": "主たる勤務先", "部署（部門/診療科）": "脳神経内科",
           "氏名 姓": "見本", "氏名 名": f"医師{n}", "カナ 姓": "ミホン", "カナ 名": "イシ", "電話": "03-1234-5678",
           "メールアドレス": f"doc{n}@example.jp", "指定期間 開始": "2026-04-01", "指定期間 終了": "2031-03-31"}
    row.update(overrides)
    return row


def notice_file(rows, fmt):
    """`rows` under the notice's headings (NOTICE_HEADINGS' order), as csv or xlsx bytes."""
    header, keys = list(NOTICE_HEADINGS), list(NOTICE_HEADINGS.values())
    return csv_bytes(rows, header=header, keys=keys) if fmt == "csv" else xlsx_bytes(rows, header=header, keys=keys)


def doctor_elsewhere(municipality, institution, number="13-N-0001", *, concurrent_at=None, manager=False):
    """A doctor issued by `municipality` whose 主たる勤務先 is `institution` (optionally 兼務 at `concurrent_at`),
    with the designation doctor_row(n) names by `number`."""
    doctor = gen_user("designated_doctor", institution=institution, issuer=municipality, manager=manager)
    doctor.designations[0].number = number
    if concurrent_at is not None:
        doctor.memberships.append(Membership(institution=concurrent_at, kind="concurrent", department="旧部署"))
    db.session.commit()
    return doctor


# The ministry notice's sample headings and common variants, in another order than the template's, each with the
# template label whose value goes under it.
NOTICE_HEADINGS = {"氏名 姓": "氏名 姓", "氏名 名": "氏名 名", "フリガナ 姓": "カナ 姓", "フリガナ 名": "カナ 名",
                   "指定医": "指定医区分", "指定医番号": "指定医番号", "医療機関番号": "医療機関コード",
                   "医療機関名称": "医療機関名", "部署(部門/診療科)": "部署（部門/診療科）", "勤務形態": "勤務区分",
                   "電話": "電話", "E-mail": "メールアドレス", "指定年月日": "指定期間 開始",
                   "指定期間満了日": "指定期間 終了"}


def _values(row, header, keys):
    return [row.get(key, "") for key in (keys or header)]


def csv_bytes(rows, encoding="utf-8-sig", header=LABELS, keys=None):
    """keys: the doctor_row() labels to write under each heading (default: the headings themselves)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(_values(row, header, keys))
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows, sheet=SHEET_NAME, header=LABELS, cell_hook=None, keys=None):
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(_values(row, header, keys))
    if cell_hook:
        cell_hook(ws)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
