"""What a 臨個票 / 意見書 must say, wherever it comes from: the screen, an XML file, the offline check tool.

No database, no Flask, no key ring: a document's content (Content) is checked against the form definitions
(nanbyo.formdefs), the codes (nanbyo.document_codes) and a disease as the masters describe it. nanbyo.documents adds
what needs the database (提出先 by the patient's address, the author's 指定 and institution) and the encrypted
patient block.
"""
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from nanbyo import formdefs
from nanbyo.document_codes import (AGREED, DECLINED, DECLINED_MESSAGE, INSURANCE_FIELDS, INSURANCE_KIND_LABELS,
                                   KIND_LABELS, NEW, PATIENT_FIELDS, PATIENT_REQUIRED, RENEWAL, SEX_LABELS,
                                   SHOMAN, SHOMAN_AGE_LIMITS)


_KATAKANA = {code: code + 0x60 for code in range(ord("ぁ"), ord("ゖ") + 1)}


def to_katakana(text: str) -> str:
    """ひらがな -> カタカナ; everything else as it is."""
    return text.translate(_KATAKANA)


KANA_RE = re.compile(r"^[\u30A0-\u30FF]+$")
_SPACES = re.compile(r"\s+")
NO_DISEASE = "疾病を選択してください。"


def doctor_kinds_for(kind: str, application_kind: str) -> set[str]:
    """Designations that allow writing this document. 協力難病指定医: 更新 臨個票 only."""
    if kind == SHOMAN:
        return {"shoman"}
    return {"nanbyo", "nanbyo_kyoryoku"} if application_kind == RENEWAL else {"nanbyo"}


def doctor_kind_problem(kind: str, application_kind: str, doctor_kinds) -> str | None:
    """Why a doctor holding `doctor_kinds` (designation kinds) may not write this document; None when they may."""
    if doctor_kinds_for(kind, application_kind) & set(doctor_kinds):
        return None
    if kind == SHOMAN:
        return "小慢の医療意見書は小慢指定医だけが作成できます。"
    if application_kind == NEW and "nanbyo_kyoryoku" in doctor_kinds:
        return "協力難病指定医は更新の臨床調査個人票だけを作成できます（新規・変更は難病指定医）。"
    return "臨床調査個人票は難病指定医（更新は協力難病指定医も）だけが作成できます。"


