"""Login, two factors, lockout and unlock, first-login setup, CSRF, security headers and the post-login redirect.

Everything goes through the real forms and admin actions (CSRF tokens, multipart key file uploads); the database is
read back after each request to see what really changed. Session handling (logout, idle timeout, disabling, key
reissue) is in test_sessions.py.
"""
import re
from io import BytesIO

import pytest
from sqlalchemy import create_engine, select, update

from app import create_app
from models.accounts import Membership, User, UserSession
from models.audit import OperationLog
from nanbyo import auth
from nanbyo.extensions import db
from tests.conftest import BASE_CONFIG
from tests.helpers import (fresh, log_entries, OSAKA, PASSWORD, csrf_token, gen_institution, gen_municipality, gen_user, login,
                           logout, post_form)

WRONG_PASSWORD = "Wrong-Guess-Pw-4821"
# What the owner of a locked doctor's account issued by 東京都 is told (right password and key file).
LOCKED_DOCTOR_MESSAGE = ("このアカウントはロックされています（連続してログインに失敗したため）。"
                         "医療機関の責任者または発行元の自治体（東京都）に解除を依頼してください。")


# --- small helpers ---------------------------------------------------------------------------------------------



def row_text(entry):
    """Every column of an operation log row as one string."""
    return " ".join(str(getattr(entry, c.key)) for c in OperationLog.__table__.columns)


def body(response):
    return response.get_data(as_text=True)


def alerts(response):
    return re.findall(r'<div class="alert[^"]*" role="alert">(.*?)</div>', body(response), re.S)


def is_login_redirect(response):
    return response.status_code == 302 and response.headers["Location"].split("?")[0].endswith("/login")


def logged_in(client):
    return client.get("/admin/").status_code == 200


def admin_action(client, action, *users, view="user"):
    return post_form(client, f"/admin/{view}/action/", {"action": action, "rowid": [str(u.id) for u in users]})


def lock_out(user, app):
    """Five wrong passwords from another browser, through the real login form."""
    browser = app.test_client()
    for _ in range(app.config["NANBYO_LOCKOUT_THRESHOLD"]):
        response = login(browser, user, password=WRONG_PASSWORD)
        assert response.status_code == 200
    assert fresh(user).status == "locked"


def other_key_file(user):
    """A well-formed key file for `user` that is not the registered one (the registered digest is kept)."""
    digest, issued = user.key_digest, user.key_issued_at
    content = auth.issue_key_file(user)
    user.key_digest, user.key_issued_at = digest, issued
    db.session.commit()
    return content


# --- 1. login: password plus the registered key file ------------------------------------------------------------

def test_login_with_id_password_and_key_file(client):
    user = gen_user("designated_doctor", institution=gen_institution())
    response = login(client, user)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert logged_in(client)
    assert fresh(user).last_login_at is not None
    assert [e.target_id for e in log_entries("login")] == [str(user.id)]


@pytest.mark.parametrize("case", ["no_key_file", "wrong_key_file", "key_file_of_another_user", "garbage_file",
                                  "empty_file"])
def test_login_refused_without_the_registered_key_file(app, client, case):
    user = gen_user("designated_doctor", institution=gen_institution())
    other = gen_user("designated_doctor", institution=gen_institution())
    key = {
        "no_key_file": None,
        "wrong_key_file": other_key_file(user),
        "key_file_of_another_user": other.key_file,
        "garbage_file": b"NANBYO-KEYFILE-1\nlogin_id: x\nkey: !!!\n",
        "empty_file": b"",
    }[case]
    if key is None:
        response = login(client, user.login_id)  # the helper sends the user's own file otherwise
    else:
        response = login(client, user, key_file=key)
    assert response.status_code == 200
    assert auth.LOGIN_FAILED_MESSAGE in body(response)
    assert not logged_in(client)
    assert fresh(user).failed_logins == 1
    assert db.session.execute(select(UserSession).filter_by(user_id=user.id)).first() is None
    # And the right file still works: the refusal was about the file, not the account.
    assert login(client, user).status_code == 302


def test_key_file_of_another_user_with_their_login_id_inside_is_refused(client):
    """The file names its owner: another user's valid file does not become valid by renaming the upload."""
    user = gen_user("institution_staff", institution=gen_institution())
    other = gen_user("institution_staff", institution=gen_institution(), password=PASSWORD)
    data = {"login_id": user.login_id, "password": PASSWORD, "csrf_token": csrf_token(client),
            "key_file": (BytesIO(other.key_file), f"{user.login_id}.key")}
    response = client.post("/login", data=data, content_type="multipart/form-data")
    assert response.status_code == 200 and not logged_in(client)


