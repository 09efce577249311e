"""The 責任者's work, notices that reset passwords, and a doctor moving to another municipality."""
import pytest

from models.accounts import Membership, User
from nanbyo import auth, userfile
from nanbyo.extensions import db
from tests.helpers import (OSAKA, TOKYO, csrf_token, fresh, gen_institution, gen_municipality, gen_user, log_entries,
                           login)
from tests.userfile_helpers import csv_bytes, doctor_row

KNOWN = "Kn0wn-Initial-Pw"


@pytest.fixture
def known_password(monkeypatch):
    monkeypatch.setattr(auth, "generate_initial_password", lambda: KNOWN)
    return KNOWN


@pytest.fixture
def hospital(app):
    return gen_institution(gen_municipality(TOKYO), code="1310000017")


@pytest.fixture
def manager(hospital):
    return gen_user("designated_doctor", institution=hospital, manager=True)


def test_manager_registers_staff_and_prints_the_notice(client, app, hospital, manager, known_password):
    login(client, manager)
    token = csrf_token(client, "/admin/institution-users/")
    r = client.post(f"/admin/institution-users/{hospital.id}/staff",
                    data={"csrf_token": token, "name": "受付 花子", "name_kana": "ウケツケ ハナコ", "department": "医事課"})
    assert r.status_code == 302
    staff = db.session.execute(db.select(User).filter_by(name="受付 花子")).scalar_one()
    assert staff.role == "institution_staff" and staff.issuing_municipality == hospital.municipality
    assert staff.primary_membership.institution == hospital and staff.primary_membership.department == "医事課"
    assert log_entries("create")[-1].target_id == str(staff.id)
    # Before the notice nobody knows the password.
    assert login(app.test_client(), staff.login_id, password=KNOWN).status_code == 200
    r = client.post(f"/admin/institution-users/{hospital.id}/notice/{staff.id}", data={"csrf_token": token})
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    assert log_entries("notice_issue")[-1].target_id == str(staff.id)
    other = app.test_client()
    r = login(other, staff.login_id, password=KNOWN)
    assert r.status_code == 302 and r.headers["Location"].endswith("/first-login")


def test_reissued_notice_resets_the_password_and_unlocks(client, app, hospital, manager, known_password):
    doctor = gen_user("designated_doctor", institution=hospital)
    doctor.status, doctor.failed_logins = "locked", 5
    db.session.commit()
    login(client, manager)
    token = csrf_token(client, "/admin/institution-users/")
    client.post(f"/admin/institution-users/{hospital.id}/notice/{doctor.id}", data={"csrf_token": token})
    doctor = fresh(doctor)
    assert doctor.status == "active" and doctor.must_change_password
    assert not auth.verify_password(doctor.password_hash, "correct-horse-battery-9")
    assert auth.verify_password(doctor.password_hash, KNOWN)


def test_manager_cannot_attach_a_doctor_by_login_id(client, hospital, manager):
    """兼務先 are added by the doctor only: there is no 責任者 form that takes a login ID (and so none that answers
    whether an ID exists)."""
    elsewhere = gen_user("designated_doctor", institution=gen_institution(hospital.municipality))
    login(client, manager)
    token = csrf_token(client, "/admin/institution-users/")
    assert "兼務する指定医のログインID" not in client.get("/admin/institution-users/").get_data(as_text=True)
    for login_id in (elsewhere.login_id, "no-such-id"):
        r = client.post(f"/admin/institution-users/{hospital.id}/concurrent",
                        data={"csrf_token": token, "login_id": login_id, "department": "外来"})
        assert r.status_code in (404, 405)
    db.session.expire_all()
    assert [m.institution_id for m in fresh(elsewhere).memberships] != [] and all(
        m.institution_id != hospital.id for m in fresh(elsewhere).memberships)


