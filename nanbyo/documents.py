"""Document rules: who may write what, the patient block, finalizing, access keys, key lookup, corrections.

Views call these; none re-implements them. Row scoping itself lives in nanbyo.access.
"""
import re
import secrets
import uuid
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select

from models._types import today_jst, utcnow
from models.audit import OperationLog
from models.documents import Document, DocumentCorrection
from models.institutions import Municipality
from models.masters import NanbyoDisease
from models.scans import ScanFile
from nanbyo import audit, database, formdefs, jurisdiction
from nanbyo.content_rules import (Content, age_on, clean_patient, content_problems,  # noqa: F401
                                  doctor_kind_problem, doctor_kinds_for, parse_date, patient_fields)
from nanbyo.crypto import keyring, patient_search_value
from nanbyo.document_codes import (ALL_PATIENT_FIELDS, APPLICATION_KINDS, DRAFT, EXPLANATION_LABELS, FINALIZED,
                                   INSURANCE_KIND_LABELS, KEY_LOOKUP_STATUSES, KIND_LABELS, PATIENT_FIELDS,
                                   RECEIVED, SEX_LABELS, application_kind_label)
from nanbyo.exports import JST
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR, INSTITUTION_STAFF, OPERATOR_ROLES

# --- access keys -------------------------------------------------------------------------------------------------

# No 0/O, 1/I/L: a key read off paper or typed from it must not be ambiguous.
ACCESS_KEY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ACCESS_KEY_LENGTH = 8


def new_access_key() -> str:
    """A random key no other document has (8 characters of 31: about 8.5 × 10^11 keys)."""
    while True:
        key = "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(ACCESS_KEY_LENGTH))
        if db.session.execute(select(Document.id).filter_by(access_key=key)).first() is None:
            return key


def normalise_access_key(text: str) -> tuple[str | None, str | None]:
    """(key, None) or (None, Japanese error) for what a clerk typed or a scanner sent."""
    key = re.sub(r"[\s\-ー－]", "", unicodedata.normalize("NFKC", text or "")).upper()
    if not key:
        return None, "アクセスキーを入力してください。"
    if len(key) != ACCESS_KEY_LENGTH:
        return None, f"アクセスキーは{ACCESS_KEY_LENGTH}文字です（入力は{len(key)}文字）。"
    wrong = sorted({c for c in key if c not in ACCESS_KEY_ALPHABET})
    if wrong:
        return None, (f"アクセスキーに使われない文字が含まれています: {' '.join(wrong)}"
                      "（数字の 0・1 と英字の I・L・O は使われません）。")
    return key, None


# --- the patient block -------------------------------------------------------------------------------------------

def _aad(doc: Document) -> bytes:
    return f"document:{doc.uid}".encode()


def patient_of(doc: Document, ring=None) -> dict:
    """The patient block; `ring`: the key ring a caller decrypting many asked once (keyring() stats its file)."""
    if not doc.patient_cipher:
        return {}
    return (ring or keyring()).decrypt_json(doc.patient_cipher, _aad(doc))


def _sealed(doc: Document, patient: dict, ring=None, index=None) -> tuple[bytes, str]:
    """The ciphertext and blind index of a patient block (empty index when カナ or 生年月日 is missing); `index`:
    the block's blind index under the ring's active index key, when the caller has worked it out already."""
    ring = ring or keyring()
    kana, birth = patient_kana(patient), patient.get("birth_date")
    if index is None:
        index = ring.blind_index(patient_search_value(kana, date.fromisoformat(birth))) if kana and birth else ""
    return ring.encrypt_json(patient, _aad(doc)), index


def set_patient(doc: Document, patient: dict, ring=None, index=None):
    """`ring`: the key ring, when the caller holds it (an import: keyring() looks at the key file each time);
    `index`: the blind index, when the caller holds it (see _sealed)."""
    if doc.uid is None:
        doc.uid = uuid.uuid4().hex
    doc.patient_cipher, doc.patient_index = _sealed(doc, patient, ring, index)
    set_statistics(doc, patient)


