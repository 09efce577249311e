"""The process doing an import killed half-way (issue 15): nothing is half written, the job says 失敗, and running
the import again creates every document / account exactly once.

- XML import (a background job): a real huey_consumer is SIGKILLed while it imports. The importer commits groups
  of importer.GROUP documents, each with its log entries; "nothing half written" means every document there has
  its one log entry, every entry its document, and only whole groups are there.
- 医療機関ユーザデータファイル (imported in the confirm request, one transaction): the gunicorn worker serving the
  confirm is SIGKILLed; nothing of the file is there afterwards but its batch, recorded as 取込中 before the unit of
  work, which says 失敗 once stalled; importing the file again creates each account once.

Where the kill lands: on PostgreSQL the test holds a lock on the operation log, so the killed process is caught
after it inserted its documents / accounts and before their log entries (the worst moment), seen in pg_locks; on
SQLite the consumer is killed once a first group is committed, and the request while it holds the write lock.
"""
import copy
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, make_url, select, text, update

from models._types import utcnow
from models.accounts import Designation, ImportBatch, Membership, User
from models.audit import OperationLog
from models.documents import Document
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING
from models.xml_imports import XmlImportJob
from nanbyo import audit, userfile
from nanbyo.extensions import db
from nanbyo.xmlio import import_jobs, importer, vendor_kit
from nanbyo.xmlio.writer import file_bytes
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import gen_user
from tests.served import Browser, Consumer, Gunicorn, wait_for
from tests.userfile_helpers import csv_bytes, doctor_row
from tests.xmlio.test_import import world

POSTGRESQL = (TEST_DATABASE_URL or "").startswith("postgresql")
DOCUMENTS = 3000  # 12 groups (importer.GROUP): the kill lands with whole groups behind it and more to come
ROWS = 5000  # userfile.MAX_ROWS: the longest unit of work a user data file makes


def login(browser, user):
    token = browser.csrf("/login")
    response = browser.post("/login", {"login_id": user.login_id, "password": "correct-horse-battery-9",
                                       "csrf_token": token},
                            files={"key_file": (f"{user.login_id}.key", user.key_file)})
    assert response.status == 302, response.text[:500]


def scalar(query):
    db.session.expire_all()
    return db.session.execute(query).scalar()


def assert_chain_intact():
    db.session.expire_all()
    assert audit.verify()[0] == []


# --- where the kill lands ----------------------------------------------------------------------------------------

@contextmanager
def log_held():
    """PostgreSQL: hold the operation log against inserts (reads go on), so that a writer stops right before its log
    entries, with its other rows already inserted in its transaction."""
    connection = db.engine.connect()
    transaction = connection.begin()
    try:
        connection.execute(text("LOCK TABLE operation_log IN SHARE ROW EXCLUSIVE MODE"))
        yield
    finally:
        transaction.rollback()
        connection.close()


def writer_waiting_on_the_log():
    """The backend waiting to insert log entries, if its transaction has written something already (an xid)."""
    with db.engine.connect() as connection:
        return connection.execute(text(
            "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND l.relation = 'operation_log'::regclass AND a.backend_xid IS NOT NULL")).scalar()


def backend_gone(pid):
    with db.engine.connect() as connection:
        return not connection.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar()


def sqlite_write_locked():
    """SQLite: another connection holds the write lock (BEGIN IMMEDIATE cannot start at once)."""
    path = make_url(db.engine.url).database
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as e:
        assert "locked" in str(e) or "busy" in str(e), e
        return True
    finally:
        connection.close()


# --- XML import: the consumer killed ------------------------------------------------------------------------------

def many_documents(count):
    """One file of `count` documents of the world's doctor, 臨個票 and 意見書 in turn, each of its own patient."""
    samples = [vendor_kit.sample_element("nanbyo", "6"), vendor_kit.sample_element("shoman", "01_01_001")]
    elements = []
    for n in range(count):
        element = copy.deepcopy(samples[n % 2])
        element.find("patient/given_kana").text = "ハナコ" + "".join("アイウエオカキクケコ"[int(d)] for d in f"{n:06d}")
        elements.append(element)
    return file_bytes(elements)


