"""認定結果データ一括取込: a file of review results exported by a municipality's 認定事務システム, applied to the
documents it has received.

The file: CSV (UTF-8 with or without BOM, or CP932) or xlsx with a heading row (HEADINGS), or XML of
xsd/review-results-1.xsd. Each row names one document of the uploading municipality by 受付番号 or アクセスキー (both:
they must agree) and gives any of 受給者番号, 審査結果, 有効期間, 重症度, 研究利用同意; an empty cell leaves the value as it
is. Only documents the municipality has received (受付・審査済・登録完了) are found: a key the municipality has not
received is "not found" like any other, so a file cannot test keys past the key lookup's limit.

Every row is checked first, with the document's current values and the rules of the 審査結果 screen
(documents.save_review); then all rows are applied in one unit of work, or none when any row has a problem. Each
change enters the document's correction history and the operation log; a row that changes nothing changes nothing,
so the same file imported again changes nothing the second time. A document already 登録完了 is not changed.
"""
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from sqlalchemy import select

from models.documents import Document
from nanbyo import audit, database, documents, formdefs, userfile
from nanbyo.document_codes import (ADMIN_FIELDS, COMPLETED, CONSENT_LABELS, MUNICIPALITY_VISIBLE,
                                   REVIEW_RESULT_LABELS)
from nanbyo.extensions import db
from nanbyo.resources import resource
from nanbyo.xmlio import reader

MAX_ROWS = 50_000
MAX_BYTES = userfile.MAX_BYTES
VERSION = "1"
# heading of the file -> field (the XML's element names are the fields)
HEADINGS = {"受付番号": "reception_no", "アクセスキー": "access_key", "受給者番号": "recipient_no",
            "審査結果": "review_result", "有効期間開始": "valid_from", "有効期間終了": "valid_until", "重症度": "severity",
            "研究利用同意": "research_consent"}
LABELS = {field: heading for heading, field in HEADINGS.items()}
KEYS = ("reception_no", "access_key")
VALUES = ("recipient_no", "review_result", "valid_from", "valid_until", "severity", "research_consent")
# What the file may say for a code: the code itself or its label, and for consent a few plain words.
RESULT_WORDS = {**{code: code for code in REVIEW_RESULT_LABELS},
                **{label: code for code, label in REVIEW_RESULT_LABELS.items()}}
CONSENT_WORDS = {"1": "1", "0": "0", "あり": "1", "なし": "0", "有": "1", "無": "0",
                 **{label: code for code, label in CONSENT_LABELS.items() if code}}
NOT_FOUND = "この自治体が受け付けた書類に見つかりません（受付番号・アクセスキーを確かめてください）。"


class Refused(Exception):
    """The file as a whole is not read."""

    def __init__(self, problems):
        super().__init__(problems[0])
        self.problems = problems


@dataclass
class Row:
    number: int  # the row (CSV, xlsx) or line (XML) of the file
    values: dict  # field -> text, the cells that are not empty
    document: Document | None = None
    changes: list = field(default_factory=list)  # (label, old text, new text)
    problems: list = field(default_factory=list)


@dataclass
class Report:
    rows: list
    problems: list = field(default_factory=list)  # of the file as a whole
    applied: bool = False

    @property
    def ok(self):
        return not self.problems and not any(row.problems for row in self.rows)

    @property
    def changed(self):
        return [row for row in self.rows if row.changes]

    @property
    def told(self):
        """The rows the report lists: those with a problem or a change."""
        return [row for row in self.rows if row.problems or row.changes]


# --- reading -----------------------------------------------------------------------------------------------------

def _text(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):  # an xlsx date cell
        return value.isoformat()[:10]
    return unicodedata.normalize("NFKC", str(value)).strip()