def set_statistics(doc: Document, patient: dict):
    """The plain columns statistics count by: 性別, the age on 作成年月日 (None when either date is missing) and
    the patient's number (patient_key)."""
    doc.patient_sex = patient.get("sex") if patient.get("sex") in SEX_LABELS else ""
    birth = patient.get("birth_date")
    doc.patient_age = age_on(date.fromisoformat(birth), doc.written_on) if birth and doc.written_on else None
    doc.patient_key = patient_key(doc.patient_index)


def patient_key(blind_index: str) -> int | None:
    """The blind index as a number (its first 60 bits: a signed BIGINT; no two of millions of patients share them
    but by a chance of about 1 in 10^6), for counting distinct patients."""
    return int(blind_index[:15], 16) if blind_index else None


def patient_kana(patient: dict) -> str:
    """The patient's カナ as the blind index and the re-upload rule take it: family and given, joined."""
    return f"{patient.get('family_kana', '')}{patient.get('given_kana', '')}"


def patient_criterion(kana: str, birth_date: date):
    """Rows whose patient has this カナ and 生年月日 (any index key, so a rotation in progress still finds them)."""
    return Document.patient_index.in_(keyring().blind_indexes(patient_search_value(kana, birth_date)))


def patient_name(patient: dict) -> str:
    return f"{patient.get('family_name', '')} {patient.get('given_name', '')}".strip()


def patient_display(patient: dict, fields=PATIENT_FIELDS) -> list[tuple[str, str]]:
    from nanbyo.notices import both_dates
    rows = []
    for key, label in fields.items():
        value = patient.get(key, "")
        if key == "sex":
            value = SEX_LABELS.get(value, value)
        elif key == "insurance_kind":
            value = INSURANCE_KIND_LABELS.get(value, value)
        elif key == "birth_date" and value:
            value = both_dates(date.fromisoformat(value))
        rows.append((label, value))
    return rows


# --- who may write what ------------------------------------------------------------------------------------------

def designation_problem(author, kind, application_kind, on: date) -> str | None:
    """Why the author holds no 指定 valid on `on` that allows this document (None when one does)."""
    needed = [d for d in author.designations if d.kind in doctor_kinds_for(kind, application_kind)]
    if not needed or any((d.valid_from is None or d.valid_from <= on) and (d.valid_until is None or on <= d.valid_until)
                         for d in needed):
        return None
    periods = "、".join(f"{d}（{d.valid_from or ''}〜{d.valid_until or ''}）" for d in needed)
    return (f"指定医の指定期間外です（{periods}）。{on.isoformat()} に有効な指定がないため、作成・確定できません。"
            "指定の更新は発行元の自治体に確認してください。")


def authoring_problems(user, kind, application_kind, author, institution, on: date | None = None) -> list[str]:
    """Why `user` may not write a document of this kind as `author` at `institution` on `on` (today by default);
    empty when allowed."""
    problems = []
    if author is None or author.role != DESIGNATED_DOCTOR:
        return ["作成者（指定医）を選択してください。"]
    if institution is None:
        return ["医療機関を選択してください。"]
    if application_kind not in APPLICATION_KINDS[kind]:
        allowed = "・".join(application_kind_label(kind, k) for k in APPLICATION_KINDS[kind])
        problems.append(f"{KIND_LABELS[kind]}の申請区分は {allowed} のいずれかです。")
    kind_problem = doctor_kind_problem(kind, application_kind, author.doctor_kinds)
    if kind_problem:
        problems.append(kind_problem)
    else:
        expired = designation_problem(author, kind, application_kind, on or today_jst())
        if expired:
            problems.append(expired)
    if institution.id not in {m.institution_id for m in author.memberships}:
        problems.append("作成者はこの医療機関に所属していません。")
    if not institution.active:
        problems.append("この医療機関は無効（廃止）になっているため、書類を作成・確定できません。")
    if user.role in OPERATOR_ROLES:
        return problems
    if user.role == DESIGNATED_DOCTOR and user.id != author.id:
        problems.append("指定医は自分が作成者の書類だけを作成できます。")
    if user.role == INSTITUTION_STAFF and institution.id not in {m.institution_id for m in user.memberships}:
        problems.append("所属していない医療機関の書類は作成できません。")
    if user.role not in (DESIGNATED_DOCTOR, INSTITUTION_STAFF):
        problems.append("書類を作成する権限がありません。")
    return problems


