"""What still refers to a row. An institution, municipality or account that documents, memberships or other records
refer to is never deleted (SQLite enforces foreign keys as PostgreSQL does): it is disabled instead."""
from sqlalchemy import func, or_, select

from models.accounts import ImportBatch, Membership, User
from models.documents import Document, DocumentCorrection
from models.institutions import Institution, Municipality
from models.scans import ScanFile
from nanbyo.extensions import db

# model -> [(what refers to it, the referring table, criterion)]
REFERENCES = {
    Institution: [
        ("書類", Document, lambda o: Document.institution_id == o.id),
        ("医療機関への所属", Membership, lambda o: Membership.institution_id == o.id),
        ("ユーザデータファイルの取込履歴", ImportBatch, lambda o: ImportBatch.institution_id == o.id),
    ],
    Municipality: [
        ("医療機関", Institution, lambda o: Institution.municipality_id == o.id),
        ("ユーザ", User, lambda o: or_(User.municipality_id == o.id, User.issuing_municipality_id == o.id)),
        ("書類", Document, lambda o: Document.municipality_id == o.id),
        ("ユーザデータファイルの取込履歴", ImportBatch, lambda o: ImportBatch.municipality_id == o.id),
        ("スキャンファイル", ScanFile, lambda o: ScanFile.municipality_id == o.id),
    ],
    User: [
        ("書類", Document, lambda o: or_(Document.author_id == o.id, Document.created_by_id == o.id,
                                        Document.received_by_id == o.id)),
        ("書類の訂正履歴", DocumentCorrection, lambda o: DocumentCorrection.user_id == o.id),
        ("医療機関への所属", Membership, lambda o: Membership.user_id == o.id),
    ],
}
HINTS = {
    Institution: "廃止した医療機関は、編集画面で「有効」のチェックを外して無効にしてください。",
    Municipality: "自治体はマスタ（全国地方公共団体コード）で管理されています。",
    User: "使わなくなったアカウントは「無効化」してください。",
}
NAMES = {Institution: "この医療機関", Municipality: "この自治体", User: "このユーザ"}


def references(obj) -> list[str]:
    """「書類 11件」-style descriptions of what refers to `obj` (empty when nothing does)."""
    found = []
    for label, table, criterion in REFERENCES.get(type(obj), []):
        count = db.session.execute(select(func.count()).select_from(table).where(criterion(obj))).scalar()
        if count:
            found.append(f"{label} {count}件")
    return found


def delete_problem(obj) -> str | None:
    """The Japanese reason `obj` cannot be deleted, or None."""
    found = references(obj)
    if not found:
        return None
    return f"{NAMES[type(obj)]}は{'、'.join(found)}から参照されているため削除できません。{HINTS[type(obj)]}"