def test_same_answer_for_unknown_id_wrong_password_and_wrong_key(client):
    user = gen_user("municipality_user")
    responses = {
        "unknown_login_id": login(client, "no-such-user", password=PASSWORD, key_file=user.key_file),
        "bad_password": login(client, user, password=WRONG_PASSWORD),
        "bad_key_file": login(client, user, key_file=other_key_file(user)),
    }
    for reason, response in responses.items():
        assert response.status_code == 200, reason
        assert alerts(response) == [auth.LOGIN_FAILED_MESSAGE], reason
        # Nothing in the page names the account as existing or the factor that was wrong.
        page = body(response)
        assert "存在しません" not in page and "鍵ファイルが違" not in page
    assert not logged_in(client)
    # Only the operation log knows why.
    assert [e.data["reason"] for e in log_entries("login_failed")] == list(responses)


def test_failed_logins_are_logged_without_the_password(client):
    user = gen_user("designated_doctor", institution=gen_institution())
    secret_key_line = next(line for line in user.key_file.decode().splitlines() if line.startswith("key: "))
    login(client, "ghost-user", password="Ghost-Password-77")
    login(client, user, password=WRONG_PASSWORD)
    login(client, user, key_file=other_key_file(user))  # right password, wrong key
    entries = log_entries("login_failed")
    assert len(entries) == 3
    assert all(e.result == "failure" for e in entries)
    assert entries[0].actor_id is None and entries[0].data["login_id"] == "ghost-user"
    assert [e.target_id for e in entries[1:]] == [str(user.id)] * 2
    for entry in entries:
        text = row_text(entry)
        for secret in ("Ghost-Password-77", WRONG_PASSWORD, PASSWORD, secret_key_line[5:]):
            assert secret not in text
        assert "password" not in entry.data
    assert not log_entries("login")


def test_login_rejects_disabled_account(client):
    user = gen_user("municipality_user")
    user.status = "disabled"
    db.session.commit()
    # Its owner (both factors right) is told the account is disabled, and whom to ask.
    response = login(client, user)
    assert response.status_code == 200
    assert alerts(response) == ["このアカウントは無効になっています。所属する自治体（東京都）の管理者に問い合わせてください。"]
    assert not logged_in(client)
    # Anyone else learns nothing about the account.
    response = login(client, user, password=WRONG_PASSWORD)
    assert response.status_code == 200 and alerts(response) == [auth.LOGIN_FAILED_MESSAGE]
    assert not logged_in(client)
    assert fresh(user).failed_logins == 0


# --- 1b. a locked or disabled account is told so, but only to whoever has both factors -------------------------

def _set_status(user, status):
    user.status = status
    db.session.commit()


STATE_CASES = {
    # case: (status, how to log in, expected message (None: LOGIN_FAILED_MESSAGE))
    "locked_right_factors": ("locked", {}, LOCKED_DOCTOR_MESSAGE),
    "locked_wrong_password": ("locked", {"password": WRONG_PASSWORD}, None),
    "locked_wrong_key_file": ("locked", {"key_file": "other"}, None),
    "locked_no_key_file": ("locked", {"key_file": b""}, None),
    "disabled_right_factors": ("disabled", {},
                               "このアカウントは無効になっています。発行元の自治体（東京都）に問い合わせてください。"),
    "disabled_wrong_password": ("disabled", {"password": WRONG_PASSWORD}, None),
    "disabled_wrong_key_file": ("disabled", {"key_file": "other"}, None),
    "deleted_right_factors": ("deleted", {}, None),
    "deleted_wrong_password": ("deleted", {"password": WRONG_PASSWORD}, None),
}


