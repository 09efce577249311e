"""The check of 臨個票 / 意見書 XML files: the same code offline (python -m nanbyo.check, in the hospital) and on the
server (the import). No database, no network.

A file is read safely (reader; a ZIP through archive), its version checked by name, then each <document>: the schema
(xsd/documents-1.xsd), then the rules: 申請区分 of the kind, the disease in the masters (data/masters), the form
definition named by items/@form and @version and whether it is this disease's, the items (formdefs), the patient
block and everything a document must satisfy to be finalized (content_rules.content_problems: required items and
their conditions, date order, 小慢 age by 申請区分, the answer to 説明, the disease in force on 作成年月日).

Each problem says where (file, line, XPath), what (項目名), what is wrong and how to fix it, in Japanese.
"""
import io
import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

from nanbyo import formdefs, master_files
from nanbyo.content_rules import (NO_DISEASE, Content, clean_patient, content_problems, doctor_kind_problem,
                                  patient_fields)
from nanbyo.document_codes import (ALL_PATIENT_FIELDS, APPLICATION_KINDS, KIND_LABELS, NANBYO, SHOMAN,
                                   application_kind_label)
from nanbyo.xmlio import archive, reader
from nanbyo.xmlio.contract import VERSIONS, document_schema

LABELS = {
    "documents": "書類ファイル", "document": "書類", "kind": "書類の種類", "application_kind": "申請区分",
    "disease": "疾病（告示番号／疾病コード）", "written_on": "作成年月日", "diagnosed_on": "診断年月日",
    "explanation": "説明（DB登録）", "explanation/@answer": "説明への回答", "explanation/@on": "説明日",
    "doctor": "指定医", "doctor/@number": "指定医番号", "doctor/@name": "指定医氏名",
    "doctor/@designation": "指定医の区分", "institution": "医療機関",
    "institution/@code": "医療機関コード", "institution/@name": "医療機関名", "scan": "スキャンファイル",
    "scan/@id": "スキャンファイル No.", "patient": "患者", "items": "疾病別の項目", "items/@form": "様式コード",
    "items/@version": "様式の版", "documents/@version": "XMLの版",
    **{f"patient/{key}": label for key, label in ALL_PATIENT_FIELDS.items()},
}
EXAMPLES = {
    "disease": "難病は告示番号（例 6）、小慢は疾病コード（例 01_01_001）", "written_on": "2026-04-01",
    "diagnosed_on": "2026-04-01", "explanation/@on": "2026-04-01", "patient/birth_date": "2010-04-01",
    "doctor/@number": "13-N-0101（英数字とハイフン20文字以内）", "institution/@code": "1310000017（10桁）",
    "patient/sex": "1（男）または 2（女）", "explanation/@answer": "agreed（説明済・同意）",
}
# content_problems' field names -> where in the document
_FIELD_PATHS = {"written_on": "written_on", "diagnosed_on": "diagnosed_on", "explained_on": "explanation/@on",
                "explanation": "explanation/@answer", "": ""}


@dataclass
class Problem:
    line: int | None
    path: str  # XPath in the file
    label: str  # 項目名
    message: str  # what is wrong
    fix: str = ""  # how to put it right

    def text(self, name):
        where = f"{name}:{self.line}" if self.line else name
        label = f"「{self.label}」" if self.label and f"「{self.label}」" not in self.message else ""
        fix = f" → {self.fix}" if self.fix else ""
        return f"{where}: {self.path} {label}{self.message}{fix}".replace("  ", " ")


@dataclass
class DocumentCheck:
    number: int  # 1, 2 … in the file
    line: int | None
    problems: list = field(default_factory=list)
    content: Content | None = None  # what the document says, when it could be read
    doctor: tuple = ("", "")  # (指定医番号, 氏名)
    designation: str | None = None  # the 指定's kind, when the file names it
    institution_code: str = ""
    institution_name: str = ""  # a paper form's: as the paper says
    scans: list = field(default_factory=list)  # a paper form's: the scans (No.) it was digitized from

    @property
    def ok(self):
        return not self.problems


