"""Export jobs (issue 11): above NANBYO_EXPORT_INLINE_ROWS an export becomes a job the task queue writes (tests run
Huey in immediate mode), shown on 出力ファイル to its owner alone, re-checked and scoped as the owner when it runs,
logged at every step, and deleted with its file after NANBYO_EXPORT_KEEP."""
import csv
import io
import json
import os
import re
import stat
import threading
from datetime import timedelta

import pytest
from flask_login import login_user
from huey import RedisHuey, SqliteHuey
from openpyxl import load_workbook
from sqlalchemy import select

from models._types import utcnow
from models.documents import Document
from models.exports import ExportJob
from nanbyo import export_jobs, exports, tasks
from nanbyo.extensions import db
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import OSAKA, TOKYO, gen_institution, gen_municipality, gen_user, log_entries, login
from tests.test_export_stream import HYPERLINK, bulk_documents, view_of

INLINE = 40


@pytest.fixture
def world(app):
    app.config["NANBYO_EXPORT_INLINE_ROWS"] = INLINE
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    tokyo_inst, osaka_inst = gen_institution(tokyo), gen_institution(osaka)
    doctor = gen_user("designated_doctor", institution=tokyo_inst)
    osaka_doctor = gen_user("designated_doctor", institution=osaka_inst, issuer=osaka)
    bulk_documents(60, author=doctor, institution=tokyo_inst, municipality=tokyo)
    bulk_documents(10, author=doctor, institution=tokyo_inst, municipality=tokyo, status="draft", start=100)
    bulk_documents(50, author=osaka_doctor, institution=osaka_inst, municipality=osaka, start=200)
    return {
        "tokyo": tokyo, "osaka": osaka, "tokyo_inst": tokyo_inst,
        "clerk": gen_user("municipality_user", municipality=tokyo),
        "other_clerk": gen_user("municipality_user", municipality=tokyo),
        "osaka_clerk": gen_user("municipality_user", municipality=osaka),
        "operator": gen_user("operator_admin"), "doctor": doctor,
        "tokyo_received": set(db.session.execute(select(Document.id).where(
            Document.municipality_id == tokyo.id, Document.status == "received")).scalars()),
    }


def client_of(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def only_job():
    db.session.expire_all()
    return db.session.execute(select(ExportJob)).scalar_one()


def file_rows(body, fmt):
    if fmt == "xlsx":
        book = load_workbook(io.BytesIO(body))
        return [list(row) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)]
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig" if fmt == "csv" else "cp932"))))


# --- a job instead of a stream ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "xlsx", "csv_cp932"])
def test_export_above_the_threshold_becomes_a_job(app, world, fmt, file_store):
    clerk = world["clerk"]
    client = client_of(app, clerk)
    r = client.get(f"/admin/document/export/{fmt}/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/exports/")
    job = only_job()
    assert (job.owner_id, job.endpoint, job.format, job.query_args) == (clerk.id, "document", fmt, [])
    # Immediate mode: the task ran before the redirect.
    assert (job.status, job.rows_written, job.total_rows) == ("done", 60, 60)
    if file_store:
        assert file_store.keys("exports") == [f"{file_store.prefix}/exports/{job.file_name}"]
    else:
        path = export_jobs.export_store().path(job.file_name)
        assert path.is_file() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert job.expires_at - job.finished_at == app.config["NANBYO_EXPORT_KEEP"]

    page = client.get("/admin/exports/").get_data(as_text=True)
    assert "出力ファイル" in page and "完了" in page and f"/admin/exports/{job.id}/download" in page
    assert "60件" in page and "export-jobs.js" in page
    r = client.get(f"/admin/exports/{job.id}/download")
    assert r.status_code == 200 and r.mimetype == exports.FORMATS[fmt][0].split(";")[0]
    assert r.headers["Content-Disposition"].startswith("attachment; filename=document_")
    rows = file_rows(r.data, fmt)
    assert len(rows) == 61 and {int(row[0]) for row in rows[1:]} == world["tokyo_received"]

    # The log: what was asked (format, job) before the file, then the file with its count, then the download.
    asked, made, downloaded = log_entries("export"), log_entries("export_file"), log_entries("export_download")
    assert [e.data for e in asked] == [{"format": fmt, "job": job.id}]
    assert [(e.data, e.result, e.actor_id) for e in made] == [({"format": fmt, "job": job.id, "rows": 60},
                                                               "success", clerk.id)]
    assert [(e.data, e.actor_id, e.target_type, e.target_id) for e in downloaded] == [
        ({"format": fmt, "rows": 60}, clerk.id, "export_job", str(job.id))]
    assert asked[0].seq < made[0].seq < downloaded[0].seq