@pytest.mark.parametrize("case", list(STATE_CASES))
def test_account_state_is_told_only_with_both_factors(client, case):
    status, how, expected = STATE_CASES[case]
    user = gen_user("designated_doctor", institution=gen_institution())
    if how.get("key_file") == "other":
        how = how | {"key_file": other_key_file(user)}
    _set_status(user, status)
    response = login(client, user, **how)
    assert response.status_code == 200
    assert alerts(response) == [expected or auth.LOGIN_FAILED_MESSAGE]
    assert not logged_in(client)
    assert db.session.execute(select(UserSession).filter_by(user_id=user.id)).first() is None
    assert fresh(user).status == status and fresh(user).failed_logins == 0  # nothing counted, nothing changed
    entry = log_entries("login_failed")[-1]
    assert entry.data["reason"] == status and entry.target_id == str(user.id)
    assert entry.data.get("told", False) is (expected is not None)
    assert not log_entries("login")


def test_locked_answer_is_the_wrong_password_answer(client):
    """Nothing in the page tells a guesser that the account is locked: byte for byte the answer of a wrong guess at
    an active account (apart from the CSRF token)."""
    locked = gen_user("designated_doctor", institution=gen_institution())
    active = gen_user("designated_doctor", institution=gen_institution())
    _set_status(locked, "locked")
    strip = lambda r: re.sub(r'value="[^"]+"', "", re.sub(r'name="login_id"[^>]*', "", body(r)))  # noqa: E731
    assert strip(login(client, locked, password=WRONG_PASSWORD)) == strip(login(client, active,
                                                                                 password=WRONG_PASSWORD))


def test_locked_first_login_account_is_told_with_the_initial_password(client):
    user = gen_user("designated_doctor", institution=gen_institution(), setup_done=False)
    _set_status(user, "locked")
    response = login(client, user.login_id)
    assert alerts(response) == [LOCKED_DOCTOR_MESSAGE]
    assert alerts(login(client, user.login_id, password=WRONG_PASSWORD)) == [auth.LOGIN_FAILED_MESSAGE]
    assert not logged_in(client)


@pytest.mark.parametrize("role, whom", [
    ("municipality_user", "所属する自治体（東京都）の管理者に解除を依頼してください。"),
    ("municipality_admin", "システム運営主体に解除を依頼してください。"),
    ("operator_admin", "システム運営主体の管理者に解除を依頼してください。"),
    ("institution_staff", "医療機関の責任者または発行元の自治体（東京都）に解除を依頼してください。"),
])
def test_lock_message_names_whom_to_ask(client, role, whom):
    user = gen_user(role, institution=gen_institution() if role == "institution_staff" else None)
    _set_status(user, "locked")
    assert alerts(login(client, user)) == ["このアカウントはロックされています（連続してログインに失敗したため）。" + whom]
    assert not logged_in(client)


# --- 2. lockout and unlock --------------------------------------------------------------------------------------

def test_four_failures_then_success_reset_the_counter(client):
    user = gen_user("designated_doctor", institution=gen_institution())
    for n in range(1, 5):
        login(client, user, password=WRONG_PASSWORD)
        assert fresh(user).failed_logins == n
    assert fresh(user).status == "active"
    assert login(client, user).status_code == 302
    assert fresh(user).failed_logins == 0
    logout(client)
    # Four more failures are again not enough: the count started over.
    for _ in range(4):
        login(client, user, password=WRONG_PASSWORD)
    assert fresh(user).status == "active"
    assert login(client, user).status_code == 302


def test_fifth_consecutive_failure_locks_the_account(client):
    user = gen_user("designated_doctor", institution=gen_institution())
    for _ in range(4):
        login(client, user, password=WRONG_PASSWORD)
    assert fresh(user).status == "active"
    assert not log_entries("lockout")
    # Failures of either factor count: the fifth is a wrong key file with the right password.
    response = login(client, user, key_file=other_key_file(user))
    assert alerts(response) == [auth.LOGIN_FAILED_MESSAGE]
    assert fresh(user).status == "locked"
    assert fresh(user).failed_logins == 5
    lockouts = log_entries("lockout")
    assert len(lockouts) == 1 and lockouts[0].target_id == str(user.id)
    # Locked: the right password and key file no longer log in; their owner is told so, and whom to ask.
    response = login(client, user)
    assert response.status_code == 200 and alerts(response) == [LOCKED_DOCTOR_MESSAGE]
    assert not logged_in(client)
    assert fresh(user).status == "locked"
    assert log_entries("login_failed")[-1].data["reason"] == "locked"
    assert len(log_entries("lockout")) == 1
    # A wrong guess at a locked account gets the answer any wrong guess gets.
    response = login(client, user, password=WRONG_PASSWORD)
    assert response.status_code == 200 and alerts(response) == [auth.LOGIN_FAILED_MESSAGE]
    assert fresh(user).failed_logins == 5