def upload(browser, hospital, data):
    token = browser.csrf("/admin/document/import-xml/")
    response = browser.post("/admin/document/import-xml/", {"csrf_token": token, "institution": str(hospital.id)},
                            files={"files": ("batch.xml", data)})
    path = urlsplit(response.location).path
    assert response.status == 302 and path.startswith("/admin/document/import-xml/"), response.text[:500]
    return path, int(path.rstrip("/").rsplit("/", 1)[1])


def job(job_id):
    db.session.expire_all()
    return db.session.get(XmlImportJob, job_id)


def documents():
    return scalar(select(func.count()).select_from(Document))


def imported_entries():
    db.session.expire_all()
    return db.session.execute(select(OperationLog).filter_by(action="document_import")).scalars().all()


def assert_whole_groups():
    """Every document has exactly one import entry and every entry its document; only whole groups were committed."""
    ids = set(db.session.execute(select(Document.id)).scalars())
    entries = imported_entries()
    assert sorted(int(e.target_id) for e in entries) == sorted(ids)
    assert len(ids) % importer.GROUP == 0
    assert_chain_intact()
    return len(ids)


@pytest.fixture
def queue(app):
    """The task queue the servers and consumers share: PostgreSQL's tables, or SQLite's file in the instance."""
    return {"NANBYO_TASK_QUEUE_URL": app.config["SQLALCHEMY_DATABASE_URI"]} if POSTGRESQL else {}


@pytest.fixture
def server(app, queue):
    served = Gunicorn(app, workers=1, env=queue | {"NANBYO_XML_INLINE_BYTES": "1"})
    yield served
    served.stop()


def test_a_consumer_killed_during_an_xml_import_leaves_whole_groups_the_job_says_failed_and_again_imports_the_rest(
        app, server, queue):
    w = world()
    data = many_documents(DOCUMENTS)
    browser = Browser(server.port)
    login(browser, w["doctor"])
    path, job_id = upload(browser, w["hospital"], data)
    consumer = Consumer(app, env=queue)
    try:
        wait_for(lambda: documents() >= 2 * importer.GROUP, seconds=120, what="two groups committed")
        if POSTGRESQL:
            with log_held():
                pid = wait_for(writer_waiting_on_the_log, seconds=60, what="the next group waiting for its entries")
                consumer.kill()
            wait_for(lambda: backend_gone(pid), seconds=30, what="the killed consumer's connection to end")
        else:
            consumer.kill()
    finally:
        consumer.stop()
    assert job(job_id).status == JOB_RUNNING
    committed = assert_whole_groups()
    assert 2 * importer.GROUP <= committed < DOCUMENTS

    # Five minutes without progress (moved back rather than waited for): the owner's page says 失敗.
    just_short = utcnow() - import_jobs.STALLED_AFTER + timedelta(seconds=30)
    db.session.execute(update(XmlImportJob).where(XmlImportJob.id == job_id).values(progress_at=just_short))
    db.session.commit()
    assert 'class="job-running"' in browser.get(path).text
    db.session.execute(update(XmlImportJob).where(XmlImportJob.id == job_id).values(
        progress_at=utcnow() - import_jobs.STALLED_AFTER - timedelta(seconds=1)))
    db.session.commit()
    page = browser.get(path).text
    assert 'class="job-failed">失敗' in page and import_jobs.STALLED in page
    assert job(job_id).status == JOB_FAILED
    assert scalar(select(func.count()).select_from(OperationLog).filter_by(
        action="document_import_job_failed", target_id=str(job_id))) == 1
    assert not any((Path(app.config["NANBYO_IMPORT_DIR"]) / stored).exists() for _n, stored, _s in job(job_id).files)

    # The same file again: the rest is created, what was committed is updated, nothing twice.
    _path, again = upload(browser, w["hospital"], data)
    consumer = Consumer(app, env=queue)
    try:
        wait_for(lambda: job(again).status == JOB_DONE, seconds=180, every=0.2, what="the second import")
    finally:
        consumer.stop()
    assert job(again).counts == {"created": DOCUMENTS - committed, "updated": committed, "received": 0, "kept": 0,
                                 "refused": 0}
    assert documents() == DOCUMENTS
    assert scalar(select(func.count(func.distinct(Document.patient_index)))) == DOCUMENTS
    created = [e for e in imported_entries() if e.data["result"] == importer.CREATED]
    assert sorted(int(e.target_id) for e in created) == sorted(db.session.execute(select(Document.id)).scalars())
    assert_chain_intact()