def definition_of(doc: Document):
    """The form definition in the version the document was written with (old and new versions coexist)."""
    return formdefs.definition(doc.form_code, doc.form_version)


def destination_problem(doc: Document, patient: dict) -> str | None:
    """Why the 提出先 does not fit: it must be a 実施主体 of the family, and the one of the patient's residence where
    the address says which."""
    family = jurisdiction.FAMILY_LABELS[doc.kind]
    if not jurisdiction.is_authority(doc.municipality, doc.kind):
        return f"提出先の{doc.municipality.name}は{family}の実施主体ではありません。提出先を選び直してください。"
    residence = jurisdiction.authority_for_address(doc.kind, patient.get("address", ""))
    if residence is not None and residence.id != doc.municipality.id:
        return (f"患者の住所からみた{family}の実施主体は{residence.name}です（提出先は{doc.municipality.name}）。"
                "提出先か住所を確認してください。")
    return None


def in_force(on: date):
    """SQL criterion: the 指定難病 in force on a date (its `since` is not after it); the choices of a new document."""
    return or_(NanbyoDisease.since.is_(None), NanbyoDisease.since <= on)


def content_of(doc: Document, patient: dict | None = None) -> Content:
    """What the document says (its patient block decrypted unless given): what content_rules and the XML read."""
    return Content(kind=doc.kind, application_kind=doc.application_kind, definition=definition_of(doc),
                   disease=doc.disease, diagnosed_on=doc.diagnosed_on, written_on=doc.written_on,
                   explained_on=doc.explained_on, explanation=doc.explanation,
                   patient=patient_of(doc) if patient is None else patient, items=dict(doc.items or {}))


def finalize_problems(doc: Document, today: date | None = None, *, authoring=True) -> list[str]:
    """Everything that must hold before a document is finalized, as messages (see field_problems)."""
    return [message for _, message in field_problems(doc, today, authoring=authoring)]


def field_problems(doc: Document, today: date | None = None, *, authoring=True) -> list[tuple[str, str]]:
    """Everything that must hold before a document is finalized: (form field name or "", message), so that a screen
    shows each beside its field. A finalized document keeps satisfying the content checks (authoring=False): its
    author may since have moved, and the municipality must still be able to correct it."""
    today = today or today_jst()
    patient = patient_of(doc)
    problems = content_problems(content_of(doc, patient), today)
    destination = destination_problem(doc, patient)
    if destination:
        problems.append(("municipality", destination))
    if authoring and doc.is_paper:
        from nanbyo import paper
        problems += paper.writer_problems(paper.Writer.of(doc), doc.kind, doc.application_kind)[1]
    elif authoring:
        problems += [("", p) for p in authoring_problems(doc.author, doc.kind, doc.application_kind, doc.author,
                                                          doc.institution, today)]
    return problems


def finalize_if_ready(doc: Document, user) -> list[tuple[str, str]]:
    """Inside the caller's unit of work (database.begin_write, before `doc` was read): finalize the document when
    everything holds (committed with its log entry) and return []; else change nothing (rolled back) and return
    field_problems. The one rule of the 確定 button and of the list's mass 確定. A paper document is not given a key:
    it arrives received at its municipality (nanbyo.paper.arrive)."""
    problems = field_problems(doc)
    if problems:
        db.session.rollback()
        return problems
    if doc.is_paper:
        from nanbyo import paper
        scans = db.session.execute(select(ScanFile).where(ScanFile.document_id == doc.id)).scalars().all()
        paper.arrive(doc, scans)
        audit.record("document_paper_receive", target=doc, actor=user,
                     data={"scans": [scan.id for scan in scans], "reception_no": doc.reception_no})
        return []
    finalize(doc, user)
    return []