def test_lockout_ends_live_sessions(app, client):
    user = gen_user("designated_doctor", institution=gen_institution())
    assert login(client, user).status_code == 302 and logged_in(client)
    lock_out(user, app)
    assert is_login_redirect(client.get("/admin/"))


def _run_with_concurrent_change(monkeypatch, app, change):
    """Make `change` (SQL from another connection) happen while the login request checks the password, the way a
    second login request for the same account would land between this one's read and its write."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    real_verify = auth.verify_password
    calls = []

    def verify(password_hash, password):
        result = real_verify(password_hash, password)
        if not calls:
            calls.append(1)
            with engine.begin() as conn:
                conn.execute(change)
        return result

    monkeypatch.setattr(auth, "verify_password", verify)
    return engine, calls


def test_overlapping_failures_are_all_counted(app, client, monkeypatch):
    """Parallel guesses must not overwrite each other's failure count (a lost update would allow extra guesses)."""
    user = gen_user("designated_doctor", institution=gen_institution())
    user.failed_logins = 3
    db.session.commit()
    table = User.__table__
    engine, calls = _run_with_concurrent_change(
        monkeypatch, app, update(table).where(table.c.id == user.id).values(failed_logins=table.c.failed_logins + 1))
    login(client, user, password=WRONG_PASSWORD)
    engine.dispose()
    assert calls
    assert fresh(user).failed_logins == 5
    assert fresh(user).status == "locked"
    assert len(log_entries("lockout")) == 1


def test_account_locked_during_the_password_check_does_not_log_in(app, client, monkeypatch):
    user = gen_user("designated_doctor", institution=gen_institution())
    table = User.__table__
    engine, calls = _run_with_concurrent_change(
        monkeypatch, app, update(table).where(table.c.id == user.id).values(status="locked", failed_logins=5))
    response = login(client, user)
    engine.dispose()
    assert calls
    # Decided on the account as it is under the lock: locked (and, with both factors right, told so).
    assert response.status_code == 200 and alerts(response) == [LOCKED_DOCTOR_MESSAGE]
    assert not logged_in(client)
    assert fresh(user).status == "locked"


def _scenario():
    inst = gen_institution()  # in Tokyo, whose admin issued the doctor's ID
    locked = gen_user("designated_doctor", institution=inst)
    return inst, locked


UNLOCKERS = {
    "institution_manager": lambda inst: gen_user("designated_doctor", institution=inst, manager=True),
    "issuing_municipality_admin": lambda inst: gen_user("municipality_admin", municipality=inst.municipality),
    "operator_admin": lambda inst: gen_user("operator_admin"),
}
NOT_UNLOCKERS = {
    "admin_of_another_municipality": lambda inst: gen_user("municipality_admin",
                                                           municipality=gen_municipality(OSAKA)),
    "plain_doctor_of_same_institution": lambda inst: gen_user("designated_doctor", institution=inst),
    "manager_of_another_institution": lambda inst: gen_user("designated_doctor", institution=gen_institution(),
                                                            manager=True),
    "municipality_user_of_issuer": lambda inst: gen_user("municipality_user", municipality=inst.municipality),
    "staff_of_same_institution": lambda inst: gen_user("institution_staff", institution=inst),
}


def unlock_as(client, who, inst, user):
    """A 責任者 unlocks in 医療機関ユーザ管理; the 自治体 and the operator in the user list."""
    if who == "institution_manager":
        return post_form(client, f"/admin/institution-users/{inst.id}/unlock/{user.id}", {},
                         token_page="/admin/institution-users/")
    return admin_action(client, "unlock", user)


@pytest.mark.parametrize("who", list(UNLOCKERS))
def test_unlock_by_authorised_user(app, client, who):
    inst, locked = _scenario()
    helper = UNLOCKERS[who](inst)
    lock_out(locked, app)
    assert login(client, helper).status_code == 302
    response = unlock_as(client, who, inst, locked)
    assert response.status_code == 302
    user = fresh(locked)
    assert user.status == "active" and user.failed_logins == 0
    entry = log_entries("unlock")[-1]
    assert entry.target_id == str(locked.id) and entry.actor_id == helper.id
    # The unlocked user logs in again with password and key file.
    assert login(app.test_client(), locked).status_code == 302


