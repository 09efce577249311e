"""Paper forms (issue 13): a 臨個票 / 意見書 written on paper reaches the database from the scan a municipality
uploaded, digitized by the operator's contractor (nanbyo.xmlio.contractor) or entered by the operator on screen.

Its 指定医 and 医療機関 are data, what the paper says (指定医番号, 氏名, 医療機関コード, 名称), not accounts: most paper
comes from doctors without a login. They are checked against this server's registrations where they exist (a
registered 指定医番号 must carry the same name and a 指定 that allows the document; a registered 医療機関コード the
same name), and the document keeps no author and no institution account, so that no doctor's or institution's list
shows a paper form because of a number typed from it.

A paper document does not wait for a key lookup: the municipality already holds the paper. Complete, it arrives
received (受付) at its municipality, with the 受付番号 of its scan (or the municipality's next), and no access key.
"""
import unicodedata
from dataclasses import dataclass, replace

from sqlalchemy import select

from models._types import utcnow
from models.accounts import Designation, User
from models.institutions import Institution
from models.scans import SCAN_DIGITIZED, SCAN_RETURNED, ScanFile
from nanbyo import codes
from nanbyo.content_rules import doctor_kind_problem
from nanbyo.document_codes import KIND_LABELS, RECEIVED, application_kind_label
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR, DOCTOR_KIND_LABELS


@dataclass(frozen=True)
class Writer:
    """Who wrote a paper form, as the paper says."""
    doctor_number: str
    doctor_name: str
    institution_code: str
    institution_name: str = ""
    designation: str | None = None  # the 指定's kind, when the data names it

    @classmethod
    def of(cls, doc):
        return cls(doc.paper_doctor_number, doc.paper_doctor_name, doc.paper_institution_code,
                   doc.paper_institution_name)


def plain(text) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def same_name(a, b) -> bool:
    """Whether two ways of writing a person's or an institution's name are the same name (width, spaces)."""
    return plain(a).replace(" ", "") == plain(b).replace(" ", "")


def writer_problems(writer: Writer, kind, application_kind) -> tuple[Writer, list[tuple[str, str]]]:
    """(the writer as stored: normalised, the registered institution's name where none was given; its problems as
    (field, message)). Nothing is written."""
    writer = replace(writer, doctor_number=plain(writer.doctor_number), doctor_name=plain(writer.doctor_name),
                     institution_code=plain(writer.institution_code), institution_name=plain(writer.institution_name))
    problems = []
    if not codes.DOCTOR_NUMBER.match(writer.doctor_number):
        problems.append(("doctor_number", "指定医番号は英数字とハイフン20文字以内で入力してください（例 13-N-0101）。"))
    if not writer.doctor_name or len(writer.doctor_name) > 200:
        problems.append(("doctor_name", "指定医の氏名を200文字以内で入力してください。"))
    institution_code_error = codes.institution_code_error(writer.institution_code)
    if institution_code_error:
        problems.append(("institution_code", institution_code_error))
    if len(writer.institution_name) > 200:
        problems.append(("institution_name", "医療機関名は200文字以内で入力してください。"))
    if writer.designation is not None and writer.designation not in DOCTOR_KIND_LABELS:
        problems.append(("doctor_number", "指定医の区分が正しくありません。"))
    if problems:
        return writer, problems
    problems += _doctor_problems(writer, kind, application_kind)
    institution = db.session.execute(select(Institution.name).where(
        Institution.code == writer.institution_code)).scalar()
    if institution is not None and writer.institution_name and not same_name(institution, writer.institution_name):
        problems.append(("institution_name", f"医療機関コード {writer.institution_code} の医療機関は、登録では"
                                             f"「{institution}」です（入力は「{writer.institution_name}」）。"))
    if institution is not None and not writer.institution_name:
        writer = replace(writer, institution_name=institution)
    if institution is None and not writer.institution_name:
        problems.append(("institution_name", "この医療機関コードは登録されていないため、医療機関名を入力してください。"))
    return writer, problems


