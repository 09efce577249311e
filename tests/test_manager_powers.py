"""The 責任者's powers over accounts, asked "on whom?": only users whose 主たる勤務先 the 責任者 manages.

The attack that acceptance reproduced: a 責任者 attached another 自治体's doctor as 兼務, reset the doctor's password by
notice, revoked the doctor's key file, logged in with the password alone, registered their own key file and read
the doctor's patients. Every step is tried here, through both the 医療機関ユーザ管理 screen and the user list.
"""
import pytest

from models.accounts import Membership, User
from nanbyo import auth
from nanbyo.extensions import db
from tests.helpers import (OSAKA, PASSWORD, TOKYO, csrf_token, fresh, gen_document, gen_institution,
                           gen_municipality, gen_user, log_entries, login, post_form)

KNOWN = "Kn0wn-Initial-Pw"


@pytest.fixture
def known_password(monkeypatch):
    monkeypatch.setattr(auth, "generate_initial_password", lambda: KNOWN)


@pytest.fixture
def issued_codes(monkeypatch):
    """Every key registration code issued, as printed on its notice."""
    codes = []
    real = auth.new_key_code

    def recording():
        code, code_hash = real()
        codes.append(code)
        return code, code_hash

    monkeypatch.setattr(auth, "new_key_code", recording)
    return codes


@pytest.fixture
def tokyo_hospital(app):
    return gen_institution(gen_municipality(TOKYO), code="1310000017", name="東京見本病院")


@pytest.fixture
def manager(tokyo_hospital):
    return gen_user("designated_doctor", "manager", institution=tokyo_hospital, manager=True)


@pytest.fixture
def doctor_osaka(app):
    osaka = gen_municipality(OSAKA)
    return gen_user("designated_doctor", "doctor-osaka", institution=gen_institution(osaka, code="2710000019"),
                    issuer=osaka, manager=True)


def snapshot(user):
    user = fresh(user)
    return (user.password_hash, user.key_digest, user.key_code_hash, user.status, user.must_change_password)


def manager_tries_everything(client, hospital, target):
    """Every power a 責任者 has over an account, against `target`, through every URL that offers it."""
    token = csrf_token(client, "/admin/institution-users/")
    client.post(f"/admin/institution-users/{hospital.id}/concurrent",
                data={"csrf_token": token, "login_id": target.login_id})
    responses = [client.post(f"/admin/institution-users/{hospital.id}/{power}/{target.id}",
                             data={"csrf_token": token}) for power in ("notice", "key", "unlock")]
    for action in ("issue_notice", "key_reset", "unlock"):
        responses.append(client.post("/admin/user/action/", data={"csrf_token": token, "action": action,
                                                                   "rowid": target.id}))
    return responses


def test_the_takeover_chain_ends_with_the_manager_holding_nothing(app, client, tokyo_hospital, manager,
                                                                  doctor_osaka, known_password, issued_codes):
    osaka_document = gen_document(doctor_osaka, status="finalized")
    assert login(client, manager).status_code == 302
    before = snapshot(doctor_osaka)
    responses = manager_tries_everything(client, tokyo_hospital, doctor_osaka)
    assert not any(r.data.startswith(b"%PDF") for r in responses), "no notice PDF for someone else's doctor"
    assert snapshot(doctor_osaka) == before
    assert issued_codes == []
    assert db.session.execute(db.select(Membership).filter_by(user_id=doctor_osaka.id,
                                                              institution_id=tokyo_hospital.id)).first() is None
    for action in ("notice_issue", "key_reset", "unlock"):
        assert not log_entries(action)
    # Nothing the manager could have learnt opens the account, and the real doctor still logs in.
    for password in (KNOWN, PASSWORD):
        assert login(app.test_client(), doctor_osaka.login_id, password=password).status_code == 200
    assert login(app.test_client(), doctor_osaka).status_code == 302
    assert client.get(f"/admin/document/details/?id={osaka_document.id}").status_code == 404


def test_a_doctor_who_added_the_institution_as_concurrent_is_still_out_of_reach(
        app, client, tokyo_hospital, manager, doctor_osaka, known_password, issued_codes):
    """The doctor's own 兼務先 entry gives that institution's 責任者 no power over the doctor's account."""
    db.session.add(Membership(user=doctor_osaka, institution=tokyo_hospital, kind="concurrent"))
    db.session.commit()
    login(client, manager)
    page = client.get("/admin/institution-users/").get_data(as_text=True)
    assert doctor_osaka.login_id in page
    assert f"/notice/{doctor_osaka.id}" not in page and f"/key/{doctor_osaka.id}" not in page
    before = snapshot(doctor_osaka)
    responses = manager_tries_everything(client, tokyo_hospital, doctor_osaka)
    assert not any(r.data.startswith(b"%PDF") for r in responses)
    assert snapshot(doctor_osaka) == before and issued_codes == []


