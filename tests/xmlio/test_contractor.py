"""外部委託事業者が作成したデータ一括取込 (issue 13): the operator imports the contractor's XML of paper forms; each
document is made of the scans it names, its 指定医 and 医療機関 are data (checked against the registrations where
they exist), and it arrives received at the municipality that uploaded the scans. Refusals change nothing; the same
data again changes nothing; only the operator imports."""
import io

import pytest
from sqlalchemy import func, select

from models.documents import Document
from models.scans import SCAN_DIGITIZED, SCAN_WAITING, ScanFile
from models.xml_imports import XmlImportJob
from nanbyo import documents
from nanbyo.extensions import db
from nanbyo.files import scans as scan_files
from nanbyo.xmlio import importer, vendor_kit
from nanbyo.xmlio.contractor import paper_element
from nanbyo.xmlio.importer import ARRIVED, KEPT, REFUSED, import_uploads
from nanbyo.xmlio.writer import file_bytes
from tests.helpers import (OSAKA, TOKYO, csrf_token, gen_institution, gen_municipality, gen_scan, gen_user,
                           log_entries, login)

DAY = vendor_kit.SAMPLE_DAY


@pytest.fixture
def w(app, monkeypatch):
    monkeypatch.setattr("models._types.today_jst", lambda: DAY)
    monkeypatch.setattr("nanbyo.xmlio.importer.today_jst", lambda: DAY)
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    clerk = gen_user("municipality_user", municipality=tokyo)
    return {"tokyo": tokyo, "osaka": osaka, "clerk": clerk, "operator": gen_user("operator_user"),
            "osaka_clerk": gen_user("municipality_user", municipality=osaka),
            "scan": gen_scan(clerk, reception_no="R2026-00077"), "shoman_scan": gen_scan(clerk, kind="shoman")}


def paper(scan_ids, kind="nanbyo", code="6", institution_name="見本診療所", doctor=("13-N-0101", "見本 太郎")):
    """A contractor's <document>: the sample of this kind, naming its scans and (unregistered) institution."""
    element = vendor_kit.sample_element(kind, code)
    element.find("doctor").set("number", doctor[0])
    element.find("doctor").set("name", doctor[1])
    return paper_element(element, scan_ids, institution_name)


def count():
    return db.session.execute(select(func.count()).select_from(Document)).scalar()


def test_paper_data_arrives_received_at_the_scans_municipality(app, w):
    outcomes = import_uploads([("paper.xml", file_bytes([paper([w["scan"].id]),
                                                          paper([w["shoman_scan"].id], "shoman", "01_01_001")]))],
                              w["operator"], None, today=DAY)
    assert [o.result for o in outcomes] == [ARRIVED, ARRIVED], [o.messages for o in outcomes]
    doc = db.session.get(Document, outcomes[0].document_id)
    assert (doc.status, doc.municipality_id, doc.reception_no, doc.access_key) == (
        "received", w["tokyo"].id, "R2026-00077", None)
    assert (doc.author_id, doc.institution_id, doc.created_by_id) == (None, None, w["operator"].id)
    assert (doc.paper_doctor_number, doc.paper_doctor_name, doc.paper_institution_code,
            doc.paper_institution_name) == ("13-N-0101", "見本 太郎", "1310000017", "見本診療所")
    assert documents.patient_of(doc) == vendor_kit.sample_content("nanbyo", "6").patient
    assert documents.finalize_problems(doc, today=DAY) == []
    scan = db.session.get(ScanFile, w["scan"].id)
    assert (scan.status, scan.document_id) == (SCAN_DIGITIZED, doc.id)
    entries = log_entries("document_paper_import")
    assert [(e.target_id, e.data["scans"], e.data["result"]) for e in entries] == [
        (str(doc.id), [w["scan"].id], ARRIVED), (str(outcomes[1].document_id), [w["shoman_scan"].id], ARRIVED)]
    assert log_entries("document_import_batch")[-1].data["paper"] is True


def test_the_same_data_again_changes_nothing(app, w):
    data = file_bytes([paper([w["scan"].id])])
    first = import_uploads([("paper.xml", data)], w["operator"], None, today=DAY)
    version = db.session.get(Document, first[0].document_id).version_id
    again = import_uploads([("paper.xml", data), ("copy.xml", data)], w["operator"], None, today=DAY)
    assert [o.result for o in again] == [KEPT, KEPT] and count() == 1
    assert {o.document_id for o in again} == {first[0].document_id}
    assert db.session.get(Document, first[0].document_id).version_id == version


