"""Importing checked XML documents as drafts (issue 12, part 4): for a doctor or the staff of an institution.

Each file is checked as the check tool checks it (nanbyo.xmlio.check, with the diseases of this server's masters);
then each valid document is matched to this server: the 指定医 by 指定医番号 (a designated doctor of the
institution holding a 指定 the document needs, with the same name), the institution by its code (the uploader's),
and the same rules as the new-document screen (documents.authoring_problems). Its 提出先 is the 実施主体 of the
patient's address, else the institution's.

The same document uploaded again (same institution, 指定医, patient by カナ and 生年月日, disease and 作成年月日) updates
its draft instead of adding one; a document already finalized or received is reported and left as it is.

Each document is its own unit of work with its log entry ("document_import"), or, with all_or_nothing, every document
of the upload is one: a single refusal imports nothing.
"""
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace

from sqlalchemy import select

from models._types import today_jst, utcnow
from models.accounts import Designation, Membership, User
from models.documents import Document
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import audit, database, documents, jurisdiction
from nanbyo.document_codes import DRAFT, NANBYO, SHOMAN
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR
from nanbyo.xmlio import check

CREATED, UPDATED, KEPT, REFUSED = "created", "updated", "kept", "refused"
RESULT_LABELS = {CREATED: "作成（下書き）", UPDATED: "更新（下書き）", KEPT: "変更なし（確定・受付済み）",
                 REFUSED: "取込不可"}
ALL_OR_NOTHING_REFUSED = "ほかの書類に問題があるため取り込んでいません（すべて取り込むか何も取り込まない指定）。"


@dataclass
class Outcome:
    """What became of one document (number None: the file as a whole)."""
    file: str
    number: int | None
    line: int | None
    result: str
    document_id: int | None = None
    messages: list = field(default_factory=list)

    @property
    def label(self):
        return RESULT_LABELS[self.result]


def server_diseases() -> dict:
    """{(kind, code): disease} of this server's masters, what the check matches 疾病 against: plain rows (id,
    name_ja, since, the code), not ORM objects, which every commit of the import would expire again."""
    nanbyo = db.session.execute(select(NanbyoDisease.id, NanbyoDisease.name_ja, NanbyoDisease.since,
                                       NanbyoDisease.notification_no).where(NanbyoDisease.is_subtype.is_(False)))
    out = {(NANBYO, str(row.notification_no)): SimpleNamespace(**row._asdict()) for row in nanbyo}
    shoman = db.session.execute(select(ShomanDisease.id, ShomanDisease.name_ja, ShomanDisease.shoman_code,
                                       ShomanDisease.nando_id))
    out |= {(SHOMAN, row.shoman_code): SimpleNamespace(since=None, **row._asdict()) for row in shoman
            if "-" not in row.nando_id}
    return out


def _same_name(a, b) -> bool:
    plain = lambda s: "".join(unicodedata.normalize("NFKC", s or "").split())  # noqa: E731
    return plain(a) == plain(b)


def _author(checked, user, institution):
    """(author, problems) of a checked document at `institution`."""
    content = checked.content
    number, name = checked.doctor
    needed = documents.doctor_kinds_for(content.kind, content.application_kind)
    candidates = db.session.execute(
        select(User).join(Designation).join(Membership, Membership.user_id == User.id)
        .where(Designation.number == number, Designation.kind.in_(needed), User.role == DESIGNATED_DOCTOR,
               Membership.institution_id == institution.id).distinct()).scalars().all()
    if len(candidates) != 1:
        return None, [f"指定医番号 {number} の指定医がこの医療機関（{institution.name}）に見つかりません。"
                      "指定医番号と書類の種類を確認してください。"]
    author = candidates[0]
    if not _same_name(author.name, name):
        return None, [f"指定医番号 {number} の指定医の氏名は登録では「{author.name}」です（XMLは「{name}」）。"]
    if user.role == DESIGNATED_DOCTOR and author.id != user.id:
        return None, ["指定医は自分が作成者の書類だけを取り込めます。"]
    return author, []


def _existing(content, author, institution, disease):
    patient = content.patient
    birth = date.fromisoformat(patient["birth_date"])
    column = Document.nanbyo_disease_id if content.kind == NANBYO else Document.shoman_disease_id
    return db.session.execute(select(Document).where(
        Document.institution_id == institution.id, Document.author_id == author.id, column == disease.id,
        Document.written_on == content.written_on, Document.kind == content.kind,
        documents.patient_criterion(patient.get("family_kana", "") + patient.get("given_kana", ""), birth))
        .order_by(Document.id)).scalars().first()


