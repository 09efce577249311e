"""Bulk import of checked XML as drafts: matched to this server's 指定医 and institution, idempotent by document,
finalized ones kept, per document or all or nothing, every hostile file refused with no document changed."""
import io
from datetime import date

import pytest

from openpyxl import load_workbook
from sqlalchemy import func, select

from models.documents import Document
from nanbyo import documents, jurisdiction
from nanbyo.crypto import keyring, patient_search_value
from nanbyo.extensions import db
from nanbyo.xmlio import importer, vendor_kit
from nanbyo.xmlio.importer import CREATED, KEPT, REFUSED, UPDATED, import_uploads
from nanbyo.xmlio.writer import file_bytes
from tests.data.hostile.make import FILES, ZIPS, zipped
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user, log_entries

DAY = vendor_kit.SAMPLE_DAY


def world():
    tokyo = gen_municipality(TOKYO)
    hospital = gen_institution(tokyo, code="1310000017", name="見本病院")
    doctor = gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"), name="見本 太郎")
    for designation in doctor.designations:
        designation.number = "13-N-0101"
    db.session.commit()
    return {"hospital": hospital, "doctor": doctor,
            "staff": gen_user("institution_staff", institution=hospital),
            "colleague": gen_user("designated_doctor", institution=hospital)}


def two_documents(**changes):
    elements = [vendor_kit.sample_element("nanbyo", "6"), vendor_kit.sample_element("shoman", "01_01_001")]
    for element in elements:
        for path, text in changes.items():
            element.find(path).text = text
    return file_bytes(elements)


def count():
    return db.session.execute(select(func.count()).select_from(Document)).scalar()


def test_a_doctor_imports_drafts_of_their_own(app):
    w = world()
    outcomes = import_uploads([("batch.xml", two_documents())], w["doctor"], w["hospital"], today=DAY)
    assert [o.result for o in outcomes] == [CREATED, CREATED], [o.messages for o in outcomes]
    for outcome, (kind, code) in zip(outcomes, [("nanbyo", "6"), ("shoman", "01_01_001")]):
        doc = db.session.get(Document, outcome.document_id)
        expected = vendor_kit.sample_content(kind, code)
        assert (doc.status, doc.author_id, doc.created_by_id, doc.institution_id) == (
            "draft", w["doctor"].id, w["doctor"].id, w["hospital"].id)
        assert (doc.form_code, doc.form_version, doc.written_on) == (expected.definition.code,
                                                                       expected.definition.version, DAY)
        assert documents.patient_of(doc) == expected.patient and doc.items == expected.items
        assert jurisdiction.is_authority(doc.municipality, kind)
        assert documents.finalize_problems(doc, today=DAY) == []
    assert [e.data["result"] for e in log_entries("document_import")] == [CREATED, CREATED]
    batch = log_entries("document_import_batch")[-1]
    assert batch.result == "success" and batch.data["created"] == 2 and batch.actor_id == w["doctor"].id


def test_uploading_again_updates_the_draft_and_keeps_a_finalized_one(app):
    w = world()
    first = import_uploads([("a.xml", two_documents())], w["doctor"], w["hospital"], today=DAY)
    again = import_uploads([("a.xml", two_documents(**{"patient/address": "東京都新宿区西新宿二丁目8番2号"}))],
                           w["doctor"], w["hospital"], today=DAY)
    assert [o.result for o in again] == [UPDATED, UPDATED] and count() == 2
    assert [o.document_id for o in again] == [o.document_id for o in first]
    doc = db.session.get(Document, first[0].document_id)
    assert documents.patient_of(doc)["address"].endswith("8番2号")
    from nanbyo import database
    database.begin_write()
    documents.finalize(doc, w["doctor"])
    db.session.commit()
    third = import_uploads([("a.xml", two_documents(**{"patient/address": "東京都新宿区西新宿一丁目1番1号"}))],
                           w["doctor"], w["hospital"], today=DAY)
    assert [o.result for o in third] == [KEPT, UPDATED] and count() == 2
    db.session.expire_all()
    assert documents.patient_of(db.session.get(Document, doc.id))["address"].endswith("8番2号")


def test_staff_import_for_their_doctors_and_no_one_for_another(app):
    w = world()
    staffed = import_uploads([("s.xml", two_documents())], w["staff"], w["hospital"], today=DAY)
    assert [o.result for o in staffed] == [CREATED, CREATED]
    assert db.session.get(Document, staffed[0].document_id).created_by_id == w["staff"].id
    refused = import_uploads([("c.xml", two_documents())], w["colleague"], w["hospital"], today=DAY)
    assert [o.result for o in refused] == [REFUSED, REFUSED] and "自分が作成者" in refused[0].messages[0]
    elsewhere = gen_institution(gen_municipality(TOKYO))
    wrong = import_uploads([("w.xml", two_documents())], w["staff"], elsewhere, today=DAY)
    assert [o.result for o in wrong] == [REFUSED, REFUSED] and "取込先の医療機関" in wrong[0].messages[0]
    assert count() == 2