def test_manager_removes_a_concurrent_membership(client, hospital, manager):
    """A doctor who added this institution as 兼務先 can be taken off it by its 責任者."""
    elsewhere = gen_user("designated_doctor", institution=gen_institution(hospital.municipality))
    db.session.add(Membership(user=elsewhere, institution=hospital, kind="concurrent"))
    db.session.commit()
    login(client, manager)
    token = csrf_token(client, "/admin/institution-users/")
    client.post(f"/admin/institution-users/{hospital.id}/concurrent/{elsewhere.id}/remove", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.execute(db.select(Membership).filter_by(user_id=elsewhere.id, institution_id=hospital.id)
                              ).scalar_one_or_none() is None
    assert log_entries("delete")[-1].data == {"by_manager": True}


def test_manager_cannot_remove_a_primary_membership(client, hospital, manager):
    doctor = gen_user("designated_doctor", institution=hospital)
    login(client, manager)
    client.post(f"/admin/institution-users/{hospital.id}/concurrent/{doctor.id}/remove",
                data={"csrf_token": csrf_token(client, "/admin/institution-users/")})
    assert fresh(doctor).primary_membership is not None


def test_manager_hands_the_flag_to_another_doctor(client, hospital, manager):
    successor = gen_user("designated_doctor", institution=hospital)
    staff = gen_user("institution_staff", institution=hospital)
    visiting = gen_user("designated_doctor", institution=gen_institution(hospital.municipality))
    db.session.add(Membership(user=visiting, institution=hospital, kind="concurrent"))
    db.session.commit()
    login(client, manager)
    token = csrf_token(client, "/admin/institution-users/")
    for refused_membership in (staff.memberships[0], fresh(visiting).memberships[1]):
        client.post(f"/admin/institution-users/{hospital.id}/manager",
                    data={"csrf_token": token, "membership_id": refused_membership.id})
    assert fresh(manager).is_manager and not fresh(staff).is_manager, "staff cannot be 責任者"
    assert not fresh(visiting).is_manager, "a 兼務 doctor cannot be 責任者 of the institution"
    client.post(f"/admin/institution-users/{hospital.id}/manager",
                data={"csrf_token": token, "membership_id": successor.memberships[0].id})
    assert fresh(successor).is_manager and not fresh(manager).is_manager
    assert log_entries("manager_transfer")[-1].data == {"from": manager.login_id, "to": successor.login_id}
    # The former 責任者 has lost the screen.
    assert client.get("/admin/institution-users/").status_code == 403


def test_user_list_notice_action_is_scoped(client, app, hospital, known_password):
    tokyo_admin = gen_user("municipality_admin", municipality=hospital.municipality)
    mine = gen_user("designated_doctor", institution=hospital)
    osaka = gen_municipality(OSAKA)
    theirs = gen_user("designated_doctor", institution=gen_institution(osaka), issuer=osaka)
    login(client, tokyo_admin)
    token = csrf_token(client, "/admin/user/")
    r = client.post("/admin/user/action/", data={"csrf_token": token, "action": "issue_notice",
                                                 "rowid": [mine.id, theirs.id]})
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    assert auth.verify_password(fresh(mine).password_hash, KNOWN)
    assert not auth.verify_password(fresh(theirs).password_hash, KNOWN)


def test_doctor_moves_to_another_municipality(client, app, hospital):
    """Delete in 東京都 (the issuer), re-issue in 大阪府; the old ID stays as history and no longer logs in."""
    tokyo = hospital.municipality
    osaka = gen_municipality(OSAKA)
    gen_institution(osaka, code="2710000019", name="大阪見本病院")
    old = gen_user("designated_doctor", institution=hospital, issuer=tokyo)
    old.designations[0].number = "27-N-0001"
    db.session.commit()
    rows = [doctor_row(1, 医療機関コード="2710000019", 医療機関名="大阪見本病院", 指定医番号="27-N-0001")]
    refused = userfile.plan(osaka, "u.csv", csv_bytes(rows))
    assert refused.rows[0].outcome == "other_issuer" and "東京都が削除してから再発行" in refused.rows[0].message
    osaka_admin = gen_user("municipality_admin", municipality=osaka)
    login(client, osaka_admin)
    client.post("/admin/user/delete/", data={"csrf_token": csrf_token(client, "/admin/user/"), "id": old.id})
    assert fresh(old).status == "active", "only the issuer deletes the ID"
    tokyo_admin = gen_user("municipality_admin", municipality=tokyo)
    tokyo_client = app.test_client()
    login(tokyo_client, tokyo_admin)
    tokyo_client.post("/admin/user/delete/", data={"csrf_token": csrf_token(tokyo_client, "/admin/user/"),
                                                   "id": old.id})
    old = fresh(old)
    assert old.status == "deleted" and old.deleted_at is not None and not old.memberships
    assert old.designations, "the old ID's record stays readable"
    assert log_entries("delete")[-1].target_id == str(old.id)
    assert login(app.test_client(), old).status_code == 200  # refused: stays on the login page
    result = userfile.plan(osaka, "u.csv", csv_bytes(rows))
    assert result.rows[0].outcome == "create"
    batch = userfile.execute(result, filename="u.csv", data=b"x")
    assert batch.users[0].id != old.id and batch.users[0].issuing_municipality == osaka
    # The old record is still visible to the municipality that could read it.
    assert tokyo_client.get(f"/admin/user/details/?id={old.id}").status_code == 200


def test_manager_cannot_be_deleted_before_handing_over(client, hospital, manager):
    admin = gen_user("municipality_admin", municipality=hospital.municipality)
    login(client, admin)
    client.post("/admin/user/delete/", data={"csrf_token": csrf_token(client, "/admin/user/"), "id": manager.id})
    assert fresh(manager).status == "active"


def test_operator_registers_municipality_admin_and_admin_registers_municipality_user(client, app):
    operator = gen_user("operator_admin")
    tokyo = gen_municipality(TOKYO)
    login(client, operator)
    r = client.post("/admin/user/new/", data={"csrf_token": csrf_token(client, "/admin/user/new/"),
                                             "login_id": "muni-new", "name": "新 管理者", "role": "municipality_admin",
                                             "municipality": tokyo.id})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    created = db.session.execute(db.select(User).filter_by(login_id="muni-new")).scalar_one()
    assert created.role == "municipality_admin" and created.municipality == tokyo and created.must_change_password
    assert log_entries("create")[-1].target_id == str(created.id)