def read_rows(filename, data) -> list[Row]:
    """The rows of the file; Refused for a file that cannot be read as a whole."""
    if len(data) > MAX_BYTES:
        raise Refused([f"ファイルが大きすぎます（{MAX_BYTES // 1024 // 1024}MB まで）。ファイルを分けてください。"])
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        return _xml_rows(data)
    try:
        table = userfile.read_table(filename, data, max_rows=MAX_ROWS, sheet=None)
    except userfile.FileRefused as refused:
        raise Refused(refused.problems) from None
    (_, heading), *body = table
    fields = [HEADINGS.get(_text(cell)) for cell in heading]
    unknown = [_text(cell) for cell, name in zip(heading, fields) if name is None and _text(cell)]
    problems = [f"1行目: 見出し「{name}」は使えません（使える見出し: {'・'.join(HEADINGS)}）。" for name in unknown]
    if not {"reception_no", "access_key"} & set(fields):
        problems.append("1行目: 見出しに「受付番号」か「アクセスキー」が必要です。")
    if len([f for f in fields if f]) != len({f for f in fields if f}):
        problems.append("1行目: 同じ見出しが2回あります。")
    if problems:
        raise Refused(problems)
    rows = []
    for number, cells in body:
        values = {name: _text(cell) for name, cell in zip(fields, cells) if name and _text(cell)}
        rows.append(Row(number, values))
    if not rows:
        raise Refused(["データの行がありません。"])
    return rows


def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(resource("xsd") / f"review-results-{VERSION}.xsd"), parser))


def _xml_rows(data) -> list[Row]:
    rows, checker = [], schema()
    try:
        for element in reader.iter_elements(data, "result"):
            if element.tag != "result":  # the root, last
                if element.tag != "results" or element.get("version") != VERSION:
                    raise Refused([f"ルート要素は <results version=\"{VERSION}\"> です。"])
                break
            if not checker.validate(element):
                error = checker.error_log[0]
                raise Refused([f"{error.line}行目: {error.message}"])
            rows.append(Row(element.sourceline, {child.tag: _text(child.text) for child in element
                                                 if _text(child.text)}))
    except reader.Refused as refused:
        raise Refused([str(refused)]) from None
    if not rows:
        raise Refused(["認定結果（result）が1件もありません。"])
    return rows


# --- checking and applying -----------------------------------------------------------------------------------------

class _Received:
    """The municipality's received documents the rows name, read by 受付番号 and by key in chunks (not a query per
    row: a 認定事務システム exports tens of thousands)."""
    CHUNK = 1000

    def __init__(self, rows, municipality):
        self.by_reception, self.by_key = {}, {}
        receptions = sorted({row.values["reception_no"] for row in rows if "reception_no" in row.values})
        keys = sorted({key for row in rows if "access_key" in row.values
                       for key, error in [documents.normalise_access_key(row.values["access_key"])] if not error})
        base = select(Document).where(Document.municipality_id == municipality.id,
                                      Document.status.in_(MUNICIPALITY_VISIBLE)).order_by(Document.id)
        for column, values, found in ((Document.reception_no, receptions, self.by_reception),
                                      (Document.access_key, keys, self.by_key)):
            for start in range(0, len(values), self.CHUNK):
                for doc in db.session.execute(base.where(column.in_(values[start:start + self.CHUNK]))).scalars():
                    found.setdefault(getattr(doc, column.key), []).append(doc)

    def find(self, row):
        """The received document the row names, or a problem."""
        if "access_key" not in row.values and "reception_no" not in row.values:
            return None, "受付番号かアクセスキーを書いてください。"
        if "access_key" in row.values:
            key, error = documents.normalise_access_key(row.values["access_key"])
            if error:
                return None, error
            found = self.by_key.get(key, [])
            if "reception_no" in row.values:
                found = [doc for doc in found if doc.reception_no == row.values["reception_no"]]
        else:
            found = self.by_reception.get(row.values["reception_no"], [])
        if len(found) > 1:
            return None, "この受付番号の書類が複数あります。アクセスキーも書いてください。"
        return (found[0], None) if found else (None, NOT_FOUND)


def _review_raw(doc) -> dict:
    """The document's 行政記載欄 as the 審査結果 screen posts them."""
    raw = {key: _as_text(getattr(doc, key)) for key in ADMIN_FIELDS}
    raw["research_consent"] = "" if doc.research_consent is None else str(int(doc.research_consent))
    raw["review_result"] = doc.review_result or ""
    return raw


