"""Operation log: what is recorded, what never is, the hash chain, and the database refusing UPDATE/DELETE."""
import json
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from models.audit import OperationLog
from models.accounts import User
from nanbyo import audit, auth
from nanbyo.extensions import db
from tests.helpers import (PASSWORD, csrf_token, gen_institution, gen_municipality, gen_user,
                           login, logout, post_form)

CLIENT_ADDR = "192.0.2.10"  # TEST-NET-1: proves remote_addr comes from the request, not a constant
NEW_PASSWORD = "brand-new-passphrase-42"


@pytest.fixture
def client(app):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = CLIENT_ADDR
    return client


def entries():
    db.session.expire_all()
    return db.session.execute(select(OperationLog).order_by(OperationLog.seq)).scalars().all()


def only(action, **filters):
    found = [e for e in entries() if e.action == action and all(getattr(e, k) == v for k, v in filters.items())]
    assert len(found) == 1, f"expected one {action} entry with {filters}, got {[(e.seq, e.action) for e in found]}"
    return found[0]


def dialect():
    return db.session.get_bind().dialect.name


def all_text_of_log():
    """Every column of every row, as the database returns it."""
    rows = db.session.execute(text("SELECT * FROM operation_log")).mappings().all()
    assert rows
    return "\n".join(json.dumps({k: str(v) for k, v in row.items()}, ensure_ascii=False) for row in rows)


def verify(runner):
    db.session.commit()  # nothing of the test's own transaction may hide from (or block) the command
    return runner.invoke(args=["nanbyo", "audit-verify"])


# --- what is recorded ----------------------------------------------------------------------------------------------

def test_login_failed_login_and_logout_are_recorded(client):
    user = gen_user("municipality_admin")

    login(client, user, password="not-the-password-1")
    failed = only("login_failed")
    assert (failed.actor_login, failed.actor_role, failed.result) == (user.login_id, "municipality_admin", "failure")
    assert (failed.target_type, failed.target_id) == ("user_account", str(user.id))
    assert failed.remote_addr == CLIENT_ADDR

    assert login(client, user).status_code == 302
    ok = only("login")
    assert (ok.actor_login, ok.actor_id, ok.actor_role, ok.result) == (user.login_id, user.id, "municipality_admin",
                                                                      "success")
    assert (ok.target_type, ok.target_id, ok.remote_addr) == ("user_account", str(user.id), CLIENT_ADDR)

    assert logout(client).status_code == 302
    out = only("logout")
    assert (out.actor_login, out.actor_role, out.result, out.remote_addr) == (user.login_id, "municipality_admin",
                                                                            "success", CLIENT_ADDR)
    assert (out.target_type, out.target_id) == ("user_account", str(user.id))


def test_unknown_login_id_is_recorded_without_an_actor(client):
    login(client, "nobody-here", password="whatever-password-1")
    failed = only("login_failed")
    assert (failed.actor_id, failed.actor_login, failed.result) == (None, "", "failure")
    assert failed.data["reason"] == "unknown_login_id"


def test_create_update_delete_and_export_through_admin_views_are_recorded(client):
    operator = gen_user("operator_admin")
    tokyo = gen_municipality()
    assert login(client, operator).status_code == 302

    form = {"code": "1310000999", "name": "監査テスト病院", "address": "東京都千代田区1-1", "municipality": tokyo.id}
    r = post_form(client, "/admin/institution/new/", form, token_page="/admin/institution/new/")
    assert r.status_code == 302, r.get_data(as_text=True)
    created = only("create", target_type="institution")
    inst_id = created.target_id
    assert inst_id.isdigit()
    assert sorted(created.data["fields"]) == ["active", "address", "code", "municipality", "name",
                                              "shoman_municipality"]

    edit = f"/admin/institution/edit/?id={inst_id}"
    r = post_form(client, edit, form | {"name": "監査テスト病院（改称）"}, token_page=edit)
    assert r.status_code == 302, r.get_data(as_text=True)
    updated = only("update", target_type="institution")
    assert updated.target_id == inst_id and updated.data["fields"] == ["name"]

    r = post_form(client, "/admin/institution/delete/", {"id": inst_id}, token_page="/admin/institution/")
    assert r.status_code == 302
    deleted = only("delete", target_type="institution")
    assert deleted.target_id == inst_id

    gen_institution(tokyo)
    r = client.get("/admin/institution/export/csv/")
    assert r.status_code == 200
    exported = only("export", target_type="institution")
    assert exported.data == {"format": "csv", "rows": 1}

    for entry in (created, updated, deleted, exported):
        assert (entry.actor_id, entry.actor_login, entry.actor_role) == (operator.id, operator.login_id,
                                                                         "operator_admin")
        assert entry.remote_addr == CLIENT_ADDR
        assert entry.result == "success"
        assert entry.created_at.tzinfo is not None and entry.created_at.utcoffset() is not None