@dataclass
class FileCheck:
    name: str
    problems: list = field(default_factory=list)  # about the file as a whole
    documents: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems and all(d.ok for d in self.documents)


# --- masters ------------------------------------------------------------------------------------------------------

def diseases_in(directory=None) -> dict:
    """{(kind, code text): disease} of the master files in `directory` (the server's NANBYO_MASTERS_DIR), or of the
    masters the tool carries (top-level rows only)."""
    return _diseases(str(directory or master_files.DIRECTORY))


@lru_cache
def _diseases(directory):
    out = {}
    for row in master_files.nanbyo_diseases(directory):
        if not row["is_subtype"]:
            out[(NANBYO, str(row["notification_no"]))] = SimpleNamespace(**row)
    for row in master_files.shoman_diseases(directory):
        if "-" not in row["nando_id"]:
            out[(SHOMAN, row["shoman_code"])] = SimpleNamespace(**row)
    return out


def disease_key(kind, disease):
    return disease.notification_no if kind == NANBYO else disease.shoman_code


# --- schema messages in Japanese ---------------------------------------------------------------------------------

_SCHEMA_MESSAGES = [
    (re.compile(r"\[facet 'enumeration'\] The value '(.*?)' is not an element of the set"),
     lambda m: f"選択肢にない値です（値「{m[1]}」）。"),
    (re.compile(r"\[facet 'pattern'\] The value '(.*?)' is not accepted"), lambda m: f"形式が正しくありません（値「{m[1]}」）。"),
    (re.compile(r"\[facet 'maxLength'\] The value has a length of '(\d+)'; this exceeds the allowed maximum length of "
                r"'(\d+)'"), lambda m: f"{m[2]}文字以内で書きます（{m[1]}文字あります）。"),
    (re.compile(r": '([^']*)' is not a valid value of the atomic type '(?:xs:date|Date)'"),
     lambda m: f"日付は YYYY-MM-DD で書きます（値「{m[1]}」）。"),
    (re.compile(r": '([^']*)' is not a valid value of the atomic type 'xs:positiveInteger'"),
     lambda m: f"1以上の整数で書きます（値「{m[1]}」）。"),
    (re.compile(r"Missing child element\(s\)\. Expected is (?:one of )?\( (.*?) \)"),
     lambda m: f"必要な要素 {m[1]} がありません。"),
    (re.compile(r"This element is not expected\. Expected is (?:one of )?\( (.*?) \)"),
     lambda m: f"この要素はここに置けません（ここに来るのは {m[1]}）。"),
    (re.compile(r"This element is not expected"), lambda m: "この要素は様式にありません。"),
    (re.compile(r"The attribute '(.*?)' is required but missing"), lambda m: f"属性 {m[1]} がありません。"),
    (re.compile(r"The attribute '(.*?)' is not allowed"), lambda m: f"属性 {m[1]} は使えません。"),
    (re.compile(r"Element content is not allowed, because the content type is a simple type"),
     lambda m: "この要素の中に要素は置けません。"),
    (re.compile(r"Duplicate key-sequence \['(.*?)'\]"), lambda m: f"項目 {m[1]} が重複しています。"),
]
_ELEMENT = re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?:")


def _schema_problem(error, prefix):
    """A libxml2 schema error as a Problem at the document's XPath."""
    element = _ELEMENT.match(error.message)
    name, attribute = (element[1], element[2]) if element else ("", None)
    path = prefix + (error.path or "")[len("/document"):]
    local = re.sub(r"\[\d+\]", "", path.split("/document", 1)[-1]).strip("/").split("/")
    key = "/".join(local[-2:]) if len(local) > 1 and local[-2] == "patient" else (local[-1] if local else "")
    if attribute:
        key, path = f"{key}/@{attribute}", f"{path}/@{attribute}"
    message = next((render(found) for pattern, render in _SCHEMA_MESSAGES if (found := pattern.search(error.message))),
                   f"様式（XMLスキーマ）に合いません（{error.message}）。")
    example = EXAMPLES.get(key)
    return Problem(error.line, path, LABELS.get(key, name), message, f"記入例: {example}" if example else "")