def _as_text(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else ("" if value is None else str(value))


def _row_raw(row, doc) -> tuple[dict, list]:
    """The document's values with the row's over them, and the row's problems of form."""
    raw, problems = _review_raw(doc), []
    for name in VALUES:
        if name not in row.values:
            continue
        value = row.values[name]
        if name == "review_result":
            value = RESULT_WORDS.get(value)
            if value is None:
                problems.append(f"「{LABELS[name]}」: {row.values[name]} は使えません（認定・不認定・保留）。")
                continue
        elif name == "research_consent":
            value = CONSENT_WORDS.get(value)
            if value is None:
                problems.append(f"「{LABELS[name]}」: {row.values[name]} は使えません（同意あり・同意なし）。")
                continue
        elif name in ("valid_from", "valid_until"):
            day = formdefs.parse_date(value)  # as the screen reads it; compared as a date, not as typed
            value = day.isoformat() if day else value
        elif name == "recipient_no" and doc.recipient_no and value != doc.recipient_no:
            problems.append(f"「{LABELS[name]}」: {value} は書類の受給者番号（{doc.recipient_no}）と違います。")
            continue
        raw[name] = value
    return raw, problems


def _apply_row(row, received, user, seen):
    doc, problem = received.find(row)
    if problem:
        row.problems.append(problem)
        return
    if doc.id in seen:
        row.problems.append(f"{seen[doc.id]}行目と同じ書類です。1つの書類は1行にしてください。")
        return
    seen[doc.id] = row.number
    row.document = doc
    raw, problems = _row_raw(row, doc)
    if problems:
        row.problems += problems
        return
    before = _review_raw(doc)
    changed = [key for key in ADMIN_FIELDS if raw.get(key, "") != before.get(key, "")]
    if not changed:
        return  # nothing to change: the same file again changes nothing
    if doc.status == COMPLETED:
        row.problems.append("登録完了の書類は変更できません。")
        return
    problems = documents.save_review(doc, raw, user)
    if problems:
        row.problems += problems
        return
    row.changes = [(ADMIN_FIELDS[key], _shown(key, before[key]), _shown(key, raw[key])) for key in changed]


def _shown(key, value):
    if key == "review_result":
        return REVIEW_RESULT_LABELS.get(value, "")
    if key == "research_consent":
        return CONSENT_LABELS.get(value, "")
    return value


def import_results(filename, data, municipality, user, *, dry_run=False) -> Report:
    """Check every row; apply them all (one unit of work with their log entries) or none. `user`: who imports (None
    from the CLI). Refused (nothing read) for a file that cannot be read as a whole."""
    try:
        rows = read_rows(filename, data)
    except Refused as refused:
        return Report([], refused.problems)
    report = Report(rows)
    database.begin_write()  # the rows are checked against the documents as they are under the lock
    seen = {}
    with db.session.no_autoflush:
        received = _Received(rows, municipality)
        for row in rows:
            _apply_row(row, received, user, seen)
    if not report.ok or dry_run:
        db.session.rollback()
        return report
    entries = [{"action": "document_review", "target": row.document,
                "data": {"fields": [label for label, _old, _new in row.changes], "source": "results_import",
                         "row": row.number}} for row in report.changed]
    audit.record_many(entries, actor=user)
    audit.record("results_import", actor=user, target_type="document", commit=False, data={
        "file": Path(filename or "").name[:100], "rows": len(rows), "documents": len(report.changed)})
    db.session.commit()
    report.applied = True
    return report


def report_lines(report) -> list[str]:
    """The report as lines of text (the CLI's output; the screen shows the same as a table)."""
    lines = list(report.problems)
    for row in report.rows:
        where = f"{row.number}行目" + (f"（No.{row.document.id}）" if row.document is not None else "")
        lines += [f"{where}: {problem}" for problem in row.problems]
        lines += [f"{where}: {label} {old or '（空欄）'} → {new or '（空欄）'}" for label, old, new in row.changes]
    if not report.ok:
        lines.append("問題のある行があるため、何も変更していません。")
    elif report.applied:
        lines.append(f"{len(report.rows)}行を確認し、{len(report.changed)}件の書類を変更しました。")
    else:
        lines.append(f"{len(report.rows)}行を確認しました（変更する書類 {len(report.changed)}件）。確認のみのため変更していません。")
    return lines