def test_one_upload_naming_a_scan_twice_makes_one_document(app, w):
    outcomes = import_uploads([("a.xml", file_bytes([paper([w["scan"].id]), paper([w["scan"].id])]))],
                              w["operator"], None, today=DAY)
    assert [o.result for o in outcomes] == [ARRIVED, KEPT] and count() == 1


def refusal_cases(w):
    returned = gen_scan(w["clerk"])
    scan_files.send_back(w["operator"], returned, "読めません")
    db.session.commit()
    osaka_scan = gen_scan(w["osaka_clerk"])
    registered = gen_user("designated_doctor", institution=gen_institution(w["tokyo"], code="1310000099",
                                                                          name="登録病院"), name="登録 花子")
    registered.designations[0].number = "13-N-7777"
    db.session.commit()
    scan = w["scan"].id
    return [
        (paper([]), "<scan id="),
        (paper([999999]), "No.999999 はありません"),
        (paper([returned.id]), "差し戻したもの"),
        (paper([w["shoman_scan"].id]), "として受け付けられています"),
        (paper([scan, osaka_scan.id]), "同じ自治体のもの"),
        (paper([osaka_scan.id]), "提出先はスキャンファイルをアップロードした自治体"),
        (paper([scan], doctor=("13-N-7777", "別人 一郎")), "登録では「登録 花子」"),
        (paper([scan], institution_name=""), "医療機関名を入力してください"),
        (paper([scan], doctor=("no number!", "見本 太郎")), "形式が正しくありません"),
    ]


def test_what_cannot_be_a_paper_document_is_refused_and_changes_nothing(app, w):
    for element, message in refusal_cases(w):
        outcomes = import_uploads([("bad.xml", file_bytes([element]))], w["operator"], None, today=DAY)
        assert [o.result for o in outcomes] == [REFUSED], message
        assert any(message in m for m in outcomes[0].messages), (message, outcomes[0].messages)
    assert count() == 0
    assert {s.status for s in db.session.execute(select(ScanFile).where(ScanFile.document_id.is_not(None)))} == set()
    assert db.session.get(ScanFile, w["scan"].id).status == SCAN_WAITING


def test_a_registered_institution_and_doctor_are_matched_by_name(app, w):
    hospital = gen_institution(w["tokyo"], code="1310000017", name="見本病院")
    doctor = gen_user("designated_doctor", institution=hospital, name="見本 太郎")
    doctor.designations[0].number = "13-N-0101"
    db.session.commit()
    outcomes = import_uploads([("p.xml", file_bytes([paper([w["scan"].id], institution_name="")]))],
                              w["operator"], None, today=DAY)
    assert [o.result for o in outcomes] == [ARRIVED], outcomes[0].messages
    doc = db.session.get(Document, outcomes[0].document_id)
    # Data, not the accounts: the doctor's and the institution's lists never show a paper form.
    assert (doc.author_id, doc.institution_id, doc.paper_institution_name) == (None, None, "見本病院")
    client = app.test_client()
    login(client, doctor)
    assert client.get(f"/admin/document/details/?id={doc.id}").status_code == 404
    assert f"?id={doc.id}" not in client.get("/admin/document/").get_data(as_text=True)
    wrong = import_uploads([("p.xml", file_bytes([paper([gen_scan(w["clerk"]).id], institution_name="別の病院")]))],
                           w["operator"], None, today=DAY)
    assert [o.result for o in wrong] == [REFUSED] and "登録では「見本病院」" in wrong[0].messages[0]


def test_all_or_nothing_leaves_every_scan_as_it_was(app, w):
    outcomes = import_uploads([("a.xml", file_bytes([paper([w["scan"].id]), paper([424242])]))], w["operator"],
                              None, all_or_nothing=True, today=DAY)
    assert [o.result for o in outcomes] == [REFUSED, REFUSED] and count() == 0
    assert db.session.get(ScanFile, w["scan"].id).document_id is None


