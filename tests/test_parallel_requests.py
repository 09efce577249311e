"""Parallel requests on two gunicorn workers: every effect has exactly one log entry, limits hold exactly.

The operation log is a hash chain: two workers must never both extend the same tail, and a change must never be
committed without its entry (or the other way round). Only separate processes racing on one database show this.
"""
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from models.accounts import User, UserSession
from models.audit import OperationLog
from nanbyo import audit
from nanbyo.documents import ACCESS_KEY_ALPHABET
from nanbyo.extensions import db
from tests.helpers import PASSWORD, gen_institution, gen_municipality, gen_user
from tests.served import Browser, Gunicorn

PARALLEL = 40
WRONG_PASSWORD = "Wrong-Guess-Pw-4821"


@pytest.fixture
def server(app):
    served = Gunicorn(app, workers=2)
    yield served
    served.stop()


def in_parallel(calls):
    """Run the calls at the same moment (after a barrier) and return their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def entries(action, **filters):
    db.session.expire_all()
    query = select(OperationLog).filter_by(action=action, **filters).order_by(OperationLog.seq)
    return db.session.execute(query).scalars().all()


def login_call(browser, user, password=PASSWORD):
    token = browser.csrf("/login")
    # Read from the ORM here: the calls run in threads without the test's app context.
    fields = {"login_id": user.login_id, "password": password, "csrf_token": token}
    files = {"key_file": (f"{user.login_id}.key", user.key_file)}
    return lambda: browser.post("/login", fields, files=files)


def assert_chain_intact():
    db.session.expire_all()
    problems, last_seq, _ = audit.verify()
    assert problems == []
    count = db.session.execute(select(func.count()).select_from(OperationLog)).scalar()
    assert last_seq == count


def test_parallel_logins_each_have_exactly_one_entry(app, server):
    institution = gen_institution()
    users = [gen_user("designated_doctor", institution=institution) for _ in range(PARALLEL)]
    browsers = [Browser(server.port) for _ in users]
    responses = in_parallel([login_call(b, u) for b, u in zip(browsers, users)])
    succeeded = [u for u, r in zip(users, responses) if r.status == 302 and r.location.endswith("/admin/")]
    assert len(succeeded) == PARALLEL, [r.status for r in responses] + [server.errors()]
    for user in users:
        assert len(entries("login", actor_id=user.id)) == 1
        assert db.session.execute(select(func.count()).select_from(UserSession)
                                  .filter_by(user_id=user.id)).scalar() == 1
    # Each session works.
    assert all(b.get("/admin/").status == 200 for b in browsers)
    assert_chain_intact()


def test_parallel_failed_logins_lock_once_and_are_all_logged(app, server):
    user = gen_user("designated_doctor", institution=gen_institution())
    browsers = [Browser(server.port) for _ in range(PARALLEL)]
    responses = in_parallel([login_call(b, user, WRONG_PASSWORD) for b in browsers])
    assert [r.status for r in responses] == [200] * PARALLEL, server.errors()
    assert len(entries("login_failed", target_id=str(user.id))) == PARALLEL
    assert len(entries("lockout", target_id=str(user.id))) == 1
    db.session.expire_all()
    locked = db.session.get(User, user.id)
    assert locked.status == "locked" and locked.failed_logins == app.config["NANBYO_LOCKOUT_THRESHOLD"]
    assert_chain_intact()


def test_parallel_wrong_key_lookups_stop_at_exactly_the_limit(app, server):
    clerk = gen_user("municipality_user", municipality=gen_municipality())
    browser = Browser(server.port)
    assert login_call(browser, clerk)().status == 302
    token = browser.csrf("/admin/document/lookup/")

    def lookup():
        key = "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(8))
        return browser.post("/admin/document/lookup/", {"access_key": key, "csrf_token": token})

    responses = in_parallel([lookup] * PARALLEL)
    assert [r.status for r in responses] == [200] * PARALLEL, server.errors()
    limit = app.config["NANBYO_KEY_LOOKUP_MAX_FAILURES"]
    assert len(entries("key_lookup", actor_id=clerk.id, result="failure")) == limit
    assert len(entries("key_lookup", actor_id=clerk.id, result="throttled")) == PARALLEL - limit
    assert_chain_intact()