@pytest.mark.parametrize("role", ["designated_doctor", "institution_staff"])
def test_manager_supports_the_accounts_of_the_institution(app, client, tokyo_hospital, manager, role,
                                                          known_password, issued_codes):
    member = gen_user(role, institution=tokyo_hospital)
    member.status, member.failed_logins = "locked", 5
    db.session.commit()
    login(client, manager)
    token = csrf_token(client, "/admin/institution-users/")
    r = client.post(f"/admin/institution-users/{tokyo_hospital.id}/unlock/{member.id}", data={"csrf_token": token})
    assert r.status_code == 302 and fresh(member).status == "active"
    r = client.post(f"/admin/institution-users/{tokyo_hospital.id}/notice/{member.id}", data={"csrf_token": token})
    assert r.data.startswith(b"%PDF") and auth.verify_password(fresh(member).password_hash, KNOWN)
    r = client.post(f"/admin/institution-users/{tokyo_hospital.id}/key/{member.id}", data={"csrf_token": token})
    assert r.data.startswith(b"%PDF") and len(issued_codes) == 1
    assert fresh(member).key_digest is None and fresh(member).key_code_hash
    assert [e.actor_id for e in log_entries("key_reset")] == [manager.id]


@pytest.mark.parametrize("status", ["disabled", "deleted"])
def test_no_helper_revives_a_disabled_or_deleted_account(app, client, tokyo_hospital, manager, status,
                                                         known_password, issued_codes):
    member = gen_user("designated_doctor", institution=tokyo_hospital)
    member.status = status
    db.session.commit()
    helpers = {"manager": manager, "issuer": gen_user("municipality_admin", municipality=tokyo_hospital.municipality),
               "operator": gen_user("operator_admin")}
    before = snapshot(member)
    for name, helper in helpers.items():
        browser = app.test_client()
        login(browser, helper)
        for action in ("unlock", "issue_notice", "key_reset"):
            r = post_form(browser, "/admin/user/action/", {"action": action, "rowid": member.id})
            assert not r.data.startswith(b"%PDF"), f"{name} {action}"
        if name == "manager":
            token = csrf_token(browser, "/admin/institution-users/")
            for power in ("notice", "key", "unlock"):
                browser.post(f"/admin/institution-users/{tokyo_hospital.id}/{power}/{member.id}",
                             data={"csrf_token": token})
        assert snapshot(member) == before, f"{name} changed a {status} account"
    assert login(app.test_client(), member).status_code == 200


def test_unlock_clears_a_lockout_and_nothing_else(app, client, tokyo_hospital):
    """Only the issuer's 有効化 turns a disabled account back on; its ロック解除 does not either."""
    member = gen_user("designated_doctor", institution=tokyo_hospital)
    member.status = "disabled"
    db.session.commit()
    issuer = gen_user("municipality_admin", municipality=tokyo_hospital.municipality)
    login(client, issuer)
    post_form(client, "/admin/user/action/", {"action": "unlock", "rowid": member.id})
    assert fresh(member).status == "disabled"
    post_form(client, "/admin/user/action/", {"action": "enable", "rowid": member.id})
    assert fresh(member).status == "active"
    assert login(app.test_client(), member).status_code == 302


def test_manager_has_no_support_power_over_themselves(app, client, tokyo_hospital, manager, issued_codes):
    """Their own password and key are changed in 自アカウント管理, with the current password."""
    login(client, manager)
    before = snapshot(manager)
    token = csrf_token(client, "/admin/institution-users/")
    for power in ("notice", "key", "unlock"):
        client.post(f"/admin/institution-users/{tokyo_hospital.id}/{power}/{manager.id}", data={"csrf_token": token})
    for action in ("issue_notice", "key_reset"):
        client.post("/admin/user/action/", data={"csrf_token": token, "action": action, "rowid": manager.id})
    assert snapshot(manager) == before and issued_codes == []


def test_issuer_supports_a_doctor_at_any_institution_of_its_own(app, client, doctor_osaka, issued_codes):
    """The issuing 自治体 re-issues the key of its doctor; another 自治体's admin cannot."""
    tokyo_admin = gen_user("municipality_admin", municipality=gen_municipality(TOKYO))
    login(client, tokyo_admin)
    post_form(client, "/admin/user/action/", {"action": "key_reset", "rowid": doctor_osaka.id})
    assert fresh(doctor_osaka).key_digest is not None and issued_codes == []
    osaka_admin = gen_user("municipality_admin", municipality=gen_municipality(OSAKA))
    browser = app.test_client()
    login(browser, osaka_admin)
    r = post_form(browser, "/admin/user/action/", {"action": "key_reset", "rowid": doctor_osaka.id})
    assert r.data.startswith(b"%PDF") and len(issued_codes) == 1
    assert fresh(doctor_osaka).key_digest is None
    assert db.session.get(User, doctor_osaka.id).key_code_expires_at is not None