@pytest.mark.parametrize("who", list(NOT_UNLOCKERS))
def test_unlock_refused_outside_authority(app, client, who):
    inst, locked = _scenario()
    helper = NOT_UNLOCKERS[who](inst)
    lock_out(locked, app)
    assert login(client, helper).status_code == 302
    response = admin_action(client, "unlock", locked)
    assert response.status_code in (302, 403)
    assert fresh(locked).status == "locked"
    assert not log_entries("unlock")
    assert login(app.test_client(), locked).status_code == 200


def test_unlock_action_without_csrf_token_is_refused(app, client):
    inst, locked = _scenario()
    lock_out(locked, app)
    login(client, gen_user("operator_admin"))
    response = client.post("/admin/user/action/", data={"action": "unlock", "rowid": str(locked.id)})
    assert response.status_code == 400
    assert fresh(locked).status == "locked"


# --- 4. first login ---------------------------------------------------------------------------------------------

GOOD_NEW_PASSWORD = "Sakura-Mochi-Kyoto-58"


def _first_login_user(**kwargs):
    return gen_user("designated_doctor", institution=gen_institution(), setup_done=False, **kwargs)


def _admin_get_rules(app):
    rules = [r for r in app.url_map.iter_rules()
             if "GET" in r.methods and r.rule.startswith("/admin") and not r.arguments
             and not r.endpoint.endswith("static")]
    assert len(rules) > 10
    return rules


def test_first_login_with_password_only_is_forced_to_setup(app, client):
    user = _first_login_user()
    assert user.key_digest is None
    response = login(client, user.login_id)
    assert response.status_code == 302 and response.headers["Location"] == "/first-login"
    for rule in _admin_get_rules(app):
        response = client.get(rule.rule)
        assert response.status_code == 302, rule.rule
        assert response.headers["Location"] == "/first-login", rule.rule
    assert client.get("/").headers["Location"] in ("/admin/", "/first-login")
    assert client.get("/first-login").status_code == 200


def test_first_login_gate_also_blocks_posts(client):
    user = _first_login_user()
    login(client, user.login_id)
    token = csrf_token(client, "/first-login")
    response = client.post("/admin/account/profile", data={"csrf_token": token, "name": "変更", "email": "x@example.jp"})
    assert response.status_code == 302 and response.headers["Location"] == "/first-login"
    assert fresh(user).name != "変更"


WEAK = {
    "too_short": ("Ab3$efgh", "12文字以上"),
    "common": ("password1234", "よく使われる"),
    "sequential": ("abcdefghijklmn", "連続した文字"),
    "repeated": ("aaaabbbbaaaabbbb", "同じ文字の繰り返し"),
    "contains_login_id": ("My-tanaka-clinic-2026", "ログインIDを含む"),
    "same_as_initial": (PASSWORD, "初期パスワードと同じ"),
}


@pytest.mark.parametrize("case", list(WEAK))
def test_first_login_refuses_weak_password(client, case):
    user = _first_login_user(login_id="Tanaka-Clinic")
    login(client, user.login_id)
    password, message = WEAK[case]
    response = post_form(client, "/first-login", {"new_password": password, "new_password_confirm": password,
                                                  "email": "tanaka@example.jp"}, token_page="/first-login")
    assert response.status_code == 200
    assert message in body(response)
    user = fresh(user)
    assert user.must_change_password and user.email is None
    assert auth.verify_password(user.password_hash, PASSWORD)
    assert client.get("/admin/").headers["Location"] == "/first-login"


def test_first_login_refuses_mismatching_confirmation(client):
    user = _first_login_user()
    login(client, user.login_id)
    response = post_form(client, "/first-login", {"new_password": GOOD_NEW_PASSWORD,
                                                  "new_password_confirm": GOOD_NEW_PASSWORD + "x",
                                                  "email": "a@example.jp"}, token_page="/first-login")
    assert response.status_code == 200
    assert "確認用のパスワードが一致しません" in body(response)
    assert fresh(user).must_change_password