def test_a_hospital_upload_may_not_name_scans(app, w):
    from tests.xmlio.test_import import world
    hospital = world()
    outcomes = import_uploads([("a.xml", file_bytes([paper([w["scan"].id])]))], hospital["doctor"],
                              hospital["hospital"], today=DAY)
    assert [o.result for o in outcomes] == [REFUSED] and "<scan>" in outcomes[0].messages[0] and count() == 0


def post_upload(client, files, path="/admin/paper-import/", **fields):
    data = {"csrf_token": csrf_token(client, path), "files": [(io.BytesIO(body), name) for name, body in files],
            **fields}
    return client.post(path, data=data, content_type="multipart/form-data")


def test_the_screen_and_the_municipality_sees_the_document_with_its_scan(app, w):
    operator = app.test_client()
    login(operator, w["operator"])
    page = post_upload(operator, [("paper.xml", file_bytes([paper([w["scan"].id])]))]).get_data(as_text=True)
    assert 'class="import-received"' in page and "受付（紙の書類）" in page
    doc = db.session.execute(select(Document)).scalar_one()
    clerk = app.test_client()
    login(clerk, w["clerk"])
    assert f"?id={doc.id}" in clerk.get("/admin/document/").get_data(as_text=True)
    details = clerk.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
    assert "見本 太郎（指定医番号 13-N-0101・紙の書類）" in details and "見本診療所（1310000017）" in details
    assert 'id="scan-beside"' in details and f"/admin/scans/{w['scan'].id}/page/1.png" in details
    assert 'id="review-document"' in details
    review = clerk.get(f"/admin/document/review/?id={doc.id}").get_data(as_text=True)
    assert 'id="scan-beside"' in review
    other = app.test_client()
    login(other, w["osaka_clerk"])
    assert other.get(f"/admin/document/details/?id={doc.id}").status_code == 404


def test_a_large_upload_runs_in_the_background_for_its_owner_alone(app, w):
    app.config["NANBYO_XML_INLINE_BYTES"] = 100
    operator = app.test_client()
    login(operator, w["operator"])
    response = post_upload(operator, [("paper.xml", file_bytes([paper([w["scan"].id])]))])
    job = db.session.execute(select(XmlImportJob)).scalar_one()
    assert response.status_code == 302 and response.location.endswith(f"/admin/paper-import/{job.id}/")
    assert job.institution_id is None and job.status == "done" and job.counts[ARRIVED] == 1 and count() == 1
    page = operator.get(response.location).get_data(as_text=True)
    assert "紙の書類のデータ" in page and 'class="import-received"' in page
    assert operator.get(f"/admin/paper-import/{job.id}/report.xlsx").status_code == 200
    assert operator.get(f"/admin/document/import-xml/{job.id}/").status_code == 403  # not a hospital's screen
    colleague = app.test_client()
    login(colleague, gen_user("operator_admin"))
    for path in (f"/admin/paper-import/{job.id}/", f"/admin/paper-import/{job.id}/report.xlsx"):
        assert colleague.get(path).status_code == 404


@pytest.mark.parametrize("role", ["operator_admin", "operator_user", "municipality_admin", "municipality_user",
                                  "designated_doctor", "institution_staff", "manager", "anonymous"])
def test_only_the_operator_imports_paper_data(app, w, role):
    client = app.test_client()
    if role == "manager":
        user = gen_user("designated_doctor", institution=gen_institution(w["tokyo"]))
        user.memberships[0].is_manager = True
        db.session.commit()
    elif role != "anonymous":
        user = gen_user(role, municipality=w["tokyo"] if role.startswith("municipality") else None,
                        institution=gen_institution(w["tokyo"]) if role in ("designated_doctor",
                                                                            "institution_staff") else None)
    if role != "anonymous":
        login(client, user)
    allowed = role.startswith("operator")
    for path in ("/admin/paper-import/", "/admin/paper-import/1/", "/admin/paper-import/1/report.xlsx"):
        status = client.get(path).status_code
        if role == "anonymous":
            assert status == 302, path
        else:
            assert status == ((404 if path != "/admin/paper-import/" else 200) if allowed else 403), (role, path)
    if not allowed and role != "anonymous":
        data = {"csrf_token": csrf_token(client, "/admin/"),
                "files": [(io.BytesIO(file_bytes([paper([w["scan"].id])])), "p.xml")]}
        assert client.post("/admin/paper-import/", data=data,
                           content_type="multipart/form-data").status_code == 403
    assert count() == 0


