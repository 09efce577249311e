"""Two app servers on one PostgreSQL (issue 15): nothing that must be shared lives in one process's memory.

Two gunicorn masters on two ports (as two machines behind a load balancer would run them: same database, same
secret key and instance folder), a task queue kept in PostgreSQL and a real huey_consumer. A lockout and an
access-key lookup limit counted across both, a logout on one refusing the cookie on the other, and a background job
queued through one and followed on the other show that sessions, failure counts and jobs live in the database, not
in a process. Two things processes do hold of their own are checked too: the data keys (read again after rotate-key
in another process) and the secrets and queue tables made on first use (one of each, however many processes start
at once).
"""
import multiprocessing
import secrets
import threading
from datetime import date
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, func, make_url, select, text

from models.accounts import User
from models.audit import OperationLog
from models.documents import Document
from models.exports import JOB_DONE
from models.xml_imports import XmlImportJob
from nanbyo import tasks
from nanbyo.documents import ACCESS_KEY_ALPHABET
from nanbyo.extensions import db
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import PASSWORD, gen_institution, gen_municipality, gen_user
from tests.served import Browser, Consumer, Gunicorn, wait_for
from tests.xmlio.test_import import two_documents, world

postgresql_only = pytest.mark.skipif(not (TEST_DATABASE_URL or "").startswith("postgresql"),
                                     reason="two servers share a PostgreSQL database")
WRONG_PASSWORD = "Wrong-Guess-Pw-4821"


def queue_url(app):
    return app.config["SQLALCHEMY_DATABASE_URI"]


@pytest.fixture
def servers(app):
    """Servers A and B, one worker each (so each is one process), every XML upload a background job, the queue in
    the test database."""
    env = {"NANBYO_TASK_QUEUE_URL": queue_url(app), "NANBYO_XML_INLINE_BYTES": "1"}
    started = []
    try:
        for name in ("server-a", "server-b"):
            started.append(Gunicorn(app, workers=1, env=env, name=name))
        yield started
    finally:
        for server in started:
            server.stop()


def login(browser, user, password=PASSWORD):
    token = browser.csrf("/login")
    return browser.post("/login", {"login_id": user.login_id, "password": password, "csrf_token": token},
                        files={"key_file": (f"{user.login_id}.key", user.key_file)})


def on(server, browser):
    """The same browser (its cookies) talking to another server."""
    other = Browser(server.port)
    other.cookies = dict(browser.cookies)
    return other


def fresh_user(user):
    db.session.expire_all()
    return db.session.get(User, user.id)


@postgresql_only
def test_failed_logins_on_both_servers_count_together_and_both_see_the_lock(app, servers):
    a, b = servers
    user = gen_user("designated_doctor", institution=gen_institution())
    threshold = app.config["NANBYO_LOCKOUT_THRESHOLD"]
    # Alternating: neither server alone sees `threshold` failures.
    for n in range(threshold - 1):
        response = login(Browser((a, b)[n % 2].port), user, WRONG_PASSWORD)
        assert response.status == 200, (a.errors(), b.errors())
    assert fresh_user(user).status == "active" and fresh_user(user).failed_logins == threshold - 1
    assert login(Browser(b.port), user, WRONG_PASSWORD).status == 200
    assert fresh_user(user).status == "locked"
    for server in (a, b):  # the owner, with both factors right, is refused and told on either server
        response = login(Browser(server.port), user)
        assert response.status == 200 and "ロックされています" in response.text
        assert fresh_user(user).status == "locked"


@postgresql_only
def test_wrong_access_keys_on_both_servers_count_towards_one_limit(app, servers):
    a, b = servers
    clerk = gen_user("municipality_user", municipality=gen_municipality())
    browser = Browser(a.port)
    assert login(browser, clerk).status == 302
    token = browser.csrf("/admin/document/lookup/")
    limit = app.config["NANBYO_KEY_LOOKUP_MAX_FAILURES"]

    def lookup(server):
        key = "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(8))
        response = on(server, browser).post("/admin/document/lookup/", {"access_key": key, "csrf_token": token})
        assert response.status == 200, (a.errors(), b.errors())
        return "照会の回数が上限を超えました" in response.text
    assert [lookup((a, b)[n % 2]) for n in range(limit)] == [False] * limit  # neither server alone sees `limit`
    assert lookup(a) and lookup(b)
    db.session.expire_all()
    results = db.session.execute(select(OperationLog.result).filter_by(action="key_lookup", actor_id=clerk.id)
                                 .order_by(OperationLog.seq)).scalars().all()
    assert results == ["failure"] * limit + ["throttled"] * 2


@postgresql_only
def test_a_session_works_on_both_servers_and_a_logout_on_one_ends_it_on_the_other(app, servers):
    a, b = servers
    user = gen_user("designated_doctor", institution=gen_institution())
    browser = Browser(a.port)
    assert login(browser, user).status == 302
    on_b = on(b, browser)
    assert on_b.get("/admin/account/").status == 200  # the session started on A is good on B
    kept = dict(browser.cookies)  # the cookie as it was before the logout (a copy someone kept)
    token = browser.csrf("/admin/account/")
    assert browser.post("/logout", {"csrf_token": token}).status == 302
    replay = Browser(b.port)
    replay.cookies = kept
    response = replay.get("/admin/account/")
    assert response.status == 302 and "/login" in response.location  # refused on B: revoked in the database
    assert Browser(a.port).get("/login").status == 200