# --- one document ------------------------------------------------------------------------------------------------

def _date(text):
    return date.fromisoformat(text) if text else None


@lru_cache
def _items_of(definition) -> tuple[dict, dict]:
    """The definition's items by form field name and by id (the same for every document of the form)."""
    return ({formdefs.field_name(item): item for item in definition.items},
            {item.id: item for item in definition.items})


class _Forms:
    """The form definitions a file's documents name and those their diseases and dates call for, each looked up once
    for the file (formdefs finds its catalogue by the NANBYO_FORMDEFS_DIR of the moment at every lookup)."""

    def __init__(self):
        self._named, self._expected = {}, {}

    def named(self, form, version):
        """formdefs.definition(form, version); KeyError for one that is not there."""
        if (form, version) not in self._named:
            self._named[form, version] = formdefs.definition(form, version)
        return self._named[form, version]

    def expected(self, kind, disease, written_on):
        key = (kind, disease, written_on)
        if key not in self._expected:
            self._expected[key] = formdefs.definition_for(kind, disease, on=written_on)
        return self._expected[key]


def check_document(element, number, today, diseases=None, forms=None) -> DocumentCheck:
    """`forms`: the file's _Forms, when the caller checks many documents."""
    prefix = f"/documents/document[{number}]"
    result = DocumentCheck(number, element.sourceline)
    schema, forms = document_schema(), forms or _Forms()
    if not schema.validate(element):
        result.problems = [_schema_problem(e, prefix) for e in schema.error_log]
        return result
    children = {}
    for child in element:  # the first of each name, as find() gives it: a dozen find()s cost more
        children.setdefault(child.tag, child)
    at = lambda key: element.find(key) if "/" in key else children.get(key)  # noqa: E731
    kind, application_kind, code = at("kind").text, at("application_kind").text, at("disease").text
    problem = lambda path, label, message, fix="", node=None: result.problems.append(  # noqa: E731
        Problem((node if node is not None else element).sourceline, f"{prefix}/{path}" if path else prefix, label,
                message, fix))
    if application_kind not in APPLICATION_KINDS[kind]:
        allowed = "・".join(application_kind_label(kind, k) for k in APPLICATION_KINDS[kind])
        problem("application_kind", LABELS["application_kind"], f"{KIND_LABELS[kind]}の申請区分は {allowed} です。",
                "、".join(APPLICATION_KINDS[kind]) + " のいずれかを書きます。", at("application_kind"))
    disease = (diseases or diseases_in()).get((kind, code))
    if disease is None:
        what = "告示番号" if kind == NANBYO else "小慢の疾病コード"
        problem("disease", LABELS["disease"], f"{what} {code} はマスタにありません。",
                "指定難病・小児慢性特定疾病の一覧で番号を確認してください。", at("disease"))
    items = at("items")
    form, version = items.get("form"), int(items.get("version"))
    try:
        definition = forms.named(form, version)
    except KeyError:
        problem("items/@form", LABELS["items/@form"], f"様式 {form} の版 {version} はありません。",
                "ファイルレコード定義書の様式コードと版を確認してください。", items)
        return result
    if definition.kind != kind:
        problem("items/@form", LABELS["items/@form"], f"様式 {form} は{KIND_LABELS[definition.kind]}の様式です。",
                f"{KIND_LABELS[kind]}の様式を使ってください。", items)
        return result
    written_on = _date(at("written_on").text)
    if disease is not None:
        # The form the screen would give a new document of this disease on its 作成年月日.
        expected = forms.expected(kind, disease_key(kind, disease), written_on)
        if (expected.code, expected.version) != (form, version):
            problem("items/@form", LABELS["items/@form"],
                    f"{disease.name_ja}の作成年月日 {written_on.isoformat()} の様式は {expected.code} 版 "
                    f"{expected.version} です（この書類は {form} 版 {version}）。",
                    f'<items form="{expected.code}" version="{expected.version}"> で出力してください。', items)
            return result
    raw_items, item_problems = formdefs.raw_from_xml(definition, items)
    values, value_problems = formdefs.validate(definition, raw_items, finalize=False)
    by_field, known_items = _items_of(definition)
    for item_id, message in item_problems + value_problems:
        item = known_items.get(item_id)
        node = items.find(f"item[@id='{item_id}']") if item_id and re.fullmatch(r"[a-z0-9_]+", item_id) else None
        problem(f"items/item[@id='{item_id}']" if item_id else "items", item.label if item else "", message, "",
                node if node is not None else items)
    raw_patient = {child.tag: child.text or "" for child in at("patient")}
    allowed = patient_fields(definition)
    for key in raw_patient:
        if key not in allowed:
            problem(f"patient/{key}", ALL_PATIENT_FIELDS[key], f"様式 {form} には「{ALL_PATIENT_FIELDS[key]}」の欄がありません。",
                    "この要素を外してください。", at(f"patient/{key}"))
    patient, patient_problems = clean_patient(raw_patient, allowed, today)
    explanation = at("explanation")
    result.content = Content(kind=kind, application_kind=application_kind, definition=definition, disease=disease,
                             diagnosed_on=_date(at("diagnosed_on").text if at("diagnosed_on") is not None else ""),
                             written_on=written_on, explained_on=_date(explanation.get("on")),
                             explanation=explanation.get("answer"), patient=patient, items=values)
    reported = {(p.path, p.message) for p in result.problems}
    for name, message in patient_problems + content_problems(result.content, today, patient_problems, True):
        if disease is None and message == NO_DISEASE:
            continue  # the unknown code is reported at <disease>
        if name in ALL_PATIENT_FIELDS:
            path, label, node = f"patient/{name}", ALL_PATIENT_FIELDS[name], at(f"patient/{name}")
        elif name in by_field:
            item = by_field[name]
            path, label, node = f"items/item[@id='{item.id}']", item.label, items.find(f"item[@id='{item.id}']")
        else:
            path = _FIELD_PATHS.get(name, name)
            label, node = LABELS.get(path, ""), at(path.split("/@")[0]) if path else None
        if (f"{prefix}/{path}", message) not in reported:
            reported.add((f"{prefix}/{path}", message))
            problem(path, label, message, "", node)
    doctor = at("doctor")
    designation = doctor.get("designation")
    kind_problem = designation and doctor_kind_problem(kind, application_kind, {designation})
    if kind_problem:
        problem("doctor/@designation", LABELS["doctor/@designation"], kind_problem,
                "指定医番号と区分を、この書類を作成できる指定のものにしてください。", doctor)
    result.doctor = (doctor.get("number"), doctor.get("name"))
    result.designation = designation
    result.institution_code = at("institution").get("code")
    result.institution_name = at("institution").get("name") or ""
    result.scans = [int(scan.get("id")) for scan in element.findall("scan")] if "scan" in children else []
    return result