def test_a_manager_imports_only_their_own_documents(app):
    """A 責任者 manages the institution's users, not the documents of its other doctors."""
    w = world()
    manager = gen_user("designated_doctor", institution=w["hospital"], manager=True)
    outcomes = import_uploads([("m.xml", two_documents())], manager, w["hospital"], today=DAY)
    assert [o.result for o in outcomes] == [REFUSED, REFUSED] and "自分が作成者" in outcomes[0].messages[0]
    assert count() == 0


def test_unknown_doctor_and_name_are_refused(app):
    w = world()
    element = vendor_kit.sample_element("nanbyo", "6")
    element.find("doctor").set("number", "13-N-9999")
    renamed = vendor_kit.sample_element("nanbyo", "6")
    renamed.find("doctor").set("name", "別人 次郎")
    outcomes = import_uploads([("u.xml", file_bytes([element, renamed]))], w["doctor"], w["hospital"], today=DAY)
    assert [o.result for o in outcomes] == [REFUSED, REFUSED]
    assert "見つかりません" in outcomes[0].messages[0] and "別人 次郎" in outcomes[1].messages[0]
    assert count() == 0


def test_per_document_or_all_or_nothing(app):
    w = world()
    bad = vendor_kit.sample_element("nanbyo", "6")
    bad.find("patient/sex").text = "F"
    data = file_bytes([vendor_kit.sample_element("shoman", "01_01_001"), bad])
    together = import_uploads([("m.xml", data)], w["doctor"], w["hospital"], all_or_nothing=True, today=DAY)
    assert [o.result for o in together] == [REFUSED, REFUSED] and count() == 0
    assert "取り込んでいません" in together[0].messages[0] and "性別" in together[1].messages[0]
    assert log_entries("document_import") == [] and log_entries("document_import_batch")[-1].result == "failure"
    each = import_uploads([("m.xml", data)], w["doctor"], w["hospital"], today=DAY)
    assert [o.result for o in each] == [CREATED, REFUSED] and count() == 1


@pytest.mark.parametrize("group", [1, 2, 100])
def test_the_same_document_twice_in_one_upload_is_one_draft(app, monkeypatch, group):
    """Documents are written in groups (importer.GROUP) and looked up per file: the same document again, in the same
    file, the next file or after its group was committed, updates the one draft; the oldest of two is the one."""
    monkeypatch.setattr(importer, "GROUP", group)
    w = world()
    data = zipped([("a.xml", file_bytes([shoman(), vendor_kit.sample_element("nanbyo", "6"),
                                          shoman("東京都新宿区西新宿一丁目1番1号")])),
                   ("b.xml", file_bytes([shoman("東京都新宿区西新宿三丁目3番3号")]))])
    outcomes = import_uploads([("batch.zip", data)], w["doctor"], w["hospital"], today=DAY)
    assert [o.result for o in outcomes] == [CREATED, CREATED, UPDATED, UPDATED] and count() == 2
    assert outcomes[0].document_id == outcomes[2].document_id == outcomes[3].document_id
    doc = db.session.get(Document, outcomes[0].document_id)
    assert documents.patient_of(doc)["address"] == "東京都新宿区西新宿三丁目3番3号"
    assert [e.target_id for e in log_entries("document_import")] == [str(o.document_id) for o in outcomes]


def five_patients():
    """A file of five 小慢 documents of five patients (ハナコ, ハナコア, …), each at its own address."""
    elements = [shoman(f"東京都新宿区西新宿{n}丁目1番1号") for n in "一二三四五"]
    for n, element in enumerate(elements):
        element.find("patient/given_kana").text = "ハナコ" + "ア" * n
    return file_bytes(elements)


def shoman(address=None):
    """The 小慢 sample, at another address when given (the same document, changed)."""
    element = vendor_kit.sample_element("shoman", "01_01_001")
    if address is not None:
        element.find("patient/address").text = address
    return element


def test_a_database_failure_keeps_the_documents_before_it(app, monkeypatch):
    """A group that fails at the database is done again one document at a time up to the failure: the documents
    before it stay imported, each with its log entry, and the error goes on."""
    w = world()
    real, calls = importer._import_one, []

    def fails_on_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("database went away")
        return real(*args)

    monkeypatch.setattr(importer, "_import_one", fails_on_the_fourth)
    with pytest.raises(RuntimeError):
        import_uploads([("five.xml", five_patients())], w["doctor"], w["hospital"], today=DAY)
    db.session.rollback()
    assert count() == 3 and len(log_entries("document_import")) == 3