def test_first_login_full_setup_then_two_factor_login(app, client):
    user = _first_login_user()
    login(client, user.login_id)
    response = post_form(client, "/first-login", {"new_password": GOOD_NEW_PASSWORD,
                                                  "new_password_confirm": GOOD_NEW_PASSWORD,
                                                  "email": "doctor@example.jp"}, token_page="/first-login")
    assert response.status_code == 302 and response.headers["Location"] == "/first-login/key"
    stored = fresh(user)
    assert not stored.must_change_password and stored.email == "doctor@example.jp"
    assert auth.verify_password(stored.password_hash, GOOD_NEW_PASSWORD)
    # Still no key file: admin pages stay closed.
    assert client.get("/admin/").headers["Location"] == "/first-login"
    # GET shows the page but issues nothing.
    assert client.get("/first-login/key").status_code == 200
    assert fresh(user).key_digest is None
    response = post_form(client, "/first-login/key", {}, token_page="/first-login/key")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert f"{user.login_id}.key" in response.headers["Content-Disposition"]
    key_file = response.data
    assert key_file.startswith(b"NANBYO-KEYFILE-1")
    assert fresh(user).key_digest
    # The session ended with the download.
    assert is_login_redirect(client.get("/admin/"))
    # From now on: new password AND the key file.
    assert login(client, user.login_id, password=GOOD_NEW_PASSWORD).status_code == 200
    assert login(client, user.login_id, password=PASSWORD, key_file=key_file).status_code == 200
    assert not logged_in(client)
    response = login(client, user.login_id, password=GOOD_NEW_PASSWORD, key_file=key_file)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/account/").status_code == 200


# --- 5. CSRF on every state-changing request --------------------------------------------------------------------

def test_csrf_is_enabled_in_the_tested_config(app):
    assert app.config["TESTING"] is True
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    assert "csrf" in app.extensions


def post_rules(app):
    rules = [r for r in app.url_map.iter_rules() if "POST" in r.methods]
    return rules


def test_url_map_has_post_rules(app):
    endpoints = {r.endpoint for r in post_rules(app)}
    assert {"auth.login", "auth.logout", "auth.first_login", "auth.first_login_key", "user.action_view",
            "user.delete_view", "user.edit_view", "account.key", "account.password"} <= endpoints


def snapshot():
    """Every row of every table, to see that nothing at all changed."""
    db.session.expire_all()
    state = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            state[table.name] = [tuple(r) for r in rows]
    return state


def _payload_for(rule, victims):
    """Form data that would change something if the request were accepted."""
    view, _, method = rule.endpoint.rpartition(".")
    row_id = victims.get(view)
    data = {"name": "CSRF", "email": "csrf@example.jp", "action": "delete",
            "current_password": PASSWORD, "new_password": GOOD_NEW_PASSWORD,
            "new_password_confirm": GOOD_NEW_PASSWORD, "institution_code": victims["institution_code"],
            "login_id": victims["login_id"], "password": PASSWORD}
    if row_id is not None:
        data.update({"id": str(row_id), "rowid": str(row_id), "pk": str(row_id), "list_form_pk": str(row_id)})
    if view == "user" and method == "action_view":
        data["action"] = "disable"
    return data


CSRF_MESSAGE = "別の画面でログアウト・ログインしたため、この操作を受け付けられませんでした。"


def test_every_post_without_csrf_token_is_refused(app, client):
    operator = gen_user("operator_admin")
    inst = gen_institution()
    doctor = gen_user("designated_doctor", institution=inst, manager=True)
    membership = db.session.execute(select(Membership).filter_by(user_id=doctor.id)).scalar_one()
    log_row = db.session.execute(select(OperationLog)).scalars().first()
    assert login(client, operator).status_code == 302
    victims = {"user": doctor.id, "institution": inst.id, "membership": membership.id,
               "municipality": inst.municipality_id, "operation_log": log_row.id if log_row else 1,
               "nanbyo_disease": 1, "shoman_group": 1, "shoman_disease": 1,
               "institution_code": inst.code, "login_id": operator.login_id}
    rules = post_rules(app)
    assert rules, "no POST rules in the url_map"
    before = snapshot()
    checked = []
    for rule in rules:
        if rule.endpoint == "auth.login":
            continue  # logged in, /login only redirects; checked anonymously below
        url = rule.build({a: membership.id for a in rule.arguments})[1]
        view = rule.endpoint.rpartition(".")[0]
        if view in victims and rule.endpoint.endswith(("edit_view", "delete_view")):
            url += f"?id={victims[view]}"
        response = client.post(url, data=_payload_for(rule, victims))
        assert response.status_code == 400, f"{rule.rule} answered {response.status_code} without a CSRF token"
        assert CSRF_MESSAGE in body(response), rule.rule
        checked.append(rule.endpoint)
    assert len(checked) >= 40
    assert snapshot() == before
    assert logged_in(client)  # the refused /logout did not log out either