# --- files ---------------------------------------------------------------------------------------------------------

def check_bytes(name, data, today=None, diseases=None) -> FileCheck:
    """Every document of one XML file (bytes)."""
    today = today or formdefs.today_in_japan()
    result = FileCheck(name)
    number, forms = 0, _Forms()
    try:
        for element in reader.iter_elements(data, "document"):
            if element.tag != "document":  # the root, last
                if element.tag != "documents":
                    result.problems.append(Problem(element.sourceline, f"/{element.tag}", "",
                                                   "ルート要素は documents です。", "<documents version=\"1\"> で始めます。"))
                elif number == 0:
                    result.problems.append(Problem(element.sourceline, "/documents", LABELS["documents"],
                                                   "書類（document）が1件もありません。"))
                break
            number += 1
            if number == 1:
                version = element.getparent().get("version") if element.getparent() is not None else None
                if element.getparent() is None or element.getparent().tag != "documents":
                    result.problems.append(Problem(element.sourceline, "/", "", "ルート要素は documents です。",
                                                   "<documents version=\"1\"> で始めます。"))
                    return result
                if version not in VERSIONS:
                    result.problems.append(Problem(
                        element.getparent().sourceline, "/documents/@version", LABELS["documents/@version"],
                        f"版 {version!r} のXMLには対応していません（対応している版: {'、'.join(VERSIONS)}）。"
                        if version else "version 属性がありません。",
                        f'<documents version="{max(VERSIONS)}"> としてください。'))
                    return result
            result.documents.append(check_document(element, number, today, diseases, forms))
    except reader.Refused as refused:
        result.problems.append(Problem(refused.line, "/", "", refused.message))
    return result


