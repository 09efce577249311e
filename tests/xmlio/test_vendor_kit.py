"""The vendor package: generated from the application's own definitions; every valid sample passes the check and
every invalid one fails it with the message the package prints; the app offers it to those who write documents."""
import csv
import io
import zipfile

from openpyxl import load_workbook

from nanbyo import formdefs
from nanbyo.document_codes import APPLICATION_KINDS, SEX_LABELS
from nanbyo.xmlio import check, contract, vendor_kit
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user, login


def kit():
    return zipfile.ZipFile(io.BytesIO(vendor_kit.build()))


def csv_rows(archive, name):
    return list(csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))))


def test_the_package_holds_what_its_readme_lists():
    names = set(kit().namelist())
    assert {"README.md", "xsd/documents-1.xsd", "xsd/form-items-1.xsd", "record-definition.xlsx",
            "record-definition.md", "codes.xlsx", "rules.md", "samples/invalid/README.md"} <= names
    assert kit().read("xsd/documents-1.xsd") == (contract.XSD_DIRECTORY / "documents-1.xsd").read_bytes()


def test_every_valid_sample_passes_and_every_invalid_one_fails_as_documented():
    archive = kit()
    valid = [n for n in archive.namelist() if n.startswith("samples/valid/")]
    assert len(valid) == len(vendor_kit.sample_diseases()) >= len(formdefs.load_definitions())
    for name in valid:
        assert check.check_bytes(name, archive.read(name), today=vendor_kit.SAMPLE_DAY).ok, name
    documented = archive.read("samples/invalid/README.md").decode()
    invalid = [n for n in archive.namelist() if n.startswith("samples/invalid/") and n.endswith(".xml")]
    assert len(invalid) >= 10
    for name in invalid:
        result = check.check_bytes(name.rsplit("/", 1)[1], archive.read(name), today=vendor_kit.SAMPLE_DAY)
        problems = [*result.problems, *(p for d in result.documents for p in d.problems)]
        assert problems, name
        assert problems[0].message in documented, name


def test_record_definitions_cover_every_form_item_and_every_patient_field():
    archive = kit()
    book = load_workbook(io.BytesIO(archive.read("record-definition.xlsx")), read_only=True)
    envelope = [row[0] for row in book["書類"].iter_rows(min_row=2, values_only=True)]
    assert "document/patient/birth_date" in envelope and "document/doctor/@number" in envelope
    markdown = archive.read("record-definition.md").decode()
    for definition in formdefs.all_versions().values():
        sheet = book[f"items_{definition.code}_v{definition.version}"[:31]]
        ids = [row[0] for row in sheet.iter_rows(min_row=3, values_only=True)]
        assert ids == [item.id for item in definition.items], definition.code
        assert f"items_{definition.code}_v{definition.version}" in markdown


def test_code_tables_are_the_applications_codes():
    archive = kit()
    assert csv_rows(archive, "codes/sex.csv")[1:] == [list(kv) for kv in SEX_LABELS.items()]
    kinds = csv_rows(archive, "codes/application_kinds.csv")[1:]
    assert [(k, c) for k, c, _ in kinds] == [(k, c) for k in ("nanbyo", "shoman") for c in APPLICATION_KINDS[k]]
    nanbyo = csv_rows(archive, "codes/nanbyo_diseases.csv")[1:]
    assert ["6", "パーキンソン病"] == nanbyo[5][:2] or any(r[:2] == ["6", "パーキンソン病"] for r in nanbyo)
    forms = {row[0] for row in csv_rows(archive, "codes/forms.csv")[1:]}
    assert forms == set(formdefs.load_definitions())


def test_the_app_offers_the_package_to_those_who_write_documents(app, client):
    tokyo = gen_municipality(TOKYO)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo))
    login(client, doctor)
    assert 'id="xml-kit-link" href="/admin/document/xml-kit/"' in client.get("/admin/document/").get_data(as_text=True)
    response = client.get("/admin/document/xml-kit/")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.data == vendor_kit.build()
    clerk = app.test_client()
    login(clerk, gen_user("municipality_user", municipality=tokyo))
    assert clerk.get("/admin/document/xml-kit/").status_code == 403
    assert 'id="xml-kit-link"' not in clerk.get("/admin/document/").get_data(as_text=True)


def test_make_target_writes_the_zip(tmp_path):
    assert vendor_kit.main([str(tmp_path)]) == 0
    assert (tmp_path / vendor_kit.FILE_NAME).read_bytes() == vendor_kit.build()


def test_the_docs_in_the_repository_are_the_packages_texts():
    """docs/xml/ holds the record definitions, code tables and rules as the package generates them (make vendor-kit
    writes them again): a change to a form, a master or a rule shows there too."""
    for name, text in vendor_kit.docs().items():
        assert (vendor_kit.DOCS / name).read_text(encoding="utf-8") == text, f"docs/xml/{name}: run make vendor-kit"
    assert "| nanbyo_kyoryoku | 協力難病指定医 |" in vendor_kit.docs()["codes.md"]