def _apply(doc, content, user, author):
    doc.application_kind = content.application_kind
    doc.form_code, doc.form_version = content.definition.code, content.definition.version
    doc.written_on, doc.diagnosed_on, doc.explained_on = content.written_on, content.diagnosed_on, content.explained_on
    if doc.explanation != content.explanation:
        doc.explanation, doc.explained_by_id, doc.explained_at = content.explanation, author.id, utcnow()
    doc.items = dict(content.items)
    documents.set_patient(doc, content.patient)


def _import_one(name, checked, user, institution, today):
    """The document's outcome; its changes and log entry are in the session (not committed)."""
    outcome = Outcome(name, checked.number, checked.line, REFUSED)
    if not checked.ok:
        outcome.messages = [p.text(name) for p in checked.problems]
        return outcome
    content = checked.content
    if checked.institution_code != institution.code:
        outcome.messages = [f"医療機関コード {checked.institution_code} は取込先の医療機関（{institution.code}）と違います。"]
        return outcome
    author, problems = _author(checked, user, institution)
    problems = problems or documents.authoring_problems(user, content.kind, content.application_kind, author,
                                                         institution, today)
    if problems:
        outcome.messages = problems
        return outcome
    disease = content.disease
    existing = _existing(content, author, institution, disease)
    if existing is not None and existing.status != DRAFT:
        outcome.result, outcome.document_id = KEPT, existing.id
        outcome.messages = ["同じ書類が既に確定・受付されているため、変更していません。"]
        return outcome
    doc = existing
    if doc is None:
        municipality = (jurisdiction.authority_for_address(content.kind, content.patient.get("address", ""))
                        or jurisdiction.institution_authority(institution, content.kind))
        doc = Document(kind=content.kind, author=author, created_by_id=user.id, institution=institution,
                       municipality=municipality, status=DRAFT, explanation=None)
        if content.kind == SHOMAN:
            doc.shoman_disease_id = disease.id
        else:
            doc.nanbyo_disease_id = disease.id
        db.session.add(doc)
    _apply(doc, content, user, author)
    db.session.flush()
    outcome.result, outcome.document_id = (UPDATED if existing is not None else CREATED), doc.id
    audit.record("document_import", target=doc, data={"file": name, "number": checked.number,
                                                      "result": outcome.result}, commit=False)
    return outcome


def import_uploads(uploads, user, institution, *, all_or_nothing=False, today=None, progress=None,
                   collect=None) -> list[Outcome]:
    """Import the documents of `uploads` ([(file name, bytes)]: XML files or ZIPs of them) as `user` at
    `institution`. Returns one Outcome per document, and one per file refused as a whole.

    progress(files_done, outcomes), if given, is called after each file (an XML file, or one file of a ZIP), outside
    any unit of work of the import's except in all-or-nothing mode, where the one unit of work is still open.
    `uploads` may be an iterator (each file read as it is reached); `collect`, a list the outcomes are added to as
    they come (what a caller keeps when the import stops half-way)."""
    today = today or today_jst()
    diseases = server_diseases()
    outcomes = [] if collect is None else collect
    files_done, names = 0, []
    if all_or_nothing:
        database.begin_write()
    for name, data in uploads:
        names.append(name)
        for checked_file in check.iter_upload(name, data, today, diseases):
            files_done += 1
            if checked_file.problems:
                outcomes.append(Outcome(checked_file.name, None, None, REFUSED,
                                        messages=[p.text(checked_file.name) for p in checked_file.problems]))
            for checked in checked_file.documents if not checked_file.problems else ():
                if not all_or_nothing:
                    database.begin_write()
                outcome = _import_one(checked_file.name, checked, user, institution, today)
                outcomes.append(outcome)
                if all_or_nothing:
                    continue
                if outcome.result in (CREATED, UPDATED):
                    db.session.commit()  # the document with its log entry
                else:
                    db.session.rollback()
            if progress is not None:
                progress(files_done, outcomes)
    if all_or_nothing:
        if any(o.result == REFUSED for o in outcomes):
            db.session.rollback()
            for outcome in outcomes:
                if outcome.result in (CREATED, UPDATED):
                    outcome.result, outcome.document_id = REFUSED, None
                    outcome.messages = [ALL_OR_NOTHING_REFUSED]
        else:
            db.session.commit()
    # What the upload came to, refusals included: one entry for the whole upload.
    audit.record("document_import_batch", target_type="document", actor=user,
                 result="success" if not any(o.result == REFUSED for o in outcomes) else "failure",
                 data={"files": names[:50], "institution": institution.code}
                 | counts(outcomes))
    return outcomes


def counts(outcomes) -> dict:
    """{result: number of outcomes} for every result, none left out."""
    return {result: sum(o.result == result for o in outcomes) for result in RESULT_LABELS}
