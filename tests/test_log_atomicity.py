"""Every effect and its log entry commit together; reads of patient data are logged before they are shown.

If the entry cannot be written, the change is rolled back and the user gets an error (here the exception itself:
the test app propagates it). Parallel requests on real workers: tests/test_parallel_requests.py.
"""
import pytest
from sqlalchemy import func, select

from models.accounts import User, UserSession
from models.audit import OperationLog
from models.documents import Document
from nanbyo import audit, database, documents
from nanbyo.extensions import db
from tests.helpers import (csrf_token, fresh, gen_document, gen_institution, gen_municipality, gen_patient,
                           gen_user, log_entries, login)


class LogDown(Exception):
    pass


@pytest.fixture
def log_down(monkeypatch):
    """From now on no entry can be written (a full disk, a lost connection, a broken chain lock)."""
    def refuse(connection, values):
        raise LogDown(values["action"])
    return lambda: monkeypatch.setattr(audit, "_append", refuse)


def log_count():
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(OperationLog)).scalar()


@pytest.fixture
def doctor(app):
    return gen_user("designated_doctor", institution=gen_institution(), designations=("nanbyo", "shoman"))


def test_a_change_whose_entry_cannot_be_written_is_rolled_back(app, client, doctor, log_down):
    login(client, doctor)
    token = csrf_token(client, "/admin/account/")
    log_down()
    with pytest.raises(LogDown):
        client.post("/admin/account/profile", data={"csrf_token": token, "name": "改ざん 太郎",
                                                    "name_kana": "カイザン タロウ", "email": "x@example.jp"})
    assert fresh(doctor).name != "改ざん 太郎"


def test_a_login_whose_entry_cannot_be_written_gives_no_session(app, client, doctor, log_down):
    log_down()
    with pytest.raises(LogDown):
        login(client, doctor)
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(UserSession)).scalar() == 0
    assert client.get("/admin/").status_code == 302


def test_a_failed_login_whose_entry_cannot_be_written_is_not_counted_either(app, client, doctor, log_down):
    log_down()
    with pytest.raises(LogDown):
        login(client, doctor, password="Wrong-Guess-Pw-4821")
    assert fresh(doctor).failed_logins == 0


def test_a_finalize_whose_entry_cannot_be_written_stays_a_draft(app, client, doctor, log_down):
    doc = gen_document(doctor)
    login(client, doctor)
    token = csrf_token(client, f"/admin/document/details/?id={doc.id}")
    log_down()
    with pytest.raises(LogDown):
        client.post(f"/admin/document/finalize/?id={doc.id}", data={"csrf_token": token})
    db.session.expire_all()
    doc = db.session.get(Document, doc.id)
    assert doc.status == "draft" and doc.access_key is None


def test_a_change_outside_a_unit_of_work_is_refused_inside_a_request(app):
    """The guard that finds any write path missing its lock: a flush inside a request without begin_write()."""
    user = gen_user("operator_admin")
    with app.test_request_context("/"):
        user = db.session.get(User, user.id)
        user.name = "無断 変更"
        with pytest.raises(database.UnitOfWorkError):
            db.session.flush()
        db.session.rollback()
        database.begin_write()
        user.name = "正規 変更"
        audit.record("update", target=user, actor=user)
    assert fresh(user).name == "正規 変更"
    assert log_entries("update")[-1].target_id == str(user.id)


# --- reads of patient data ---------------------------------------------------------------------------------------

def test_list_page_with_patient_names_is_logged_with_the_rows_shown(app, client, doctor):
    docs = [gen_document(doctor, patient=gen_patient(given_name=f"閲覧{i}")) for i in range(3)]
    login(client, doctor)
    page = client.get("/admin/document/").get_data(as_text=True)
    assert "閲覧0" in page
    entry = log_entries("document_list")[-1]
    assert entry.actor_id == doctor.id and sorted(entry.data["ids"]) == sorted(d.id for d in docs)
    assert "閲覧" not in str(entry.data), "the log names rows, never patient data"


def test_list_is_not_shown_when_its_read_cannot_be_logged(app, client, doctor, log_down):
    gen_document(doctor, patient=gen_patient(given_name="非表示"))
    login(client, doctor)
    log_down()
    with pytest.raises(LogDown):
        client.get("/admin/document/")


def test_doctors_edit_form_is_logged(app, client, doctor):
    doc = gen_document(doctor)
    login(client, doctor)
    assert client.get(f"/admin/document/edit/?id={doc.id}").status_code == 200
    entry = log_entries("document_view")[-1]
    assert entry.target_id == str(doc.id) and entry.data == {"screen": "edit"}


def test_municipality_correction_form_is_logged(app, client, doctor):
    clerk = gen_user("municipality_user", municipality=gen_municipality())
    doc = gen_document(doctor, status="received")
    login(client, clerk)
    assert client.get(f"/admin/document/correct/?id={doc.id}").status_code == 200
    entry = log_entries("document_view")[-1]
    assert entry.target_id == str(doc.id) and entry.data == {"screen": "correct"} and entry.actor_id == clerk.id


def test_patient_search_logs_the_documents_found(app, client, doctor):
    patient = gen_patient()
    doc = gen_document(doctor, patient=patient)
    login(client, doctor)
    r = client.get("/admin/document/patient-search/", query_string={
        "kana": patient["family_kana"] + patient["given_kana"], "birth_date": patient["birth_date"]})
    assert r.status_code == 200 and documents.patient_name(patient) in r.get_data(as_text=True)
    assert log_entries("patient_search")[-1].data == {"found": 1, "ids": [doc.id]}


def test_a_refused_request_is_logged_once_on_its_own(app, client, doctor):
    before = log_count()
    login(client, doctor)
    assert client.get("/admin/operation_log/").status_code == 403
    assert log_entries("access_denied")[-1].actor_id == doctor.id
    assert log_count() == before + 2  # the login and the refusal