@postgresql_only
def test_a_job_queued_through_one_server_runs_in_the_consumer_and_is_followed_on_the_other(app, servers):
    a, b = servers
    w = world()
    browser = Browser(a.port)
    assert login(browser, w["doctor"]).status == 302
    token = browser.csrf("/admin/document/import-xml/")
    response = browser.post("/admin/document/import-xml/", {"csrf_token": token, "institution": str(w["hospital"].id)},
                            files={"files": ("a.xml", two_documents())})
    path = urlsplit(response.location).path
    assert response.status == 302 and path.startswith("/admin/document/import-xml/"), a.errors()
    job_id = int(path.rstrip("/").rsplit("/", 1)[1])
    # Queued in PostgreSQL, not run by the server that took it: B shows it waiting.
    page = on(b, browser).get(path)
    assert page.status == 200 and 'class="job-waiting">待機中' in page.text and count() == 0
    consumer = Consumer(app, env={"NANBYO_TASK_QUEUE_URL": queue_url(app)})
    try:
        def done():
            db.session.expire_all()
            return db.session.get(XmlImportJob, job_id).status == JOB_DONE
        wait_for(done, seconds=60, every=0.2, what="the job to finish")
    except AssertionError:
        raise AssertionError(consumer.errors())
    finally:
        consumer.stop()
    page = on(b, browser).get(path)
    assert page.status == 200 and 'class="job-done">完了' in page.text and "書類 2 件" in page.text
    assert page.text.count('class="import-created"') == 2 and count() == 2
    assert f'href="{path}"' in on(b, browser).get("/admin/document/import-xml/").text  # in B's list of them too


def count():
    return db.session.execute(select(func.count()).select_from(Document)).scalar()


def test_a_running_server_takes_the_new_keys_of_rotate_key_run_by_another_process(app, runner):
    """The data keys are read once per process; rotate-key (another process) replaces them and drops the old ones.
    A server still writing under the old key would leave rows nobody can read once it restarts (on SQLite too: one
    server's workers and the command are already several processes)."""
    from models.documents import Document
    from nanbyo import documents

    w = world()
    served = Gunicorn(app, workers=1)
    try:
        browser = Browser(served.port)
        assert login(browser, w["doctor"]).status == 302

        def import_inline(data):
            token = browser.csrf("/admin/document/import-xml/")
            page = browser.post("/admin/document/import-xml/", {"csrf_token": token,
                                                                "institution": str(w["hospital"].id)},
                                files={"files": ("a.xml", data)})
            assert page.status == 200 and page.text.count('class="import-created"') == 2, served.errors()
        import_inline(two_documents())  # the server has read the keys
        result = runner.invoke(args=["nanbyo", "rotate-key"])
        assert result.exit_code == 0, result.output
        import_inline(two_documents(**{"patient/given_kana": "ジロウ"}))
    finally:
        served.stop()
    app.extensions.pop("nanbyo_keyring", None)  # as a new process: only the keys the file has now
    docs = db.session.execute(select(Document).order_by(Document.id)).scalars().all()
    assert len(docs) == 4 and [documents.patient_of(d)["given_kana"] for d in docs][2:] == ["ジロウ", "ジロウ"]
    for doc in docs[2:]:  # indexed under the new index key: the patient search finds them
        patient = documents.patient_of(doc)
        assert doc.id in db.session.execute(select(Document.id).where(documents.patient_criterion(
            patient["family_kana"] + patient["given_kana"], date.fromisoformat(patient["birth_date"])))).scalars()


@postgresql_only
def test_processes_starting_side_by_side_on_a_fresh_database_all_get_the_queue(database_template):
    """At a first start every gunicorn worker and the consumer create the queue's tables at the same moment; none
    may fail to boot. Threads stand in for the processes (each opens a connection of its own)."""
    server = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    name = f"{make_url(database_template['url']).database}_queue"
    url = make_url(database_template["url"]).set(database=name).render_as_string(hide_password=False)
    try:
        for _round in range(2):
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            barrier, failures, queues = threading.Barrier(8), [], []

            def start():
                barrier.wait()
                try:
                    queues.append(tasks.make_huey(url))
                except Exception as e:  # what a worker failing to boot would show
                    failures.append(repr(e))
            threads = [threading.Thread(target=start) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            for queue in queues:
                queue.storage.database.close()
            assert failures == [] and len(queues) == 8
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _side_by_side(make, count=8):
    """`make()` in `count` forked processes released at the same moment: what each returned, or its error."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(count), context.Queue()

    def run():
        barrier.wait()
        try:
            results.put(("ok", make()))
        except Exception as e:  # what a worker failing to boot, or a failed request, would show
            results.put(("error", repr(e)))
    processes = [context.Process(target=run) for _ in range(count)]
    try:
        for process in processes:
            process.start()
        return [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def test_secrets_made_on_first_use_by_processes_side_by_side_are_one_and_whole(app, tmp_path):
    """The secret key, the data keys and the log's signing key are made by whichever process needs them first. At a
    first start several do at once: every one must end up with the same secret, none failing on the file another
    made or reading it half written."""
    from cryptography.hazmat.primitives import serialization

    from nanbyo import audit_chain, config, crypto

    for round_ in range(3):
        folder = tmp_path / f"round-{round_}"
        app.instance_path = str(folder)  # what the three read their files' places from
        app.config["NANBYO_DATA_KEYS_FILE"] = str(folder / "data-keys.json")
        app.config["NANBYO_AUDIT_SIGNING_KEY_FILE"] = str(folder / "audit-signing.key")
        makers = {
            "secret key": lambda: config._instance_secret(app),
            "data keys": lambda: crypto.KeyRing.load(crypto.keys_path(app)).to_json(),
            "signing key": lambda: audit_chain.signing_key(app).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        }
        for what, make in makers.items():
            results = _side_by_side(make)
            assert [status for status, _value in results] == ["ok"] * 8, (what, results)
            assert len({repr(value) for _status, value in results}) == 1, what