def check_upload(name, data, today=None, diseases=None) -> list[FileCheck]:
    """An uploaded file: one XML file, or each XML file of a ZIP (a refused ZIP is one FileCheck)."""
    return list(iter_upload(name, data, today, diseases))


def iter_upload(name, data, today=None, diseases=None):
    """check_upload's FileChecks one at a time: a large ZIP's documents are not all held at once. `data`: the file's
    bytes, or its path (a ZIP on disk is then read entry by entry, never whole)."""
    if isinstance(data, Path):
        with open(data, "rb") as file:
            if archive.is_zip(file.read(4)):
                file.seek(0)
                yield from iter_archive(name, file, today, diseases)
                return
            if data.stat().st_size > reader.MAX_FILE_BYTES:
                yield FileCheck(name, [Problem(None, "/", "", "ファイルが大きすぎます。")])
                return
            file.seek(0)
            data = file.read()
    if not archive.is_zip(data):
        yield check_bytes(name, data, today, diseases)
        return
    yield from iter_archive(name, io.BytesIO(data), today, diseases)


def upload_file_count(data) -> int:
    """How many FileChecks iter_upload will give for `data` (bytes or a path: the files of a ZIP; 1 for a refused
    one, or for a file that is not a ZIP)."""
    if isinstance(data, Path):
        with open(data, "rb") as file:
            return archive.count_entries(file) if archive.is_zip(file.read(4)) else 1
    return archive.count_entries(io.BytesIO(data)) if archive.is_zip(data) else 1


def check_archive(name, file, today=None, diseases=None) -> list[FileCheck]:
    """Each XML file of a ZIP read from `file` (a binary file object: a ZIP on disk is never read whole)."""
    return list(iter_archive(name, file, today, diseases))


def iter_archive(name, file, today=None, diseases=None):
    try:
        for entry in archive.entries(file):
            label = f"{name}/{entry.name}"
            if entry.data is None:
                yield FileCheck(label, [Problem(None, "/", "", entry.problem)])
            else:
                yield check_bytes(label, entry.data, today, diseases)
    except reader.Refused as refused:
        yield FileCheck(name, [Problem(refused.line, "/", "", refused.message)])


def _report_only(results) -> list[FileCheck]:
    """Results as the tool reports them: what each document says is not kept (a large ZIP holds many)."""
    kept = []
    for result in results:
        for document in result.documents:
            document.content = None
        kept.append(result)
    return kept


def check_paths(paths, today=None, diseases=None) -> list[FileCheck]:
    """Files, folders (every .xml and .zip inside, sorted) and ZIPs, as the tool reports them (_report_only); the
    diseases of the masters the tool carries unless given (diseases_in)."""
    results = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".xml", ".zip"))
        elif path.exists():
            files = [path]
        else:
            results.append(FileCheck(str(path), [Problem(None, "/", "", "ファイルがありません。")]))
            continue
        for file in files:
            results.extend(_report_only(iter_upload(str(file), file, today, diseases)))
    return results