def test_a_small_export_still_streams(app, world):
    view = view_of(app, "document")
    status_filter = next(i for i, f in enumerate(view._filters)
                         if f.name == "状態" and type(f).__name__ == "FilterEqual")
    client = client_of(app, world["doctor"])
    r = client.get(f"/admin/document/export/csv/?flt0_{status_filter}=draft")  # 10 of the doctor's 70: under 40
    assert r.status_code == 200 and r.data.count(b"\r\n") == 11
    assert db.session.execute(select(ExportJob)).first() is None


def test_the_job_keeps_the_lists_conditions(app, world):
    """Filters travel with the job: 60 received Tokyo documents, of which the clerk asks for the received ones
    sorted by No. ascending."""
    view = view_of(app, "document")
    status_filter = next(i for i, f in enumerate(view._filters)
                         if f.name == "状態" and type(f).__name__ == "FilterEqual")
    sort = [name for name, _label in view._list_columns].index("id")
    client = client_of(app, world["clerk"])
    query = f"flt0_{status_filter}=received&sort={sort}"
    assert client.get(f"/admin/document/export/csv/?{query}").status_code == 302
    job = only_job()
    assert job.query_args == [[f"flt0_{status_filter}", "received"], ["sort", str(sort)]]
    rows = file_rows(client.get(f"/admin/exports/{job.id}/download").data, "csv")[1:]
    assert [int(r[0]) for r in rows] == sorted(world["tokyo_received"])
    assert log_entries("export")[0].data["query"] == {f"flt0_{status_filter}": "received", "sort": str(sort)}


def test_formulas_are_neutralised_in_job_files(app, world):
    app.config["NANBYO_EXPORT_INLINE_ROWS"] = 1
    gen_institution(world["tokyo"], code="1310000025", name=HYPERLINK)
    client = client_of(app, world["operator"])
    assert client.get("/admin/institution/export/xlsx/").status_code == 302
    job = only_job()
    book = load_workbook(io.BytesIO(client.get(f"/admin/exports/{job.id}/download").data))
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert "'" + HYPERLINK in [c.value for c in cells] and not [c for c in cells if c.data_type == "f"]


# --- scope: the owner's list, rebuilt as the owner ------------------------------------------------------------------

def test_the_job_is_scoped_as_its_owner_whoever_runs_it(app, world, monkeypatch):
    monkeypatch.setattr(tasks, "run_export", lambda job_id: None)  # queued, not run yet
    client = client_of(app, world["osaka_clerk"])
    assert client.get("/admin/document/export/csv/").status_code == 302
    job = only_job()
    assert job.status == "waiting"
    # The task runs in whatever context the worker has (here: a request of the operator, who sees every row).
    with app.test_request_context("/"):
        login_user(world["operator"])
        export_jobs.run(job.id)
    job = only_job()
    rows = file_rows(export_jobs.export_store().read(job.file_name), "csv")[1:]
    osaka = set(db.session.execute(select(Document.id).where(Document.municipality_id == world["osaka"].id))
                .scalars())
    assert {int(r[0]) for r in rows} == osaka and len(osaka) == 50


# --- progress -----------------------------------------------------------------------------------------------------

def after_each_update(monkeypatch, callback):
    """Progress at every chunk of 25 rows, and `callback(job)` after each update of the job's row."""
    monkeypatch.setattr(export_jobs, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 25)
    update = export_jobs._update

    def watched(job_id, **values):
        job = update(job_id, **values)
        callback(job)
        return job
    monkeypatch.setattr(export_jobs, "_update", watched)


