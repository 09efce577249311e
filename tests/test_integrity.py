"""Referential integrity on both databases: foreign keys enforced; referenced rows are not deleted but disabled."""
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError

from models.accounts import Membership, User
from models.documents import Document
from models.institutions import Institution, Municipality
from nanbyo.extensions import db
from tests.helpers import (OSAKA, fresh, gen_document, gen_institution, gen_municipality, gen_user,
                           log_entries, login, post_form)


def flashed(response_or_client, path="/admin/"):
    return response_or_client.get(path).get_data(as_text=True)


def count(model):
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar()


@pytest.fixture
def busy_institution(app):
    """An institution with documents (as acceptance found: 11) and memberships (3)."""
    institution = gen_institution()
    doctor = gen_user("designated_doctor", institution=institution)
    gen_user("designated_doctor", institution=institution)
    gen_user("institution_staff", institution=institution)
    for _ in range(11):
        gen_document(doctor)
    return institution


def test_foreign_keys_are_enforced_on_every_connection(app, busy_institution):
    if db.engine.dialect.name == "sqlite":
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with db.engine.connect() as other:
            assert other.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with pytest.raises(IntegrityError):
        db.session.execute(delete(Institution).where(Institution.id == busy_institution.id))
        db.session.flush()
    db.session.rollback()
    with pytest.raises(IntegrityError):
        db.session.execute(text("INSERT INTO membership (user_id, institution_id, kind, is_manager, department) "
                                "VALUES (999999, 999999, 'primary', false, '')"))
    db.session.rollback()


def test_municipality_admin_cannot_delete_an_institution_in_use(app, client, busy_institution):
    admin = gen_user("municipality_admin", municipality=busy_institution.municipality)
    login(client, admin)
    before = (count(Institution), count(Document), count(Membership))
    r = post_form(client, "/admin/institution/delete/", {"id": busy_institution.id})
    assert r.status_code == 302
    page = flashed(client, "/admin/institution/")
    assert "この医療機関は書類 11件、医療機関への所属 3件から参照されているため削除できません。" in page
    assert "無効" in page
    assert (count(Institution), count(Document), count(Membership)) == before
    assert not [e for e in log_entries("delete") if e.target_type == "institution"]
    # The mass delete action refuses it the same way.
    post_form(client, "/admin/institution/action/", {"action": "delete", "rowid": busy_institution.id})
    assert count(Institution) == before[0]
    # The lists that broke after such a delete still answer.
    operator = gen_user("operator_admin")
    browser = app.test_client()
    login(browser, operator)
    assert browser.get("/admin/document/").status_code == 200


def test_institution_is_disabled_instead(app, client, busy_institution):
    admin = gen_user("municipality_admin", municipality=busy_institution.municipality)
    login(client, admin)
    edit = f"/admin/institution/edit/?id={busy_institution.id}"
    r = post_form(client, edit, {"code": busy_institution.code, "name": busy_institution.name,
                                 "address": busy_institution.address}, token_page=edit)  # "active" unchecked
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(Institution, busy_institution.id).active is False
    assert log_entries("update")[-1].data == {"fields": ["active"]}
    # A disabled institution gets no new 兼務 and no new documents.
    doctor = gen_user("designated_doctor", institution=gen_institution(busy_institution.municipality))
    browser = app.test_client()
    login(browser, doctor)
    r = post_form(browser, "/admin/account/concurrent", {"institution_code": busy_institution.code})
    assert r.status_code == 400 and "無効（廃止）" in r.get_data(as_text=True)
    member = db.session.execute(select(User).join(Membership).where(
        Membership.institution_id == busy_institution.id, User.role == "designated_doctor")).scalars().first()
    from nanbyo import documents, userfile
    assert any("無効（廃止）" in p for p in documents.authoring_problems(
        member, "nanbyo", "new", member, db.session.get(Institution, busy_institution.id)))
    # Nor doctors' IDs from a user data file.
    from tests.userfile_helpers import csv_bytes, doctor_row
    row = doctor_row(1, 医療機関コード=busy_institution.code, 医療機関名=busy_institution.name)
    result = userfile.plan(busy_institution.municipality, "u.csv", csv_bytes([row]))
    assert not result.ok and "無効（廃止）" in str(result.problems[0])


def test_unreferenced_institution_is_deleted(app, client):
    institution = gen_institution()
    admin = gen_user("municipality_admin", municipality=institution.municipality)
    login(client, admin)
    institution_id = institution.id
    post_form(client, "/admin/institution/delete/", {"id": institution_id})
    db.session.expire_all()
    assert db.session.get(Institution, institution_id) is None
    assert log_entries("delete")[-1].target_id == str(institution_id)


def test_referenced_municipality_is_not_deleted(app, client):
    osaka = gen_municipality(OSAKA)
    gen_institution(osaka)
    login(client, gen_user("operator_admin"))
    post_form(client, "/admin/municipality/delete/", {"id": osaka.id})
    db.session.expire_all()
    assert db.session.get(Municipality, osaka.id) is not None
    assert "この自治体は医療機関 1件から参照されているため削除できません。" in flashed(client, "/admin/municipality/")


def test_municipality_user_who_received_documents_is_disabled_not_deleted(app, client):
    clerk = gen_user("municipality_user")
    doctor = gen_user("designated_doctor", institution=gen_institution())
    document = gen_document(doctor, status="received")
    document.received_by_id = clerk.id
    db.session.commit()
    login(client, gen_user("operator_admin"))
    post_form(client, "/admin/user/delete/", {"id": clerk.id})
    assert fresh(clerk) is not None and fresh(clerk).status == "active"
    assert "このユーザは書類 1件から参照されているため削除できません。使わなくなったアカウントは「無効化」してください。" in \
        flashed(client, "/admin/user/")
    post_form(client, "/admin/user/action/", {"action": "disable", "rowid": clerk.id})
    assert fresh(clerk).status == "disabled"


def test_unreferenced_municipality_user_is_deleted(app, client):
    clerk = gen_user("municipality_user")
    clerk_id = clerk.id
    login(client, gen_user("operator_admin"))
    post_form(client, "/admin/user/delete/", {"id": clerk_id})
    db.session.expire_all()
    assert db.session.get(User, clerk_id) is None


def test_a_delete_that_fails_in_the_database_changes_nothing_and_logs_nothing(app, client, monkeypatch):
    """Whatever the checks miss, the database refuses, and the log entry goes with the rolled-back delete."""
    from nanbyo import integrity
    institution = gen_institution()
    gen_user("designated_doctor", institution=institution)
    monkeypatch.setattr(integrity, "delete_problem", lambda obj: None)
    admin = gen_user("municipality_admin", municipality=institution.municipality)
    login(client, admin)
    post_form(client, "/admin/institution/delete/", {"id": institution.id})
    db.session.expire_all()
    assert db.session.get(Institution, institution.id) is not None
    assert count(Membership) == 1
    assert not [e for e in log_entries("delete") if e.target_type == "institution"]


def test_a_municipality_with_scans_is_not_deleted(app, client):
    from tests.helpers import gen_scan
    osaka = gen_municipality(OSAKA)
    gen_scan(gen_user("municipality_user", municipality=osaka))
    login(client, gen_user("operator_admin"))
    post_form(client, "/admin/municipality/delete/", {"id": osaka.id})
    db.session.expire_all()
    assert db.session.get(Municipality, osaka.id) is not None
    assert "スキャンファイル 1件" in flashed(client, "/admin/municipality/")
