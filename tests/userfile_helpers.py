"""Building 医療機関ユーザデータファイル for tests: rows as dicts by column label, written as csv or xlsx."""
import csv
import io

import pytest
from openpyxl import Workbook

from models.accounts import Designation, ImportBatch, Membership, User
from models.institutions import Institution
from nanbyo.extensions import db
from nanbyo.userfile import LABELS, SHEET_NAME
from tests.helpers import TOKYO, gen_institution, gen_municipality


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


def csv_bytes(rows, encoding="utf-8-sig", header=LABELS):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(label, "") for label in header])
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows, sheet=SHEET_NAME, header=LABELS, cell_hook=None):
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append([row.get(label, "") for label in header])
    if cell_hook:
        cell_hook(ws)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
