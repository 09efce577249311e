"""Mass assignment: posted fields a user may not set are ignored or refused, never saved."""
import re

import pytest
from sqlalchemy import func, select

from models.accounts import User
from models.institutions import Institution
from nanbyo.extensions import db
from tests.helpers import (OSAKA, TOKYO, csrf_token, gen_institution, gen_municipality, gen_user,
                           login)

ROLE_REFUSED = "選択肢が正しくありません。"  # WTForms' "Not a valid choice", in Japanese


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    tokyo_inst = gen_institution(tokyo)
    doctor = gen_user("designated_doctor", issuer=tokyo, institution=tokyo_inst)
    return {"tokyo": tokyo, "osaka": osaka, "tokyo_inst": tokyo_inst, "doctor": doctor,
            "admin": gen_user("municipality_admin", municipality=tokyo)}


def post(client, path, data, token_page=None):
    data = dict(data, csrf_token=csrf_token(client, token_page or path))
    return client.post(path, data=data)


def fresh(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def snapshot(user):
    user = fresh(user)
    return {c: getattr(user, c) for c in ("login_id", "name", "name_kana", "email", "role", "status",
                                         "failed_logins", "password_hash", "must_change_password", "key_digest",
                                         "municipality_id", "issuing_municipality_id")}


def select_options(html, name):
    select_html = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select_html, f"no select {name}"
    return re.findall(r'<option[^>]*value="([^"]*)"', select_html.group(1))


def user_count():
    return db.session.execute(select(func.count()).select_from(User)).scalar()


# --- a municipality admin editing a doctor it issued ------------------------------------------------------------------

def doctor_form(doctor, **extra):
    return {"login_id": doctor.login_id, "name": doctor.name, "name_kana": doctor.name_kana, "email": doctor.email,
            "role": "designated_doctor", **extra}


def lock(user, failed=5):
    user.status, user.failed_logins = "locked", failed
    db.session.commit()


def test_edit_form_offers_only_the_roles_a_municipality_admin_may_give(client, world):
    login(client, world["admin"])
    page = client.get(f"/admin/user/edit/?id={world['doctor'].id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert sorted(select_options(html, "role")) == ["designated_doctor", "institution_staff", "municipality_user"]
    # The operator-only fields are not on the form at all.
    assert 'name="municipality"' not in html and 'name="issuing_municipality"' not in html


def test_municipality_admin_edit_ignores_fields_it_may_not_set(client, world):
    doctor, osaka = world["doctor"], world["osaka"]
    lock(doctor)
    before = snapshot(doctor)
    login(client, world["admin"])

    path = f"/admin/user/edit/?id={doctor.id}"
    r = post(client, path, doctor_form(doctor, name="改名 医師", municipality=osaka.id, issuing_municipality=osaka.id,
                                       municipality_id=osaka.id, issuing_municipality_id=osaka.id, status="active",
                                       failed_logins="0", password_hash="x", must_change_password="",
                                       key_digest="0" * 64))
    assert r.status_code == 302, r.get_data(as_text=True)

    after = snapshot(doctor)
    assert after["name"] == "改名 医師"  # the edit itself went through
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}
    assert after["issuing_municipality_id"] == world["tokyo"].id and after["municipality_id"] is None
    assert (after["status"], after["failed_logins"]) == ("locked", 5)


@pytest.mark.parametrize("role", ["operator_admin", "operator_user", "municipality_admin"])
def test_municipality_admin_cannot_promote_a_doctor(client, world, role):
    doctor = world["doctor"]
    before = snapshot(doctor)
    login(client, world["admin"])

    path = f"/admin/user/edit/?id={doctor.id}"
    r = post(client, path, doctor_form(doctor, role=role, name="昇格 試行", municipality=world["osaka"].id,
                                       issuing_municipality=world["osaka"].id, status="active", password_hash="x"))
    assert r.status_code == 200  # the form comes back with an error, nothing is saved
    assert ROLE_REFUSED in r.get_data(as_text=True)
    assert snapshot(doctor) == before


def test_municipality_admin_cannot_move_a_doctor_to_a_municipality_role_of_another_municipality(client, world):
    """municipality_user is offered, but the account then belongs to the admin's own 自治体, not the posted one."""
    doctor = gen_user("institution_staff", issuer=world["tokyo"], institution=world["tokyo_inst"])
    login(client, world["admin"])
    path = f"/admin/user/edit/?id={doctor.id}"
    r = post(client, path, doctor_form(doctor, role="municipality_user", municipality=world["osaka"].id))
    assert r.status_code == 302, r.get_data(as_text=True)
    after = fresh(doctor)
    assert after.role == "municipality_user" and after.municipality_id == world["tokyo"].id


# --- 自アカウント管理 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["designated_doctor", "municipality_user", "institution_staff"])
def test_own_profile_changes_only_name_kana_and_email(client, world, role):
    """A doctor's name and カナ are part of the 指定 (the issuing 自治体 changes them): a doctor changes the e-mail only."""
    tokyo, osaka = world["tokyo"], world["osaka"]
    user = gen_user(role, municipality=tokyo, issuer=tokyo,
                    institution=world["tokyo_inst"] if role != "municipality_user" else None)
    other = gen_user("operator_admin")
    before = snapshot(user)
    login(client, user)

    r = post(client, "/admin/account/profile",
             {"name": "新しい 名前", "name_kana": "アタラシイ ナマエ", "email": "new-address@example.jp",
              "role": "operator_admin", "municipality_id": osaka.id, "municipality": osaka.id,
              "issuing_municipality_id": osaka.id, "issuing_municipality": osaka.id, "login_id": other.login_id,
              "status": "disabled", "password_hash": "x", "key_digest": "0" * 64, "must_change_password": "1",
              "id": other.id},
             token_page="/admin/account/")
    assert r.status_code == 302, r.get_data(as_text=True)

    after = snapshot(user)
    changed = ("email",) if role == "designated_doctor" else ("name", "name_kana", "email")
    expected = {"name": "新しい 名前", "name_kana": "アタラシイ ナマエ", "email": "new-address@example.jp"}
    assert {k: after[k] for k in changed} == {k: expected[k] for k in changed}
    unchanged = {k for k in before if k not in changed}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert snapshot(other)["login_id"] == other.login_id and fresh(other).name == other.name


# --- a municipality admin creating an 医療機関 -------------------------------------------------------------------------

def institution_by_code(code):
    db.session.expire_all()
    return db.session.execute(select(Institution).filter_by(code=code)).scalar_one_or_none()


def test_municipality_admin_creates_institutions_under_its_own_municipality(client, world):
    login(client, world["admin"])
    r = post(client, "/admin/institution/new/",
             {"code": "2710000993", "name": "越境病院", "address": "大阪府", "municipality": world["osaka"].id,
              "municipality_id": world["osaka"].id})
    created = institution_by_code("2710000993")
    if r.status_code == 302:
        assert created is not None and created.municipality_id == world["tokyo"].id
    else:
        assert created is None
    assert db.session.execute(select(func.count()).select_from(Institution)
                              .filter_by(municipality_id=world["osaka"].id)).scalar() == 0


def test_municipality_admin_cannot_move_its_institution_to_another_municipality(client, world):
    inst = world["tokyo_inst"]
    login(client, world["admin"])
    path = f"/admin/institution/edit/?id={inst.id}"
    r = post(client, path, {"code": inst.code, "name": "改称病院", "address": inst.address,
                            "municipality": world["osaka"].id, "municipality_id": world["osaka"].id})
    assert r.status_code == 302, r.get_data(as_text=True)
    after = fresh(inst)
    assert after.name == "改称病院" and after.municipality_id == world["tokyo"].id


# --- a municipality admin creating accounts ----------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["municipality_admin", "operator_admin", "operator_user"])
def test_municipality_admin_cannot_create_privileged_accounts(client, world, role):
    login(client, world["admin"])
    count = user_count()
    r = post(client, "/admin/user/new/", {"login_id": "sneaky", "name": "不正 作成", "email": "sneaky@example.jp",
                                          "role": role, "municipality": world["osaka"].id})
    assert r.status_code == 200 and ROLE_REFUSED in r.get_data(as_text=True)
    assert user_count() == count
    assert db.session.execute(select(User).filter_by(login_id="sneaky")).scalar_one_or_none() is None


def test_municipality_admin_creates_a_municipality_user_of_its_own_municipality(client, world):
    """The allowed path works, and the posted foreign municipality and status are ignored."""
    login(client, world["admin"])
    r = post(client, "/admin/user/new/", {"login_id": "new-muni-user", "name": "新規 職員", "email": "n@example.jp",
                                          "role": "municipality_user", "municipality": world["osaka"].id,
                                          "issuing_municipality": world["osaka"].id, "status": "disabled",
                                          "must_change_password": "", "password_hash": "x"})
    assert r.status_code == 302, r.get_data(as_text=True)
    user = db.session.execute(select(User).filter_by(login_id="new-muni-user")).scalar_one()
    assert (user.role, user.municipality_id, user.issuing_municipality_id) == ("municipality_user",
                                                                              world["tokyo"].id, None)
    assert user.status == "active" and user.must_change_password and user.password_hash.startswith("$argon2")