def test_the_designation_a_file_names_must_be_the_doctors(app):
    """The file says which 指定 its 指定医番号 is: a 協力難病指定医 number for a doctor whose 13-N-0101 is a 難病 and a 小慢
    designation is not found, even on a 更新 the check lets a 協力難病指定医 write."""
    w = world()
    renewal = vendor_kit.sample_element("nanbyo", "6")
    renewal.find("application_kind").text = "renewal"
    renewal.find("doctor").set("designation", "nanbyo_kyoryoku")
    (refused,) = import_uploads([("k.xml", file_bytes([renewal]))], w["doctor"], w["hospital"], today=DAY)
    assert refused.result == REFUSED and "13-N-0101 の指定医がこの医療機関" in refused.messages[0] and count() == 0
    renewal.find("doctor").set("designation", "nanbyo")
    (created,) = import_uploads([("n.xml", file_bytes([renewal]))], w["doctor"], w["hospital"], today=DAY)
    assert created.result == CREATED


def test_a_group_the_database_refuses_is_done_again_one_by_one(app, monkeypatch):
    """The documents of a group are inserted when it is committed: when the database refuses one of them there,
    the others before it are imported each in a unit of their own, and the refusal goes on."""
    from sqlalchemy.exc import IntegrityError
    w = world()
    real = importer.apply

    def breaks_the_fourth(doc, content, *args):
        real(doc, content, *args)
        if content.patient["given_kana"] == "ハナコアアア":
            doc.form_code = None  # NOT NULL: refused when the group is flushed

    monkeypatch.setattr(importer, "apply", breaks_the_fourth)
    with pytest.raises(IntegrityError):
        import_uploads([("five.xml", five_patients())], w["doctor"], w["hospital"], today=DAY)
    db.session.rollback()
    assert count() == 3 and len(log_entries("document_import")) == 3


def test_a_zip_of_files_imports_each(app):
    w = world()
    data = zipped([("one.xml", file_bytes([vendor_kit.sample_element("nanbyo", "6")])),
                   ("two.xml", file_bytes([vendor_kit.sample_element("shoman", "01_01_001")])),
                   ("note.txt", b"x")])
    outcomes = import_uploads([("batch.zip", data)], w["doctor"], w["hospital"], today=DAY)
    assert [(o.file, o.result) for o in outcomes] == [("batch.zip/one.xml", CREATED), ("batch.zip/two.xml", CREATED),
                                                      ("batch.zip/note.txt", REFUSED)]


def test_every_hostile_file_and_violation_changes_no_document(app):
    from tests.data.violations.make import VIOLATIONS
    w = world()
    for name, data in {**FILES, **ZIPS, **{v[0]: v[1] for v in VIOLATIONS}}.items():
        outcomes = import_uploads([(name, data)], w["doctor"], w["hospital"], today=DAY)
        assert outcomes and all(o.result == REFUSED for o in outcomes), name
    assert count() == 0 and log_entries("document_import") == []


def test_the_cli_imports_and_reports(app, runner, tmp_path):
    w = world()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "batch.xml").write_bytes(two_documents())
    result = runner.invoke(args=["nanbyo", "import-xml", str(tmp_path / "in"), "--institution", "1310000017",
                                 "--as", w["doctor"].login_id])
    # The CLI's today is Japan's: the samples are dated before it.
    assert result.exit_code == 0, result.output
    assert result.output.count("作成（下書き）") == 2 and count() == 2
    refused = runner.invoke(args=["nanbyo", "import-xml", str(tmp_path / "in"), "--institution", "1310000017",
                                  "--as", w["colleague"].login_id])
    assert refused.exit_code == 1 and "取込不可" in refused.output
    stranger = runner.invoke(args=["nanbyo", "import-xml", str(tmp_path / "in"), "--institution", "1310000017",
                                   "--as", "nobody"])
    assert stranger.exit_code == 1 and "所属していません" in stranger.output


# --- the screen ----------------------------------------------------------------------------------------------------

def upload(client, institution, files, **options):
    from tests.helpers import csrf_token
    token = csrf_token(client, "/admin/document/import-xml/")
    data = {"csrf_token": token, "institution": str(institution.id),
            "files": [(io.BytesIO(body), name) for name, body in files]}
    data |= {key: "y" for key, value in options.items() if value}
    return client.post("/admin/document/import-xml/", data=data, content_type="multipart/form-data")