def test_login_post_without_csrf_token_is_refused(app, client):
    user = gen_user("municipality_admin")
    before = snapshot()
    data = {"login_id": user.login_id, "password": PASSWORD, "key_file": (BytesIO(user.key_file), "k.key")}
    response = client.post("/login", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert snapshot() == before
    assert not logged_in(client)
    # Repeated wrong guesses without a token never reach the counter either.
    for _ in range(6):
        client.post("/login", data={"login_id": user.login_id, "password": WRONG_PASSWORD})
    assert fresh(user).failed_logins == 0 and fresh(user).status == "active"


def test_csrf_token_of_another_session_is_refused(app, client):
    operator = gen_user("operator_admin")
    victim = gen_user("municipality_user")
    login(client, operator)
    attacker = app.test_client()
    login(attacker, gen_user("municipality_admin"))
    foreign_token = csrf_token(attacker, "/admin/account/")
    response = client.post("/admin/user/action/", data={"csrf_token": foreign_token, "action": "disable",
                                                        "rowid": str(victim.id)})
    assert response.status_code == 400
    assert fresh(victim).status == "active"
    # The same request with the session's own token works (the refusal above was the token's doing).
    assert admin_action(client, "disable", victim).status_code == 302
    assert fresh(victim).status == "disabled"


# --- 6. no GET changes state ------------------------------------------------------------------------------------

def test_get_logout_is_not_allowed(client):
    user = gen_user("municipality_user")
    login(client, user)
    response = client.get("/logout")
    assert response.status_code == 405
    assert logged_in(client)
    assert not log_entries("logout")


def test_post_logout_logs_out(client):
    user = gen_user("municipality_user")
    login(client, user)
    response = logout(client)
    assert is_login_redirect(response)
    assert not logged_in(client)
    assert [e.actor_id for e in log_entries("logout")] == [user.id]


# --- 7. security headers ----------------------------------------------------------------------------------------

def _check_common_headers(response):
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]


def test_security_headers_on_admin_page(client):
    login(client, gen_user("operator_admin"))
    for path in ("/admin/", "/admin/user/", "/admin/account/"):
        response = client.get(path)
        assert response.status_code == 200
        _check_common_headers(response)
        assert "Strict-Transport-Security" not in response.headers
    login_page = client.get("/login")
    assert "frame-ancestors 'none'" in login_page.headers["Content-Security-Policy"]


def test_hsts_and_secure_cookie_only_behind_tls(app, client, monkeypatch):
    user = gen_user("operator_admin")
    response = login(client, user)
    assert "Secure" not in response.headers["Set-Cookie"]
    monkeypatch.setenv("NANBYO_TLS", "1")
    tls_app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    try:
        assert tls_app.config["NANBYO_TLS"] is True
        browser = tls_app.test_client()
        response = login(browser, user)
        assert response.status_code == 302
        assert "Secure" in response.headers["Set-Cookie"]
        response = browser.get("/admin/", base_url="https://localhost")
        assert response.status_code == 200
        _check_common_headers(response)
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert int(response.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31536000
    finally:
        with tls_app.app_context():
            db.session.remove()
            db.engine.dispose()


# --- 8. no open redirect after login ----------------------------------------------------------------------------

def login_with_next(client, user, next_value):
    data = {"login_id": user.login_id, "password": PASSWORD, "csrf_token": csrf_token(client),
            "key_file": (BytesIO(user.key_file), "k.key")}
    return client.post("/login", query_string={"next": next_value}, data=data,
                       content_type="multipart/form-data")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/",
                                    "\\\\evil.example/", "/\t/evil.example/", "https:evil.example",
                                    "javascript:alert(1)", "/\\/evil.example"])
def test_login_does_not_redirect_off_site(client, target):
    user = gen_user("municipality_user")
    response = login_with_next(client, user, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert logged_in(client)


def test_login_follows_a_same_site_next(client):
    user = gen_user("operator_admin")
    response = login_with_next(client, user, "/admin/user/?page=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/user/?page=1"


def test_login_page_redirect_carries_next(client):
    response = client.get("/admin/user/")
    assert is_login_redirect(response)
    assert "next=" in response.headers["Location"]