def parse_date(text: str, label: str, problems: list) -> date | None:
    """The date typed into a field (formdefs.parse_date's formats), or None; a bad one adds (label, message)."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    if not text:
        return None
    day = formdefs.parse_date(text)
    if day is None:
        problems.append((label, f"「{label}」: 正しい日付ではありません（例 2026-04-01）。"))
    return day


def patient_fields(definition) -> dict[str, str]:
    """The patient block of a form: the common fields, and insurance only where the definition asks for it."""
    return PATIENT_FIELDS | (INSURANCE_FIELDS if "insurance" in definition.patient_fields else {})


def clean_patient(raw: dict, fields=PATIENT_FIELDS, today: date | None = None) -> tuple[dict, list]:
    """Normalise and check the patient block (`fields` of it; anything else sent is dropped). Returns (patient,
    [(field, message)]); required is finalize's job. `today`: Japan's, unless given."""
    problems = []
    patient = {}
    for key, label in fields.items():
        value = str(raw.get(key) or "")
        value = _SPACES.sub(" ", (value if value.isascii() else unicodedata.normalize("NFKC", value)).strip())
        if not value:
            continue
        if key in ("family_kana", "given_kana"):
            value = to_katakana(value).replace(" ", "")
            if not KANA_RE.match(value):
                problems.append((key, f"「{label}」: カタカナで入力してください。"))
        elif key == "sex" and value not in SEX_LABELS:
            problems.append((key, f"「{label}」: 選択肢にない値です。"))
        elif key == "insurance_kind" and value not in INSURANCE_KIND_LABELS:
            problems.append((key, f"「{label}」: 選択肢にない値です。"))
        elif key == "birth_date":
            found = []
            parsed = parse_date(value, label, found)
            if found:
                problems.append((key, found[0][1]))
            elif parsed and parsed > (today or formdefs.today_in_japan()):
                problems.append((key, f"「{label}」: 未来の日付です。"))
            value = parsed.isoformat() if parsed else value
        elif key == "postal_code":
            value = value.replace("-", "")
            if not re.fullmatch(r"\d{7}", value):
                problems.append((key, f"「{label}」: 7桁の数字で入力してください。"))
        elif key == "insurer_number" and not re.fullmatch(r"\d{6}|\d{8}", value):
            problems.append((key, f"「{label}」: 6桁または8桁の数字で入力してください。"))
        elif len(value) > 200:
            problems.append((key, f"「{label}」: 200文字以内で入力してください。"))
        patient[key] = value
    return patient, problems


def disease_problem(doc) -> str | None:
    disease = doc.disease
    since = getattr(disease, "since", None)
    if disease is not None and since and doc.written_on and doc.written_on < since:
        return (f"{disease.name_ja}は作成年月日（{doc.written_on.isoformat()}）には指定難病ではありません"
                f"（{since.isoformat()}から）。作成年月日を確認してください。")
    return None


def explanation_problem(doc) -> str | None:
    if doc.explanation == DECLINED:
        return DECLINED_MESSAGE.format(form=KIND_LABELS[doc.kind])
    if doc.explanation != AGREED:
        return "DB登録について患者（保護者）に説明し、その回答（説明済・同意）を記録してください。"
    return None


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))



@dataclass
class Content:
    """What a document says: the fields the content rules read (a Document has them all, so does a parsed XML
    document). `disease`: anything with name_ja and since (a master row), or None."""
    kind: str
    application_kind: str
    definition: object  # formdefs.FormDefinition
    disease: object = None
    diagnosed_on: date | None = None
    written_on: date | None = None
    explained_on: date | None = None
    explanation: str | None = None
    patient: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)


def content_problems(content: Content, today: date, patient_checks=None,
                     clean_items=False) -> list[tuple[str, str]]:
    """Everything the content must satisfy before a document is finalized: (form field name or "", message).
    A caller that has just cleaned the content (the XML check) passes what clean_patient() said of its patient
    block (`patient_checks`: cleaning it again says the same) and clean_items=True (its items are validate()'s
    values): the same problems, without cleaning everything twice."""
    problems = []
    patient, definition = content.patient, content.definition
    for key in PATIENT_REQUIRED:
        if not patient.get(key):
            problems.append((key, f"「{PATIENT_FIELDS[key]}」を入力してください。"))
    checks = patient_checks
    if checks is None:
        _, checks = clean_patient(patient, patient_fields(definition), today)
    problems += checks
    if content.disease is None:
        problems.append(("", NO_DISEASE))
    if content.diagnosed_on is None and formdefs.diagnosis_date_required(definition, content.items or {}):
        problems.append(("diagnosed_on", "「診断年月日」を入力してください。"))
    if content.written_on is None:
        problems.append(("written_on", "「作成年月日」を入力してください。"))
    if content.explained_on is None:
        problems.append(("explained_on", "DB登録について患者（保護者）に説明した日（説明日）を入力してください。"
                                         "説明は確定の前に必要です。"))
    for name, problem in (("explanation", explanation_problem(content)), ("written_on", disease_problem(content))):
        if problem:
            problems.append((name, problem))
    if content.diagnosed_on and content.written_on and content.diagnosed_on > content.written_on:
        problems.append(("diagnosed_on", "診断年月日は作成年月日以前の日付にしてください。"))
    if content.written_on and content.written_on > today:
        problems.append(("written_on", "作成年月日に未来の日付は入力できません。"))
    if content.explained_on and content.explained_on > today:
        problems.append(("explained_on", "説明日に未来の日付は入力できません。"))
    birth = date.fromisoformat(patient["birth_date"]) if patient.get("birth_date") and not checks else None
    if birth and content.diagnosed_on and content.diagnosed_on < birth:
        problems.append(("diagnosed_on", "診断年月日が生年月日より前です。"))
    limit = SHOMAN_AGE_LIMITS.get(content.application_kind)
    if birth and content.kind == SHOMAN and limit and content.written_on and age_on(birth, content.written_on) >= limit:
        what = "新規の申請" if content.application_kind == NEW else "継続（変更）の申請"
        problems.append(("birth_date", f"小児慢性特定疾病の{what}は{limit}歳未満の方が対象です"
                                       f"（作成年月日に{age_on(birth, content.written_on)}歳）。"))
    if clean_items:
        item_problems = formdefs.missing_required(definition, content.items or {})
    else:
        _, item_problems = formdefs.validate(definition, content.items or {}, finalize=True)
    problems += [(formdefs.field_name(definition.item(item_id)), message) for item_id, message in item_problems]
    return problems
