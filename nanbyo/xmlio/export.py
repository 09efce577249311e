"""A stored document as XML of the contract (xsd/documents-1.xsd), which the check tool passes: the author's
指定医番号 (and its kind) of the 指定 the document needs (valid on 作成年月日 where there is one), the institution's code and the
disease's 告示番号 or 小慢 code. The patient block is in it: the callers log each export."""
from nanbyo import documents
from nanbyo.document_codes import NANBYO
from nanbyo.xmlio.writer import document_element, file_bytes


def designation(doc):
    """The author's 指定 the document is written under (None when the author holds none, or it is a paper form)."""
    if doc.is_paper:
        return None
    needed = [d for d in doc.author.designations if d.kind in documents.doctor_kinds_for(doc.kind, doc.application_kind)]
    day = doc.written_on
    valid = [d for d in needed if day and (d.valid_from is None or d.valid_from <= day)
             and (d.valid_until is None or day <= d.valid_until)]
    chosen = (valid or needed or list(doc.author.designations))
    return chosen[0] if chosen else None


def disease_code(doc) -> str:
    disease = doc.disease
    if disease is None:
        return ""
    return str(disease.notification_no) if doc.kind == NANBYO else disease.shoman_code


def document_xml(doc) -> bytes:
    """The document as a file of the contract, one <document>."""
    chosen = designation(doc)
    number = doc.paper_doctor_number if doc.is_paper else chosen.number if chosen else ""
    element = document_element(documents.content_of(doc), disease_code=disease_code(doc),
                               doctor_number=number, doctor_name=doc.doctor_name,
                               institution_code=doc.institution_code,
                               doctor_designation=chosen.kind if chosen else None)
    return file_bytes([element])