def test_the_screen_imports_and_reports_every_document(app, client, monkeypatch):
    from tests.helpers import login
    monkeypatch.setattr("models._types.today_jst", lambda: DAY)
    monkeypatch.setattr("nanbyo.xmlio.importer.today_jst", lambda: DAY)
    w = world()
    login(client, w["doctor"])
    assert 'id="import-xml-link"' in client.get("/admin/document/").get_data(as_text=True)
    bad = vendor_kit.sample_element("nanbyo", "6")
    bad.find("patient/sex").text = "F"
    response = upload(client, w["hospital"], [("good.xml", two_documents()), ("bad.xml", file_bytes([bad])),
                                              ("evil.xml", FILES["xxe_file.xml"])])
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and page.count('class="import-created"') == 2
    assert page.count('class="import-refused"') == 2 and "「性別」選択肢にない値です" in page and "DOCTYPE" in page
    assert count() == 2
    report = upload(client, w["hospital"], [("good.xml", two_documents())], report_xlsx=True)
    assert report.mimetype == exports_xlsx()
    rows = list(load_workbook(io.BytesIO(report.data)).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("ファイル", "書類", "行", "結果") and [r[3] for r in rows[1:]] == ["更新（下書き）"] * 2


def test_the_screen_is_for_doctors_and_staff_at_their_institutions(app, client):
    from tests.helpers import login
    w = world()
    operator = gen_user("operator_admin")
    login(client, operator)
    assert client.get("/admin/document/import-xml/").status_code == 403
    assert 'id="import-xml-link"' not in client.get("/admin/document/").get_data(as_text=True)
    other = gen_institution(gen_municipality(TOKYO))
    staff = app.test_client()
    login(staff, w["staff"])
    response = upload(staff, other, [("good.xml", two_documents())])  # not one of the staff member's institutions
    assert response.status_code == 200 and "取込先の医療機関とファイルを選んでください" in response.get_data(as_text=True)
    assert count() == 0


def exports_xlsx():
    from nanbyo.exports import FORMATS
    return FORMATS["xlsx"][0]


def test_the_documents_of_a_file_are_looked_up_by_their_patients_not_by_reading_the_institutions(app):
    """The one query per file that finds documents already there (the re-upload rule) goes by the patients' index:
    reading every document of the institution instead grows with the institution, file after file."""
    from sqlalchemy import event
    w = world()
    import_uploads([("first.xml", two_documents())], w["doctor"], w["hospital"], today=DAY)
    statements = []

    def collect(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and \
                any(f"patient_index {among}" in statement for among in ("IN", "= ANY")):  # SQLite, PostgreSQL
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", collect)
    try:
        import_uploads([("again.xml", two_documents())], w["doctor"], w["hospital"], today=DAY)
    finally:
        event.remove(db.engine, "before_cursor_execute", collect)
    assert len(statements) == 1
    statement, parameters = statements[0]
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        plan = " ".join(str(row) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
        assert "ix_document_patient_index" in plan, plan
    else:
        plan = " ".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
    assert "ix_document_institution" not in plan, plan
    db.session.rollback()


def test_the_user_institution_and_author_are_read_once_not_again_after_every_group(app, monkeypatch):
    """Each commit expires the ORM objects; what the import needs of them for every document and group (ids, the
    institution's code, who the log entries name) is read once, so more groups make no more reads of them."""
    from sqlalchemy import event
    w = world()
    reads = []

    def collect(_conn, _cursor, statement, _parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and \
                any(f"FROM {table} " in statement + " " for table in ("user_account", "institution")):
            reads.append(statement)

    def files(names):
        return [(f"{name}.xml", five_patients().replace("ハナコ".encode(), name.encode())) for name in names]

    runs = {1000: ["ハナコ", "ジロウ", "サブロウ"], 1: ["シロウ", "ゴロウ", "ロクロウ"]}  # new patients each run
    counts = {}
    for group, names in runs.items():
        monkeypatch.setattr(importer, "GROUP", group)
        reads.clear()
        db.session.expire_all()  # each run starts as a job does: nothing of the user or institution read yet
        event.listen(db.engine, "before_cursor_execute", collect)
        try:
            outcomes = import_uploads(files(names), w["doctor"], w["hospital"], today=DAY)
        finally:
            event.remove(db.engine, "before_cursor_execute", collect)
        assert [o.result for o in outcomes] == [CREATED] * 15
        counts[group] = len(reads)
    assert counts[1] == counts[1000]  # 15 groups read them as often as one
    # Each sealed with the blind index the file's lookup worked out: the patient's, as the screens search it.
    assert {d.patient_index for d in db.session.execute(select(Document)).scalars()} == {
        keyring().blind_index(patient_search_value(f"ヤマダ{name}{'ア' * n}", date(2015, 4, 1)))
        for names in runs.values() for name in names for n in range(5)}