def test_progress_is_recorded_while_writing(app, world, monkeypatch):
    seen = []
    after_each_update(monkeypatch, lambda job: seen.append((job.status, job.rows_written, job.total_rows)))
    client_of(app, world["clerk"]).get("/admin/document/export/csv/")
    assert seen == [("running", 0, 60), ("running", 25, 60), ("running", 50, 60), ("running", 60, 60)]
    assert only_job().status == "done"


def test_the_page_shows_progress_and_refreshes_itself(app, world):
    now = utcnow()
    job = ExportJob(owner_id=world["clerk"].id, endpoint="document", format="csv", query_args=[], status="running",
                    rows_written=1234, total_rows=56789, created_at=now, expires_at=now + timedelta(hours=1))
    db.session.add(job)
    db.session.commit()
    client = client_of(app, world["clerk"])
    page = client.get("/admin/exports/").get_data(as_text=True)
    assert "作成中" in page and "1,234 / 56,789件" in page and 'data-pending="1"' in page
    assert "/download" not in page
    script = page.split("export-jobs.js")[0].rsplit("<script", 1)[1]
    assert 'nonce="' in script  # the CSP admits scripts by nonce only
    table = page.split('id="export-jobs"')[1].split("</table>")[0]
    assert not re.search(r"\son[a-z]+=", table)  # and no inline handlers
    state = json.loads(client.get("/admin/exports/status").data)["jobs"]
    assert state == [{"id": job.id, "status": "running", "status_label": "作成中", "rows": "1,234 / 56,789件",
                      "error": "", "download_url": None}]
    assert client.get(f"/admin/exports/{job.id}/download").status_code == 404  # not finished


# --- the owner alone -------------------------------------------------------------------------------------------------

def test_only_the_owner_sees_or_downloads_a_job(app, world):
    owner = client_of(app, world["clerk"])
    owner.get("/admin/document/export/csv/")
    job = only_job()
    download = f"/admin/exports/{job.id}/download"
    assert owner.get(download).status_code == 200
    missing = f"/admin/exports/{job.id + 1000}/download"
    for user in (world["other_clerk"], world["osaka_clerk"], world["operator"], world["doctor"]):
        client = client_of(app, user)
        r, r_missing = client.get(download), client.get(missing)
        assert r.status_code == r_missing.status_code == 404, user.role  # the same answer as no job at all
        assert r.get_data() == r_missing.get_data()
        assert f"/admin/exports/{job.id}/" not in client.get("/admin/exports/").get_data(as_text=True)
        assert json.loads(client.get("/admin/exports/status").data)["jobs"] == []
    anonymous = app.test_client()
    for path in (download, missing, "/admin/exports/", "/admin/exports/status"):
        r = anonymous.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path
    assert len(log_entries("export_download")) == 1  # the owner's only


def test_an_expired_job_is_gone_and_cleaned_up(app, world):
    client = client_of(app, world["clerk"])
    client.get("/admin/document/export/csv/")
    client.get("/admin/document/export/xlsx/")
    db.session.expire_all()
    old, fresh = db.session.execute(select(ExportJob).order_by(ExportJob.id)).scalars().all()
    folder = export_jobs.export_store().folder
    old_path, fresh_path = folder / old.file_name, folder / fresh.file_name
    old_id, fresh_id = old.id, fresh.id
    old.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert client.get(f"/admin/exports/{old_id}/download").status_code == 404  # expired: gone already
    assert f"/admin/exports/{old_id}/download" not in client.get("/admin/exports/").get_data(as_text=True)
    stray_old, stray_new = folder / "left-by-a-stopped-run.csv.part", folder / "being-written.csv.part"
    stray_old.write_bytes(b"x")
    stray_new.write_bytes(b"x")
    long_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(stray_old, (long_ago, long_ago))

    assert export_jobs.delete_expired() == [old_id]
    db.session.expire_all()
    assert db.session.get(ExportJob, old_id) is None and db.session.get(ExportJob, fresh_id) is not None
    assert not old_path.exists() and fresh_path.exists()
    assert not stray_old.exists() and stray_new.exists()
    entry = log_entries("export_expire")[-1]
    assert (entry.data, entry.target_type, entry.actor_id) == ({"jobs": [old_id]}, "export_job", None)
    assert export_jobs.delete_expired() == [] and len(log_entries("export_expire")) == 1


