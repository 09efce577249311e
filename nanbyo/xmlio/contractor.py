"""The operator's import of its contractor's data (issue 13): paper 臨個票 / 意見書 that municipalities scanned,
digitized as XML of the published contract (xsd/documents-1.xsd) with <scan id="…"/> naming the scans each was
made of, and institution/@name where the 医療機関 is not registered.

Each document is checked as the check tool checks it, then as a paper form (nanbyo.paper: the 指定医 and 医療機関 as
data, checked against the registrations where they exist; its scans of one municipality, not sent back, of this
kind and 申請区分) and against its 提出先 (the municipality that uploaded the scans; the patient's address must
not say another). It arrives received (受付) there, with the scans' 受付番号, and the scans become データ化済.

The same data imported again changes nothing: a document whose scans are already one document is reported as kept.
Groups, all-or-nothing, background jobs and the report are the hospital import's (nanbyo.xmlio.importer).
"""
from lxml import etree
from sqlalchemy import select

from models.documents import Document
from models.scans import ScanFile
from nanbyo import documents, paper
from nanbyo.document_codes import DRAFT, SHOMAN
from nanbyo.extensions import db
from nanbyo.xmlio.importer import ARRIVED, KEPT, Outcome, apply, refused_unless_checked

NO_SCAN = ('紙の書類のデータには、元のスキャンファイルの No. を <scan id="…"/> で書いてください'
           '（医療機関名は <institution code="…" name="…"/>）。')


def import_one(name, checked, user, today, known, written) -> Outcome:
    """The document's outcome; its changes are in the session (not flushed) and (outcome, document) in `written`.
    A refusal changes nothing."""
    outcome = refused_unless_checked(name, checked)
    if not checked.ok:
        return outcome
    content = checked.content
    if not checked.scans:
        outcome.messages = [NO_SCAN]
        return outcome
    with db.session.no_autoflush:  # the group's documents are inserted together when it is committed
        kept = _already(checked.scans, known)
        if kept is not None:
            outcome.result, outcome.document_id = KEPT, kept.id
            outcome.messages = [f"スキャンファイル No.{'・'.join(map(str, checked.scans))} の書類は既に取り込まれて"
                                "います。変更していません（訂正は提出先の自治体が書類の画面で行います）。"]
            return outcome
        scans, problems = paper.scans_for(checked.scans, content.kind, content.application_kind)
        writer_key = ("writer", *checked.doctor, checked.designation, checked.institution_code,
                      checked.institution_name, content.kind, content.application_kind)
        if writer_key not in known:
            known[writer_key] = paper.writer_problems(paper.Writer(
                *checked.doctor, checked.institution_code, checked.institution_name, checked.designation),
                content.kind, content.application_kind)
        writer, writer_problems = known[writer_key]
        problems += [message for _field, message in writer_problems]
        if problems:
            outcome.messages = problems
            return outcome
        doc = Document(kind=content.kind, created_by_id=user.id, municipality=scans[0].municipality,
                       explanation=None, items={})
        if content.kind == SHOMAN:
            doc.shoman_disease_id = content.disease.id
        else:
            doc.nanbyo_disease_id = content.disease.id
        apply(doc, content)
        destination = documents.destination_problem(doc, content.patient)
        if destination:
            outcome.messages = [f"{destination}（提出先はスキャンファイルをアップロードした自治体です）"]
            return outcome
        paper.set_writer(doc, writer)
    db.session.add(doc)
    paper.arrive(doc, scans)
    for scan_id in checked.scans:
        known[("document", "scan", scan_id)] = doc
    outcome.result = ARRIVED
    written.append((outcome, doc))
    return outcome


def paper_element(element, scan_ids, institution_name=""):
    """A hospital-shaped <document> made the contractor's: naming its scans (and the institution's name)."""
    institution = element.find("institution")
    if institution_name:
        institution.set("name", institution_name)
    for scan_id in reversed(list(scan_ids)):
        institution.addnext(etree.Element("scan", id=str(scan_id)))
    return element


def _already(scan_ids, known):
    """The document these scans already are, all of them (in the database, or earlier in this import); None when
    they are not (some of them being another document's is scans_for's to report)."""
    pending = {known.get(("document", "scan", i)) for i in scan_ids}
    if len(pending) == 1 and None not in pending:
        return pending.pop()
    linked = db.session.execute(select(ScanFile.document_id).where(ScanFile.id.in_(scan_ids))).scalars().all()
    if len(linked) == len(set(scan_ids)) and len(set(linked)) == 1 and linked[0] is not None:
        doc = db.session.get(Document, linked[0])
        return doc if doc is not None and doc.is_paper and doc.status != DRAFT else None
    return None
