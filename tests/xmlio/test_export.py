"""A stored document exports as XML of the contract that the check tool passes and reads back as the same content
(from its screen, for whoever may print it, and from the CLI), each export logged."""
from hypothesis import HealthCheck, given, settings, strategies as st

from models._types import today_jst
from nanbyo import documents, formdefs
from nanbyo.content_rules import clean_patient, patient_fields
from nanbyo.xmlio import check
from nanbyo.xmlio.writer import document_element, file_bytes
from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_user, log_entries, login
from tests.xmlio import samples


def read_back(data, today=None):
    result = check.check_bytes("export.xml", data, today=today or today_jst())
    assert result.ok, [p.text("export.xml") for p in result.problems] + [
        p.text("export.xml") for d in result.documents for p in d.problems]
    return result.documents[0]


def same_content(doc, read):
    content = documents.content_of(doc)
    items, _ = formdefs.validate(content.definition, content.items, finalize=True)
    assert (read.content.kind, read.content.application_kind, read.content.definition.code,
            read.content.definition.version) == (doc.kind, doc.application_kind, doc.form_code, doc.form_version)
    assert (read.content.written_on, read.content.diagnosed_on, read.content.explained_on,
            read.content.explanation) == (doc.written_on, doc.diagnosed_on, doc.explained_on, doc.explanation)
    assert read.content.patient == content.patient and read.content.items == items
    assert read.institution_code == doc.institution.code and read.doctor[1] == doc.author.name


def test_documents_of_both_kinds_export_pass_the_check_and_read_back(app, client):
    from nanbyo.xmlio.export import document_xml
    inst = gen_institution(gen_municipality(TOKYO))
    doctor = gen_user("designated_doctor", institution=inst, designations=("nanbyo", "shoman"))
    for kind in ("nanbyo", "shoman"):
        doc = gen_document(doctor, kind=kind, status="finalized")
        read = read_back(document_xml(doc))
        same_content(doc, read)
        assert read.doctor[0] == next(d.number for d in doctor.designations if d.kind == kind)
        assert read.designation == kind  # the 指定 the number is, which the check then holds the document to


def test_the_screen_exports_for_whoever_may_print_and_logs_it(app, client):
    inst = gen_institution(gen_municipality(TOKYO))
    doctor = gen_user("designated_doctor", institution=inst)
    doc = gen_document(doctor, status="finalized")
    login(client, doctor)
    page = client.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
    assert f'href="/admin/document/xml/?id={doc.id}"' in page
    response = client.get(f"/admin/document/xml/?id={doc.id}")
    assert response.status_code == 200 and response.mimetype == "application/xml"
    assert f"document_{doc.id}.xml" in response.headers["Content-Disposition"]
    same_content(doc, read_back(response.data))
    assert [(e.action, e.target_id) for e in log_entries("document_xml")] == [("document_xml", str(doc.id))]


def test_the_cli_writes_the_xml_to_standard_output(app, runner):
    inst = gen_institution(gen_municipality(TOKYO))
    doc = gen_document(gen_user("designated_doctor", institution=inst), status="finalized")
    result = runner.invoke(args=["nanbyo", "export-xml", "--document", str(doc.id)])
    assert result.exit_code == 0, result.output
    same_content(doc, read_back(result.stdout_bytes))
    assert log_entries("document_xml")[-1].data == {"via": "cli"}
    missing = runner.invoke(args=["nanbyo", "export-xml", "--document", "999999"])
    assert missing.exit_code == 1 and "ありません" in missing.output


# Text a patient block may hold: anything XML 1.0 can carry, markup characters included.
TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"), min_size=1,
               max_size=30).filter(lambda t: t.strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.sampled_from(samples.disease_codes()), family=TEXT, given_name=TEXT, address=TEXT,
       birth=st.dates(min_value=samples.WRITTEN_ON.replace(year=2010), max_value=samples.WRITTEN_ON))
def test_any_patient_text_survives_the_xml(code, family, given_name, address, birth):
    """Export then check gives the patient block the screen would store, for every form."""
    kind, disease = code
    content = samples.content(kind, disease)
    patient = dict(content.patient, family_name=family, given_name=given_name, address=address,
                   birth_date=birth.isoformat())
    expected, problems = clean_patient(patient, patient_fields(content.definition), samples.WRITTEN_ON)
    content.patient = expected
    element = document_element(content, disease_code=disease, doctor_number="13-N-0101", doctor_name="見本",
                               institution_code="1310000017")
    result = check.check_bytes("x.xml", file_bytes([element]), today=samples.WRITTEN_ON)
    assert result.problems == [] and len(result.documents) == 1
    read = result.documents[0].content
    assert read is not None and read.patient == expected and read.items == content.items