def test_the_periodic_task_cleans_up(app, world):
    client_of(app, world["clerk"]).get("/admin/document/export/csv/")
    job = only_job()
    job_id, path = job.id, export_jobs.export_store().path(job.file_name)
    job.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    tasks.delete_expired_exports()
    db.session.expire_all()
    assert db.session.get(ExportJob, job_id) is None and not path.exists()


def test_a_stalled_job_says_so_and_its_writer_keeps_nothing(app, world, monkeypatch):
    """A worker that took the job and died leaves it 作成中 with no progress: after STALLED_AFTER it is 失敗 (told on
    the owner's page at once, by the periodic task for everyone), and a writer that comes back writes nothing."""
    clerk = world["clerk"]
    job = _queued_job(app, clerk, monkeypatch)
    export_jobs._update(job.id, status="running", started_at=utcnow(), total_rows=60)
    assert export_jobs.fail_stalled() == []  # progress just now
    later = utcnow() + export_jobs.STALLED_AFTER + timedelta(seconds=1)
    assert export_jobs.fail_stalled(owner_id=world["other_clerk"].id, now=later) == []
    job = only_job()
    job.progress_at = utcnow() - export_jobs.STALLED_AFTER - timedelta(seconds=1)
    db.session.commit()
    page = client_of(app, clerk).get("/admin/exports/").get_data(as_text=True)
    assert "job-failed" in page and export_jobs.STALLED in page
    job = only_job()
    assert (job.status, job.error, job.file_name) == ("failed", export_jobs.STALLED, None)
    entries = log_entries("export_file")
    assert [(e.result, e.actor_id, e.data) for e in entries] == [("failure", clerk.id, {"format": "csv", "job": job.id})]
    assert tasks.delete_expired_exports() is None and len(log_entries("export_file")) == 1  # given up once
    with pytest.raises(export_jobs.JobGone):
        export_jobs._update(job.id, rows_written=10)
    assert export_jobs._finish(job.id, clerk, result="success", rows_written=60, file_name="late.csv") is False
    assert only_job().status == "failed" and len(log_entries("export_file")) == 1


def test_a_job_that_is_still_writing_is_not_given_up(app, world, monkeypatch):
    given_up = []
    # The clean-up running at every progress update of the writer.
    after_each_update(monkeypatch, lambda job: given_up.extend(export_jobs.fail_stalled()))
    client_of(app, world["clerk"]).get("/admin/document/export/csv/")
    assert given_up == [] and only_job().status == "done"


# --- the owner's permission, checked again when the job runs --------------------------------------------------------

def _queued_job(app, user, monkeypatch, path="/admin/document/export/csv/"):
    monkeypatch.setattr(tasks, "run_export", lambda job_id: None)
    assert client_of(app, user).get(path).status_code == 302
    return only_job()


@pytest.mark.parametrize("change", ["disabled", "locked", "role"])
def test_the_owners_permission_is_checked_again_when_the_job_runs(app, world, monkeypatch, change):
    if change == "role":
        # Only the operator's 管理者 exports the operation log: a change to 一般ユーザ takes that away.
        app.config["NANBYO_EXPORT_INLINE_ROWS"] = 0
        owner = world["operator"]
        job = _queued_job(app, owner, monkeypatch, "/admin/operation_log/export/csv/")
        owner.role = "operator_user"
    else:
        owner = world["clerk"]
        job = _queued_job(app, owner, monkeypatch)
        owner.status = change
    db.session.commit()
    export_jobs.run(job.id)
    job = only_job()
    assert (job.status, job.file_name, job.rows_written) == ("failed", None, 0)
    assert "作成しませんでした" in job.error
    entry = log_entries("export_file")[-1]
    assert (entry.result, entry.actor_id, entry.data) == ("denied", owner.id, {"format": job.format, "job": job.id})
    assert list(export_jobs.export_store().entries()) == []


