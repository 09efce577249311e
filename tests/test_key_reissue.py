"""暗号化鍵再発行 keeps two factors: after a re-issue, password + the one-time 鍵登録コード register a new key file.

Revoking a key must never open a login with the password alone.
"""
import re
import shutil
import subprocess
from datetime import timedelta

import pytest

from models._types import utcnow
from nanbyo import auth
from nanbyo.extensions import db
from tests.helpers import (PASSWORD, csrf_token, fresh, gen_institution, gen_user, log_entries, login, post_form)

PDFTOTEXT = shutil.which("pdftotext")


@pytest.fixture
def hospital(app):
    return gen_institution()


@pytest.fixture
def manager(hospital):
    return gen_user("designated_doctor", institution=hospital, manager=True)


@pytest.fixture
def doctor(hospital):
    return gen_user("designated_doctor", institution=hospital)


def reissue(client, hospital, user):
    """The 責任者 re-issues `user`'s key; the notice PDF and the code printed on it."""
    token = csrf_token(client, "/admin/institution-users/")
    r = client.post(f"/admin/institution-users/{hospital.id}/key/{user.id}", data={"csrf_token": token})
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    return r.data


def code_from(pdf, tmp_path):
    path = tmp_path / "key_notice.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([PDFTOTEXT, "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True).stdout
    codes = re.findall(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b", text.decode("utf-8"))
    assert len(set(codes)) == 1, codes
    return codes[0]


def login_with_code(browser, user, code, password=PASSWORD):
    data = {"login_id": user.login_id, "password": password, "key_code": code,
            "csrf_token": csrf_token(browser, "/login")}
    return browser.post("/login", data=data, content_type="multipart/form-data")


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed")
def test_reissued_key_is_registered_with_password_and_the_printed_code(app, client, hospital, manager, doctor,
                                                                       tmp_path):
    old_key = doctor.key_file
    doctor_browser = app.test_client()
    assert login(doctor_browser, doctor).status_code == 302
    login(client, manager)
    code = code_from(reissue(client, hospital, doctor), tmp_path)
    # The doctor's open session ended with the old key.
    assert doctor_browser.get("/admin/").status_code == 302

    browser = app.test_client()
    assert login(browser, doctor, key_file=old_key).status_code == 200, "the old key file is revoked"
    assert login(browser, doctor, key_file=b"").status_code == 200, "the password alone is not enough"
    r = login_with_code(browser, doctor, code)
    assert r.status_code == 302 and r.headers["Location"] == "/first-login"
    # Until the new key is registered, nothing else opens.
    assert browser.get("/admin/document/").headers["Location"] == "/first-login"
    r = browser.get("/first-login")
    assert r.headers["Location"] == "/first-login/key"
    r = post_form(browser, "/first-login/key", {}, token_page="/first-login/key")
    new_key = r.data
    assert new_key.startswith(auth.KEY_FILE_MAGIC.encode())
    user = fresh(doctor)
    assert user.key_code_hash is None and user.key_code_expires_at is None, "the code is spent"
    # The code works once: with the new key registered it opens nothing.
    assert login_with_code(app.test_client(), doctor, code).status_code == 200
    assert login(app.test_client(), doctor, key_file=new_key).status_code == 302
    assert [e.target_id for e in log_entries("key_reset")] == [str(doctor.id)]
    assert log_entries("key_issue")[-1].data == {"first_login": True}
    # Neither the code nor its hash reaches the log.
    assert all(code not in str(e.data) for e in log_entries("key_reset") + log_entries("login"))


def test_wrong_or_expired_code_is_refused_and_counted(app, client, hospital, manager, doctor, monkeypatch):
    codes = []
    real = auth.new_key_code
    monkeypatch.setattr(auth, "new_key_code", lambda: codes.append(real()) or codes[-1])
    login(client, manager)
    reissue(client, hospital, doctor)
    code = codes[0][0]
    browser = app.test_client()
    assert login_with_code(browser, doctor, "ABCD-EFGH-JKMN").status_code == 200
    assert login_with_code(browser, doctor, code, password="Wrong-Guess-Pw-4821").status_code == 200
    assert fresh(doctor).failed_logins == 2
    assert [e.data["reason"] for e in log_entries("login_failed")] == ["bad_key_code", "bad_password"]
    user = fresh(doctor)
    user.key_code_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert login_with_code(browser, doctor, code).status_code == 200
    # Typed as people type it off paper: lower case, without hyphens, with 全角 characters.
    user = fresh(doctor)
    user.key_code_expires_at, user.failed_logins = utcnow() + timedelta(days=1), 0
    db.session.commit()
    typed = code.replace("-", "").lower().translate(str.maketrans("ABCDEFGHJK", "ＡＢＣＤＥＦＧＨＪＫ"))
    assert login_with_code(browser, doctor, typed).status_code == 302


def test_code_expires_after_the_configured_time(app, client, hospital, manager, doctor):
    app.config["NANBYO_KEY_CODE_VALIDITY"] = timedelta(hours=72)
    login(client, manager)
    reissue(client, hospital, doctor)
    left = fresh(doctor).key_code_expires_at - utcnow()
    assert timedelta(hours=71, minutes=59) < left <= timedelta(hours=72)


def test_a_revoked_key_without_a_code_opens_nothing(app, doctor):
    """A key revoked the old way (no code issued) leaves no password-only way in."""
    user = fresh(doctor)
    user.key_digest = None
    db.session.commit()
    r = login(app.test_client(), doctor, key_file=b"")
    assert r.status_code == 200
    assert log_entries("login_failed")[-1].data["reason"] == "no_key_file"


def test_first_login_still_needs_only_the_initial_password(app, hospital):
    """Before any key exists the initial password from the notice is the way in (then the key is registered)."""
    newcomer = gen_user("designated_doctor", institution=hospital, setup_done=False)
    r = login(app.test_client(), newcomer.login_id)
    assert r.status_code == 302 and r.headers["Location"] == "/first-login"


def test_own_key_reissue_keeps_this_session_and_ends_the_others(app, client, doctor):
    other = app.test_client()
    login(other, doctor)
    login(client, doctor)
    r = post_form(client, "/admin/account/key", {"current_password": PASSWORD})
    assert r.data.startswith(auth.KEY_FILE_MAGIC.encode())
    assert client.get("/admin/").status_code == 200
    assert other.get("/admin/").status_code == 302
