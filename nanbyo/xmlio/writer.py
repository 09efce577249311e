"""Writing documents as the contract (xsd/documents-1.xsd) describes them."""
from lxml import etree

from nanbyo import formdefs
from nanbyo.content_rules import patient_fields
from nanbyo.xmlio.contract import VERSION


def document_element(content, *, disease_code, doctor_number, doctor_name, institution_code, doctor_designation=None):
    """One <document> of `content` (content_rules.Content) with who wrote it where (the 指定医番号's designation kind
    when given): the patient fields its form has, in the schema's order; the items as nanbyo.formdefs writes them."""
    document = etree.Element("document")
    for name, value in (("kind", content.kind), ("application_kind", content.application_kind),
                        ("disease", disease_code), ("written_on", content.written_on),
                        ("diagnosed_on", content.diagnosed_on)):
        if value is not None and value != "":
            etree.SubElement(document, name).text = value if isinstance(value, str) else value.isoformat()
    explanation = etree.SubElement(document, "explanation", answer=content.explanation or "")
    if content.explained_on:
        explanation.set("on", content.explained_on.isoformat())
    doctor = etree.SubElement(document, "doctor", number=doctor_number, name=doctor_name)
    if doctor_designation:
        doctor.set("designation", doctor_designation)
    etree.SubElement(document, "institution", code=institution_code)
    patient = etree.SubElement(document, "patient")
    for key in patient_fields(content.definition):
        if content.patient.get(key):
            etree.SubElement(patient, key).text = content.patient[key]
    document.append(formdefs.to_xml(content.definition, content.items or {}))
    return document


def file_bytes(documents) -> bytes:
    """A file of the contract holding the <document> elements given."""
    root = etree.Element("documents", version=VERSION)
    root.extend(documents)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