def _doctor_problems(writer, kind, application_kind):
    """A registered 指定医番号: the same name, and a 指定 (the one the data names, if it does) that allows the
    document. An unregistered one: the 指定 the data names, if it does."""
    registered = db.session.execute(
        select(User.name, Designation.kind).join(Designation, Designation.user_id == User.id)
        .where(Designation.number == writer.doctor_number, User.role == DESIGNATED_DOCTOR)).all()
    kinds = {writer.designation} if writer.designation else set()
    if registered:
        names = {name for name, _kind in registered}
        if not any(same_name(name, writer.doctor_name) for name in names):
            shown = "、".join(sorted(names))
            return [("doctor_name", f"指定医番号 {writer.doctor_number} の指定医は、登録では「{shown}」です"
                                    f"（入力は「{writer.doctor_name}」）。番号と氏名を確かめてください。")]
        held = {k for name, k in registered if same_name(name, writer.doctor_name)}
        if writer.designation and writer.designation not in held:
            return [("doctor_number", f"指定医番号 {writer.doctor_number} は、登録では"
                                      f"{'・'.join(DOCTOR_KIND_LABELS[k] for k in sorted(held))}の番号です。")]
        kinds = kinds or held
    problem = kinds and doctor_kind_problem(kind, application_kind, kinds)
    return [("doctor_number", problem)] if problem else []


def scans_for(ids, kind, application_kind, document_id=None) -> tuple[list[ScanFile], list[str]]:
    """The scans (by No.) a paper document is made of, and why they cannot be: each must exist, not be sent back,
    hold this kind and 申請区分 (as its municipality described it), be of one municipality, and not be another
    document's already (`document_id`: the document they may already be)."""
    wanted = list(dict.fromkeys(ids))
    found = {s.id: s for s in db.session.execute(select(ScanFile).where(ScanFile.id.in_(wanted))).scalars()}
    problems = [f"スキャンファイル No.{i} はありません。" for i in wanted if i not in found]
    scans = [found[i] for i in wanted if i in found]
    for scan in scans:
        if scan.status == SCAN_RETURNED:
            problems.append(f"スキャンファイル No.{scan.id} は差し戻したものです。")
        if scan.document_id is not None and scan.document_id != document_id:
            problems.append(f"スキャンファイル No.{scan.id} は既に書類 No.{scan.document_id} になっています。")
        if (scan.kind, scan.application_kind) != (kind, application_kind):
            problems.append(f"スキャンファイル No.{scan.id} は{KIND_LABELS.get(scan.kind, scan.kind)}（"
                            f"{application_kind_label(scan.kind, scan.application_kind)}）として受け付けられています（"
                            f"データは{KIND_LABELS[kind]}（{application_kind_label(kind, application_kind)}））。")
    if len({scan.municipality_id for scan in scans}) > 1:
        problems.append("ひとつの書類のスキャンファイルは、同じ自治体のものにしてください。")
    return scans, problems


def set_writer(doc, writer: Writer):
    doc.author, doc.institution = None, None
    doc.paper_doctor_number, doc.paper_doctor_name = writer.doctor_number, writer.doctor_name
    doc.paper_institution_code, doc.paper_institution_name = writer.institution_code, writer.institution_name


def arrive(doc, scans=(), reception_no=""):
    """Inside the caller's unit of work: the complete paper document is received at its municipality (the 受付番号
    given, its scan's, or the municipality's next), and its scans are データ化済 and point to it."""
    from nanbyo.documents import next_reception_no
    # Numbered before it counts as received (next_reception_no counts the received ones).
    doc.reception_no = (reception_no or next((s.reception_no for s in scans if s.reception_no), "")
                        or next_reception_no(doc.municipality))
    now = utcnow()
    doc.status, doc.finalized_at, doc.received_at, doc.received_by_id = RECEIVED, now, now, None
    for scan in scans:
        scan.document, scan.status = doc, SCAN_DIGITIZED