def test_created_at_is_timezone_aware_and_current(client):
    from datetime import datetime, timedelta, timezone
    user = gen_user("municipality_user")
    before = datetime.now(timezone.utc)
    login(client, user)
    entry = only("login")
    assert entry.created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= entry.created_at <= datetime.now(timezone.utc) + timedelta(seconds=5)


def test_no_password_reaches_any_column_of_the_log(client, app, monkeypatch):
    operator = gen_user("operator_admin")
    login(client, operator, password="wrong-" + PASSWORD)  # a failed attempt with a near-miss password
    assert login(client, operator).status_code == 302

    # A password change: both the old and the new password pass through a logged action.
    data = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
    assert post_form(client, "/admin/account/password", data).status_code == 302
    only("password_change")

    # A new account and its 発行通知書: the initial password is printed in the PDF and must not be logged.
    r = post_form(client, "/admin/user/new/", {"login_id": "newcomer", "name": "新規 利用者", "role": "operator_user",
                                               "email": "newcomer@example.jp"}, token_page="/admin/user/new/")
    assert r.status_code == 302, r.get_data(as_text=True)
    only("create", target_type="user_account")
    initial = "Printed-Only-Pw7"
    monkeypatch.setattr(auth, "generate_initial_password", lambda: initial)
    newcomer = db.session.execute(select(User).filter_by(login_id="newcomer")).scalar_one()
    r = post_form(client, "/admin/user/action/", {"action": "issue_notice", "rowid": newcomer.id},
                  token_page="/admin/user/")
    assert r.mimetype == "application/pdf"
    only("notice_issue", target_id=str(newcomer.id))

    # Someone types a password where a CSRF token or an extra field would go: still not logged.
    logout(client)
    client.post("/login", data={"login_id": operator.login_id, "password": NEW_PASSWORD + "x",
                                "csrf_token": csrf_token(client)})

    log = all_text_of_log()
    for secret in (PASSWORD, "wrong-" + PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", initial):
        assert secret not in log
    # The hashes of those passwords are not in there either.
    assert "$argon2" not in log


# --- the hash chain ------------------------------------------------------------------------------------------------

def make_history(client):
    """Five entries or more: login_failed, login, create, export, logout."""
    user = gen_user("municipality_admin")
    login(client, user, password="not-the-password-1")
    login(client, user)
    post_form(client, "/admin/institution/new/", {"code": "1310000998", "name": "鎖テスト病院", "address": "x"},
              token_page="/admin/institution/new/")
    client.get("/admin/institution/export/xlsx/")
    logout(client)
    history = entries()
    assert [e.action for e in history] == ["login_failed", "login", "create", "export", "logout"]
    return history


def test_seq_is_consecutive_and_each_entry_links_to_the_previous_one(client):
    history = make_history(client)
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    assert history[0].prev_hash == audit.GENESIS
    for prev, entry in zip(history, history[1:]):
        assert entry.prev_hash == prev.entry_hash
    for entry in history:
        assert re.fullmatch(r"[0-9a-f]{64}", entry.entry_hash)
        assert audit.compute_hash(entry) == entry.entry_hash
    assert len({e.entry_hash for e in history}) == len(history)


def test_audit_verify_passes_on_an_intact_log_and_prints_the_tail_hash(client, runner):
    history = make_history(client)
    result = verify(runner)
    assert result.exit_code == 0, result.output
    assert history[-1].entry_hash in result.output
    assert f"{len(history)} 件" in result.output


def test_audit_verify_passes_on_an_empty_log(runner):
    result = verify(runner)
    assert result.exit_code == 0, result.output
    assert audit.GENESIS in result.output


@pytest.fixture
def attacker(app):
    """SQL run as a database owner who first gets the append-only triggers out of the way."""
    def run(sql, **params):
        db.session.commit()
        if dialect() == "postgresql":
            db.session.execute(text("ALTER TABLE operation_log DISABLE TRIGGER operation_log_no_change"))
        else:
            db.session.execute(text("DROP TRIGGER IF EXISTS operation_log_no_update"))
            db.session.execute(text("DROP TRIGGER IF EXISTS operation_log_no_delete"))
        result = db.session.execute(text(sql), params)
        db.session.commit()
        return result
    yield run
    db.session.rollback()
    if dialect() == "postgresql":  # PostgreSQL keeps its schema between tests: put the trigger back
        db.session.execute(text("ALTER TABLE operation_log ENABLE TRIGGER operation_log_no_change"))
        db.session.commit()


TAMPERING = {
    "actor_login": "UPDATE operation_log SET actor_login = 'mallory' WHERE seq = :seq",
    "result": "UPDATE operation_log SET result = 'success' WHERE seq = :seq",
    "target_id": "UPDATE operation_log SET target_id = '999' WHERE seq = :seq",
    "data": "UPDATE operation_log SET data = CAST(:data AS {json}) WHERE seq = :seq",
    "created_at": "UPDATE operation_log SET created_at = {later} WHERE seq = :seq",
}


@pytest.mark.parametrize("column", list(TAMPERING))
def test_audit_verify_names_an_altered_entry(client, runner, attacker, column):
    history = make_history(client)
    victim = history[0]  # the login_failed entry: an attacker would like it to read "success", or someone else
    pg = dialect() == "postgresql"
    sql = TAMPERING[column].format(json="json" if pg else "TEXT",
                                   later="created_at + interval '1 hour'" if pg else "datetime(created_at, '+1 hour')")
    victim_seq, victim_id = victim.seq, victim.id
    others = [(e.seq, e.id) for e in history[1:]]
    changed = attacker(sql, seq=victim.seq, data=json.dumps({"login_id": "someone-else", "reason": "ok"}))
    assert changed.rowcount == 1

    result = verify(runner)
    assert result.exit_code != 0
    assert f"seq={victim_seq} (id={victim_id}) の内容がハッシュと一致しません" in result.output
    assert "改ざん" in result.output
    # Only the altered entry is named as altered: the others still hash correctly.
    for seq, id_ in others:
        assert f"seq={seq} (id={id_}) の内容" not in result.output


def test_audit_verify_names_where_a_middle_entry_was_deleted(client, runner, attacker):
    history = make_history(client)
    victim_seq, after_id = history[2].seq, history[3].id
    assert attacker("DELETE FROM operation_log WHERE seq = :seq", seq=victim_seq).rowcount == 1

    result = verify(runner)
    assert result.exit_code != 0
    assert f"seq={victim_seq}" in result.output  # the missing number
    assert f"id={after_id}" in result.output  # the entry right after the gap
    assert "削除" in result.output


def test_deleting_and_renumbering_is_still_caught_by_the_links(client, runner, attacker):
    third_id = make_history(client)[2].id
    attacker("DELETE FROM operation_log WHERE seq = 2")
    attacker("UPDATE operation_log SET seq = seq - 1 WHERE seq > 2")
    result = verify(runner)
    assert result.exit_code != 0
    # The entry now numbered 2 was the third one: its prev_hash and its own hash no longer fit.
    assert f"seq=2 (id={third_id})" in result.output


def test_cutting_off_the_tail_changes_the_tail_hash(client, runner, attacker):
    """The chain alone cannot see the newest entries removed: the recorded tail hash can (README)."""
    history = make_history(client)
    tail, new_tail = history[-1].entry_hash, history[-2].entry_hash
    assert tail in verify(runner).output
    attacker("DELETE FROM operation_log WHERE seq = :seq", seq=history[-1].seq)
    result = verify(runner)
    assert tail not in result.output
    assert new_tail in result.output


# --- append-only, without the attacker's rights -----------------------------------------------------------------

def test_database_refuses_update_and_delete_of_the_log(client):
    history = make_history(client)
    db.session.commit()
    statements = ["UPDATE operation_log SET actor_login = 'mallory' WHERE seq = 1",
                  "UPDATE operation_log SET result = 'success'",
                  "DELETE FROM operation_log WHERE seq = 3",
                  "DELETE FROM operation_log"]
    if dialect() == "postgresql":
        statements.append("TRUNCATE operation_log")
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(sql))
        db.session.rollback()
    after = entries()
    assert [(e.seq, e.actor_login, e.result, e.entry_hash) for e in after] == \
        [(e.seq, e.actor_login, e.result, e.entry_hash) for e in history]


def test_orm_refuses_update_and_delete_of_the_log(client):
    make_history(client)
    entry = entries()[0]
    entry.actor_login = "mallory"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()

    entry = entries()[0]
    db.session.delete(entry)
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()
    assert entries()[0].actor_login != "mallory"
    assert len(entries()) == 5