# --- 医療機関ユーザデータファイル: the request's worker killed ---------------------------------------------------------

def table_counts():
    return tuple(scalar(select(func.count()).select_from(model)) for model in (User, Designation, Membership, OperationLog))


def preview(browser, data):
    token = browser.csrf("/admin/user-import/")
    response = browser.post("/admin/user-import/preview", {"csrf_token": token}, files={"file": ("doctors.csv", data)})
    assert response.status == 200 and f"新規発行 {ROWS} 件" in response.text, response.text[-2000:]
    return token


def test_a_worker_killed_during_a_user_data_file_import_leaves_nothing_and_again_creates_each_account_once(
        app, tokyo, hospital):
    clerk = gen_user("municipality_admin", municipality=tokyo)
    data = csv_bytes([doctor_row(n) for n in range(1, ROWS + 1)])
    served = Gunicorn(app, workers=1)
    try:
        browser = Browser(served.port)
        login(browser, clerk)
        token = preview(browser, data)
        before = table_counts()
        [worker] = served.workers()
        answers = []

        def confirm():
            try:
                answers.append(browser.post("/admin/user-import/confirm", {"csrf_token": token}))
            except OSError as e:  # the worker died under the request
                answers.append(e)
        request = threading.Thread(target=confirm)
        if POSTGRESQL:
            with log_held():
                request.start()
                pid = wait_for(writer_waiting_on_the_log, seconds=120, what="the accounts waiting for their entries")
                served.kill_worker(worker)
            wait_for(lambda: backend_gone(pid), seconds=30, what="the killed worker's connection to end")
        else:
            request.start()
            # Held across two looks 0.1 s apart: the confirm's unit of work, not a short write of the session's.
            wait_for(lambda: sqlite_write_locked() and not time.sleep(0.1) and sqlite_write_locked(), seconds=120,
                     every=0.01, what="the confirm holding the write lock")
            served.kill_worker(worker)
        request.join(timeout=60)
        assert len(answers) == 1 and isinstance(answers[0], OSError), answers
        assert table_counts() == before  # no account, designation, membership or log entry of the file
        assert_chain_intact()
        # The master starts a new worker; the clerk uploads the file again and confirms.
        wait_for(lambda: served.workers() and served.workers() != [worker], seconds=60, what="a new worker")
        wait_for(lambda: _answers(served), seconds=60, what="the new worker to answer")
        [killed] = db.session.execute(select(ImportBatch)).scalars().all()
        assert killed.status == "running" and killed.created_count == 0
        # Longer 取込中 than a confirmation can last (moved back rather than waited for): the history says 失敗.
        db.session.execute(update(ImportBatch).values(
            created_at=utcnow() - userfile.BATCH_STALLED_AFTER - timedelta(seconds=1)))
        db.session.commit()
        history = browser.get("/admin/user-import/").text
        assert re.search(rf'class="batch-failed"><td><a [^>]*>{killed.id}</a>.*?<td>失敗</td>', history, re.S)
        assert "この取込は失敗しました" in browser.get(f"/admin/user-import/batch/{killed.id}").text
        assert scalar(select(func.count()).select_from(OperationLog).filter_by(
            action="import_users_failed", target_id=str(killed.id))) == 1

        token = preview(browser, data)
        response = browser.post("/admin/user-import/confirm", {"csrf_token": token})
        assert response.status == 302 and "/admin/user-import/batch/" in response.location, served.errors()
    finally:
        served.stop()
    batch = db.session.execute(select(ImportBatch).filter_by(status="done")).scalar_one()
    assert batch.created_count == ROWS and db.session.get(ImportBatch, killed.id).status == "failed"
    numbers = db.session.execute(select(Designation.number).join(User).where(User.import_batch_id == batch.id)
                                 ).scalars().all()
    assert sorted(numbers) == sorted(f"13-N-{n:04d}" for n in range(1, ROWS + 1))
    assert scalar(select(func.count()).select_from(User).where(User.role == "designated_doctor")) == ROWS
    assert_chain_intact()


def _answers(served):
    try:
        return Browser(served.port).get("/login").status == 200
    except OSError:
        return False