def finalize(doc: Document, user):
    """Inside the caller's unit of work (database.begin_write); committed with its log entry."""
    doc.status = FINALIZED
    doc.finalized_at = utcnow()
    if not doc.access_key:
        doc.access_key = new_access_key()
    audit.record("document_finalize", target=doc, actor=user)


# --- corrections -------------------------------------------------------------------------------------------------

def _correction_aad(doc: Document, field: str) -> bytes:
    return f"correction:{doc.uid}:{field}".encode()


def record_correction(doc: Document, field: str, label: str, old, new, user):
    """One changed field in the document's history; `user` None: a command on the server (user_role "cli")."""
    db.session.add(DocumentCorrection(
        document=doc, field=field, label=label, user_id=user.id if user else None,
        user_role=user.role if user else "cli",
        values_cipher=keyring().encrypt_json({"old": old, "new": new}, _correction_aad(doc, field))))


def correction_values(correction: DocumentCorrection) -> dict:
    return keyring().decrypt_json(correction.values_cipher, _correction_aad(correction.document, correction.field))


def correction_text(doc: Document, field: str, value) -> str:
    """A value of the correction history as people read it: labels for codes, 和暦 for dates, 「（空欄）」 for none."""
    from nanbyo.document_codes import CONSENT_LABELS, DOCUMENT_FIELDS, REVIEW_RESULT_LABELS
    from nanbyo.notices import both_dates
    if value is None or value == "" or value == []:
        return "（空欄）"
    prefix, _, key = field.partition(".")
    if prefix == "items":
        item = next((i for i in definition_of(doc).items if i.id == key), None)
        return formdefs.display_value(item, value) if item else str(value)
    if prefix == "patient":
        return patient_display({key: value}, {key: ALL_PATIENT_FIELDS.get(key, key)})[0][1]
    if field == "research_consent":
        return CONSENT_LABELS["1" if value in (True, "True", "1") else "0"]
    if field == "review_result":
        return REVIEW_RESULT_LABELS.get(value, str(value))
    if field in {*DOCUMENT_FIELDS, "application_received_on", "valid_from", "valid_until"}:
        parsed = formdefs.parse_date(str(value))
        return both_dates(parsed) if parsed else str(value)
    return str(value)


# --- key lookup --------------------------------------------------------------------------------------------------

@dataclass
class LookupResult:
    document: Document | None
    message: str = ""
    throttled: bool = False


def _recent_lookups(user, since: datetime, result=None) -> int:
    query = select(func.count()).select_from(OperationLog).where(
        OperationLog.actor_id == user.id, OperationLog.action == "key_lookup", OperationLog.created_at >= since)
    if result:
        query = query.where(OperationLog.result == result)
    return db.session.execute(query).scalar()


def lookup_throttled(user) -> bool:
    """Per user: too many failed keys in the window, or too many lookups in a minute."""
    config = current_app.config
    now = utcnow()
    failures = _recent_lookups(user, now - config["NANBYO_KEY_LOOKUP_WINDOW"], "failure")
    if failures >= config["NANBYO_KEY_LOOKUP_MAX_FAILURES"]:
        return True
    return _recent_lookups(user, now - timedelta(minutes=1)) >= config["NANBYO_KEY_LOOKUP_MAX_PER_MINUTE"]


NOT_FOUND = "このアクセスキーの書類は見つかりません。キーを確かめてください（提出先が他の自治体の書類は照会できません）。"