def test_the_job_refuses_an_owner_who_may_no_longer_import(app, w):
    from nanbyo.xmlio import import_jobs
    job = import_jobs.create(w["operator"], None, [("p.xml", file_bytes([paper([w["scan"].id])]))], False)
    db.session.commit()
    w["operator"].status = "disabled"
    db.session.commit()
    import_jobs.run(job.id)
    db.session.expire_all()
    job = db.session.get(XmlImportJob, job.id)
    assert job.status == "failed" and job.error == import_jobs.DENIED_PAPER and count() == 0


def test_report_counts_cover_the_paper_result():
    assert importer.counts([]) == {"created": 0, "updated": 0, "received": 0, "kept": 0, "refused": 0}


def test_hostile_files_are_refused_as_in_the_hospital_import(app, w):
    from tests.data.hostile.make import FILES
    names = ["xxe_file.xml", "billion_laughs.xml"]
    outcomes = import_uploads([(name, FILES[name]) for name in names if name in FILES], w["operator"], None,
                              today=DAY)
    assert outcomes and {o.result for o in outcomes} == {REFUSED} and count() == 0
    assert db.session.get(ScanFile, w["scan"].id).status == SCAN_WAITING


def test_the_command_line_imports_paper_data_as_an_operator_only(app, w, tmp_path):
    (tmp_path / "paper.xml").write_bytes(file_bytes([paper([w["scan"].id])]))
    runner = app.test_cli_runner()
    args = ["nanbyo", "import-xml", str(tmp_path / "paper.xml"), "--paper", "--as"]
    denied = runner.invoke(args=args + [w["clerk"].login_id])
    assert denied.exit_code == 1 and "運営主体" in denied.output and count() == 0
    both = runner.invoke(args=args + [w["operator"].login_id, "--institution", "1310000017"])
    assert both.exit_code == 2 and count() == 0
    result = runner.invoke(args=args + [w["operator"].login_id])
    assert result.exit_code == 0, result.output
    assert "受付（紙の書類）" in result.output and count() == 1
    again = runner.invoke(args=args + [w["operator"].login_id])
    assert again.exit_code == 0 and "変更なし" in again.output and count() == 1


def test_a_paper_document_prints_and_exports_with_what_the_paper_says(app, w):
    import csv
    outcomes = import_uploads([("p.xml", file_bytes([paper([w["scan"].id])]))], w["operator"], None, today=DAY)
    doc_id = outcomes[0].document_id
    clerk = app.test_client()
    login(clerk, w["clerk"])
    pdf = clerk.get(f"/admin/document/print/?id={doc_id}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    xml = clerk.get(f"/admin/document/xml/?id={doc_id}")
    assert xml.status_code == 200 and b'number="13-N-0101"' in xml.data and b'code="1310000017"' in xml.data
    exported = clerk.get("/admin/document/export/csv/")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    header, row = rows[0], rows[1]
    assert row[header.index("医療機関コード")] == "1310000017"
    assert row[header.index("指定医番号（紙の書類）")] == "13-N-0101"


def test_a_scan_being_entered_is_not_deleted_by_its_municipality(app, w):
    from nanbyo import database
    from tests.helpers import gen_document
    doctor = gen_user("designated_doctor", institution=gen_institution(w["tokyo"]))
    doc = gen_document(doctor)
    database.begin_write()
    db.session.get(ScanFile, w["scan"].id).document_id = doc.id
    db.session.commit()
    assert "削除できません" in scan_files.delete(w["clerk"], db.session.get(ScanFile, w["scan"].id))
    assert db.session.get(ScanFile, w["scan"].id) is not None


def test_the_log_screen_names_what_a_paper_import_did(app, w):
    from views.audit import data_items
    import_uploads([("paper.xml", file_bytes([paper([w["scan"].id])]))], w["operator"], None, today=DAY)
    entry = log_entries("document_paper_import")[-1]
    assert data_items(entry.data, entry.target_type) == [
        "ファイル: paper.xml", "ファイル内の書類の番号: 1", "結果: 受付（紙の書類）", f"スキャンファイル: {w['scan'].id}"]
    batch = log_entries("document_import_batch")[-1]
    assert "紙の書類のデータ" in data_items(batch.data, batch.target_type) and "受付（紙の書類）件数: 1" in data_items(
        batch.data, batch.target_type)