def test_a_job_that_fails_says_so(app, world, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")
        yield  # a generator, like the real one
    monkeypatch.setattr(exports, "csv_stream", broken)
    client = client_of(app, world["clerk"])
    client.get("/admin/document/export/csv/")
    job = only_job()
    assert job.status == "failed" and job.file_name is None and "作成できませんでした" in job.error
    assert log_entries("export_file")[-1].result == "failure"
    page = client.get("/admin/exports/").get_data(as_text=True)
    assert "job-failed" in page and "失敗" in page and "作成できませんでした" in page
    assert list(export_jobs.export_store().entries()) == []  # no partial file left


def test_a_job_is_run_once(app, world, monkeypatch):
    job = _queued_job(app, world["clerk"], monkeypatch)
    export_jobs.run(job.id)
    export_jobs.run(job.id)  # a repeated delivery of the task
    assert len(log_entries("export_file")) == 1 and len(list(export_jobs.export_store().entries())) == 1


# --- the queue -------------------------------------------------------------------------------------------------------

def test_the_queue_is_chosen_by_its_url(tmp_path, monkeypatch):
    monkeypatch.setenv("NANBYO_INSTANCE_PATH", str(tmp_path))
    queue = tasks.make_huey("")
    assert isinstance(queue, SqliteHuey) and queue.storage.filename == str(tmp_path / "tasks.db")
    assert not (tmp_path / "tasks.db").exists()  # nothing is created before the queue is used

    @queue.task()
    def double(x):
        return x * 2
    double(21)
    assert (tmp_path / "tasks.db").exists() and queue.pending_count() == 1
    assert queue.execute(queue.dequeue()) == 42

    redis = tasks.make_huey("redis://127.0.0.1:6399/0")  # no connection is made until it is used
    assert isinstance(redis, RedisHuey)
    with pytest.raises(ValueError):
        tasks.make_huey("mysql://somewhere/db")


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL queue: runs with NANBYO_TEST_DATABASE_URL")
def test_the_postgresql_queue_keeps_its_tables_apart(database_template):
    queue = tasks.make_huey(database_template["url"])
    try:
        tables = {model._meta.table_name for model in (queue.storage.KV, queue.storage.Task,
                                                        queue.storage.Schedule, queue.storage.Counter)}
        assert tables == {"huey_kv", "huey_task", "huey_schedule", "huey_counter"}

        @queue.task()
        def double(x):
            return x * 2
        double(4)
        assert queue.pending_count() == 1 and queue.execute(queue.dequeue()) == 8
    finally:
        queue.storage.drop_tables()
        queue.storage.close()


def test_tests_run_tasks_immediately(app):
    assert tasks.huey.immediate


def test_a_consumer_process_creates_its_app_once(monkeypatch):
    import app as app_module
    made = []
    monkeypatch.setattr(app_module, "create_app", lambda: made.append(1) or object())
    monkeypatch.setattr(tasks, "_worker_app", None)
    apps = []
    # A thread has no app context: as in a consumer's worker.
    workers = [threading.Thread(target=lambda: apps.append(tasks._app())) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(made) == 1 and len(apps) == 3 and len({id(a) for a in apps}) == 1


def test_a_consumer_makes_its_app_as_it_starts(monkeypatch):
    """huey runs each on_startup hook in every worker before its first task: the app is ready when a job comes."""
    import app as app_module
    made = []
    monkeypatch.setattr(app_module, "create_app", lambda: made.append(1) or object())
    monkeypatch.setattr(tasks, "_worker_app", None)
    hooks = list(tasks.huey._startup.values())  # huey's registry of on_startup hooks
    worker = threading.Thread(target=lambda: [hook() for hook in hooks])
    worker.start()
    worker.join()
    assert made == [1] and tasks._worker_app is not None