def lookup_key(user, typed: str, *, receive=False, reception_no="") -> LookupResult:
    """A municipality user looks a key up: the document is shown read-only and nothing changes. With `receive` the
    same key (typed again on the confirmation) receives the document: 受付 with a 受付番号. Every attempt is logged
    and counts towards the limit; the key itself never is logged.

    One unit of work: the limit is counted, and the attempt logged, under the write lock, so parallel lookups
    cannot both pass the last free attempt."""
    database.begin_write()
    if lookup_throttled(user):
        audit.record("key_lookup", actor=user, target_type="document", result="throttled")
        minutes = int(current_app.config["NANBYO_KEY_LOOKUP_WINDOW"].total_seconds() // 60)
        return LookupResult(None, f"照会の回数が上限を超えました。{minutes}分ほど待ってから再度お試しください。"
                                  "（連続して失敗した照会は記録されています）", throttled=True)
    key, error = normalise_access_key(typed)
    if error:
        audit.record("key_lookup", actor=user, target_type="document", result="failure",
                     data={"reason": "format"})
        return LookupResult(None, error)
    doc = db.session.execute(select(Document).where(
        Document.access_key == key, Document.municipality_id == user.municipality_id,
        Document.status.in_(KEY_LOOKUP_STATUSES))).scalar_one_or_none()
    if doc is None:
        audit.record("key_lookup", actor=user, target_type="document", result="failure",
                     data={"reason": "not_found"})
        return LookupResult(None, NOT_FOUND)
    if not receive:
        audit.record("key_lookup", actor=user, target=doc, data={"status": doc.status})
        return LookupResult(doc, "書類を表示します（まだ受付していません）。内容を確かめて「受付」を押してください。"
                                 if doc.status == FINALIZED else "この書類は受付済みです。")
    if doc.status != FINALIZED:
        audit.record("key_lookup", actor=user, target=doc, data={"status": doc.status})
        return LookupResult(doc, "この書類は既に受付済みです。")
    number = unicodedata.normalize("NFKC", reception_no or "").strip() or next_reception_no(user.municipality)
    doc.status, doc.received_at, doc.received_by_id, doc.reception_no = RECEIVED, utcnow(), user.id, number
    audit.record("document_receive", actor=user, target=doc, data={"reception_no": number})
    return LookupResult(doc, f"受付しました（受付番号 {number}）。行政記載欄と審査結果を入力できます。")


def fiscal_year(day: date) -> int:
    """年度: April to March."""
    return day.year if day.month >= 4 else day.year - 1


def next_reception_no(municipality) -> str:
    """The next 受付番号 of the municipality in this 年度: 2026-000123 (a clerk may type the number of their own
    register instead). Counted under the unit of work's lock."""
    year = fiscal_year(today_jst())
    start = datetime(year, 4, 1, tzinfo=JST)
    received = db.session.execute(select(func.count()).select_from(Document).where(
        Document.municipality_id == municipality.id, Document.received_at >= start)).scalar()
    return f"{year}-{received + 1:06d}"


# --- key rotation ------------------------------------------------------------------------------------------------

def reencrypt(ring, batch_size=500, progress=None) -> dict:
    """Every patient block and correction under the ring's active keys (re-indexed too): the key rotation's part for
    documents (nanbyo.key_rotation)."""
    counts = {"documents": 0, "corrections": 0}
    for model, count_key in ((Document, "documents"), (DocumentCorrection, "corrections")):
        last_id = 0
        while True:
            database.begin_write()  # a save from the web between this read and the write would be lost
            rows = db.session.execute(select(model).where(model.id > last_id).order_by(model.id)
                                      .limit(batch_size)).scalars().all()
            if not rows:
                db.session.rollback()
                break
            for row in rows:
                if model is Document:
                    cipher, index = _sealed(row, patient_of(row))
                    # Not a user's edit: a plain UPDATE keeps version_id, so a form open meanwhile still saves.
                    db.session.execute(Document.__table__.update().where(Document.id == row.id).values(
                        patient_cipher=cipher, patient_index=index, patient_key=patient_key(index)))
                else:
                    aad = _correction_aad(row.document, row.field)
                    row.values_cipher = ring.encrypt_json(ring.decrypt_json(row.values_cipher, aad), aad)
                counts[count_key] += 1
            last_id = rows[-1].id
            db.session.commit()
            if progress:
                progress(count_key, counts[count_key])
    return counts


# --- saving ------------------------------------------------------------------------------------------------------

class StaleDocument(Exception):
    """The document changed since the form was opened."""


STALE = ("この書類は、画面を開いた後に他の利用者（または別の画面）が更新しています。"
         "上書きを防ぐため保存しませんでした。最新の内容を開き直し、もう一度入力してください。")


def check_version(doc: Document, form_version):
    if str(form_version or "") != str(doc.version_id):
        raise StaleDocument(STALE)


def _date_text(value):
    return value.isoformat() if isinstance(value, date) else (value or "")


def _changes(old: dict, new: dict, labels: dict, prefix: str):
    for key in dict.fromkeys([*old, *new]):
        if old.get(key) != new.get(key):
            yield f"{prefix}{key}", labels.get(key, key), old.get(key), new.get(key)


AUTHOR_FIELDS = {"municipality": "提出先", "explanation": "説明（DB登録）への回答"}


def _author_values(doc: Document, raw: dict, problems: list) -> dict:
    """The author's own fields from a form: 提出先 (a 実施主体 of the family) and the patient's answer to 説明."""
    values = {}
    if "municipality" in raw:
        chosen = db.session.get(Municipality, int(raw["municipality"])) if str(raw["municipality"]).isdigit() else None
        if not jurisdiction.is_authority(chosen, doc.kind):
            problems.append(("municipality",
                             f"提出先は{jurisdiction.FAMILY_LABELS[doc.kind]}の実施主体から選択してください。"))
        values["municipality"] = chosen
    if "explanation" in raw:
        if raw["explanation"] not in EXPLANATION_LABELS:
            problems.append(("explanation", "説明（DB登録）への患者の回答を選択してください。"))
        values["explanation"] = raw["explanation"]
    return values


def save_content(doc: Document, raw: dict, item_raw, user) -> list[tuple[str, str]]:
    """Apply the dates, patient block and disease items from a form, and (the author's form) 提出先 and the answer to
    説明. All or nothing: on any problem (or a document that is finalized and would stop passing the finalize checks)
    nothing changes and the problems are returned as (form field name or "", message). Changes to a document that
    is no longer a draft are recorded field by field."""
    from nanbyo.document_codes import DOCUMENT_FIELDS
    problems = []
    dates = {}
    for key, label in DOCUMENT_FIELDS.items():
        found = []
        dates[key] = parse_date(raw.get(key, ""), label, found)
        problems += [(key, message) for _, message in found]
    definition = definition_of(doc)
    fields = patient_fields(definition)
    patient, patient_problems = clean_patient(raw, fields)
    problems += patient_problems
    items, item_problems = formdefs.validate(definition, item_raw, finalize=False)
    problems += [(formdefs.field_name(definition.item(item_id)), message) for item_id, message in item_problems]
    author_values = _author_values(doc, raw, problems)
    if problems:
        return problems

    old_patient, old_items = patient_of(doc), dict(doc.items or {})
    old_dates = {key: _date_text(getattr(doc, key)) for key in DOCUMENT_FIELDS}
    old_author = {"municipality": doc.municipality.name, "explanation": EXPLANATION_LABELS.get(doc.explanation)}
    new_author = {"municipality": author_values["municipality"].name if "municipality" in author_values else
                  old_author["municipality"],
                  "explanation": EXPLANATION_LABELS.get(author_values.get("explanation", doc.explanation))}
    changes = [*_changes(old_dates, {k: _date_text(v) for k, v in dates.items()}, DOCUMENT_FIELDS, ""),
               *_changes(old_author, new_author, AUTHOR_FIELDS, ""),
               *_changes(old_patient, patient, ALL_PATIENT_FIELDS, "patient."),
               *_changes(old_items, items, {i.id: i.label for i in definition.items}, "items.")]
    with db.session.no_autoflush:
        for key, value in dates.items():
            setattr(doc, key, value)
        if "municipality" in author_values:
            doc.municipality = author_values["municipality"]
        if author_values.get("explanation", doc.explanation) != doc.explanation:
            doc.explanation, doc.explained_by_id, doc.explained_at = author_values["explanation"], user.id, utcnow()
        if patient != old_patient or not doc.patient_cipher:
            set_patient(doc, patient)
        else:
            set_statistics(doc, patient)  # the age follows a changed 作成年月日
        doc.items = items
        if doc.status != DRAFT:
            final = field_problems(doc, authoring=False)
            if final:
                db.session.rollback()
                return [("", "確定済みの書類は、確定の条件を満たす内容でだけ保存できます。")] + final
            for field, label, old, new in changes:
                record_correction(doc, field, label, old, new, user)
    return []


def review_problems(doc: Document, values: dict) -> list[str]:
    problems = []
    if values["valid_from"] and values["valid_until"] and values["valid_from"] > values["valid_until"]:
        problems.append("有効期間の開始は終了以前の日付にしてください。")
    if values["review_result"] == "approved" and not (values["valid_from"] and values["valid_until"]):
        problems.append("認定の場合は有効期間（開始・終了）を入力してください。")
    if values["application_received_on"] and values["application_received_on"] > today_jst():
        problems.append("申請受付日に未来の日付は入力できません。")
    return problems


def save_review(doc: Document, raw: dict, user, complete=False) -> list[str]:
    """The municipality's 行政記載欄 and 審査結果; every change is in the correction history."""
    from nanbyo.document_codes import ADMIN_FIELDS, COMPLETED, REVIEWED, REVIEW_RESULT_LABELS
    problems = []
    values = {}
    for key in ("application_received_on", "valid_from", "valid_until"):
        values[key] = parse_date(raw.get(key, ""), ADMIN_FIELDS[key], problems)
    problems = [message for _, message in problems]
    for key, limit in (("reception_no", 30), ("recipient_no", 30), ("severity", 100), ("review_note", 2000)):
        values[key] = unicodedata.normalize("NFKC", raw.get(key) or "").strip()
        if len(values[key]) > limit:
            problems.append(f"「{ADMIN_FIELDS[key]}」: {limit}文字以内で入力してください。")
    consent = raw.get("research_consent") or ""
    if consent not in ("", "0", "1"):
        problems.append(f"「{ADMIN_FIELDS['research_consent']}」: 選択肢にない値です。")
    values["research_consent"] = None if consent in ("", None) else consent == "1"
    result = raw.get("review_result") or None
    if result is not None and result not in REVIEW_RESULT_LABELS:
        problems.append(f"「{ADMIN_FIELDS['review_result']}」: 選択肢にない値です。")
    values["review_result"] = result
    problems += review_problems(doc, values) if not problems else []
    if complete and not values["review_result"]:
        problems.append("登録完了にするには審査結果を入力してください。")
    if complete and values["review_result"] == "pending":
        problems.append("審査結果が保留の書類は登録完了にできません。")
    if complete and values["research_consent"] is None:
        problems.append("登録完了にするには研究利用への同意（同意あり・同意なし）を入力してください。")
    if problems:
        return problems
    for key, value in values.items():
        old = getattr(doc, key)
        if old != value:
            record_correction(doc, key, ADMIN_FIELDS[key], _date_text(old) if old is not None else None,
                              _date_text(value) if value is not None else None, user)
            setattr(doc, key, value)
    if values["review_result"] and doc.reviewed_at is None:
        doc.reviewed_at = utcnow()
    if values["review_result"]:
        doc.status = REVIEWED
    if complete:
        doc.status = COMPLETED
        doc.completed_at = utcnow()
    return []
