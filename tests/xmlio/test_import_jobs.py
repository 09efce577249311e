"""XML imports too large for a request (issue 12, part 4): imported by the task queue (Huey in immediate mode in the
tests), the uploaded files waiting encrypted, the progress and the report shown to the uploader alone, a job that
stops said so, and nothing duplicated when the files are imported again."""
import io
import os
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from models._types import utcnow
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING, JOB_WAITING
from models.xml_imports import XmlImportJob
from nanbyo import tasks
from nanbyo.extensions import db
from nanbyo.xmlio import import_jobs, importer, vendor_kit
from nanbyo.xmlio.writer import file_bytes
from tests.data.hostile.make import zipped
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user, log_entries, login
from tests.xmlio.test_import import DAY, count, two_documents, upload, world


@pytest.fixture
def w(app, monkeypatch):
    """The import world, every upload above 100 bytes a background job, the samples' day as today."""
    app.config["NANBYO_XML_INLINE_BYTES"] = 100
    monkeypatch.setattr("models._types.today_jst", lambda: DAY)
    monkeypatch.setattr("nanbyo.xmlio.importer.today_jst", lambda: DAY)
    return world()


def only_job():
    db.session.expire_all()
    return db.session.execute(select(XmlImportJob)).scalar_one()


def stored_files(app):
    return sorted(entry.name for entry in import_jobs.import_store().entries())


def a_zip(files=3):
    """A ZIP of `files` XML files, two documents each, different patients (each file its own 名（カナ）)."""
    entries = {}
    for n in range(files):
        entries[f"batch/{n}.xml"] = two_documents(**{"patient/given_kana": "ハナコ" + "ア" * n})
    return zipped(list(entries.items()))


def test_a_large_upload_is_imported_in_the_background_and_reported_to_its_owner(app, client, w, file_store):
    login(client, w["doctor"])
    response = upload(client, w["hospital"], [("batch.zip", a_zip())])
    job = only_job()
    assert response.status_code == 302 and response.location.endswith(f"/admin/document/import-xml/{job.id}/")
    assert job.status == JOB_DONE and job.files_total == 3 and job.documents_done == 6
    assert job.counts == {"created": 6, "updated": 0, "received": 0, "kept": 0, "refused": 0} and count() == 6
    assert stored_files(app) == []  # the uploaded files go when the job ends
    page = client.get(response.location).get_data(as_text=True)
    assert "完了" in page and page.count('class="import-created"') == 6 and "ファイル 3 / 3" in page
    report = client.get(f"/admin/document/import-xml/{job.id}/report.xlsx")
    rows = list(load_workbook(io.BytesIO(report.data)).active.iter_rows(values_only=True))
    assert report.status_code == 200 and [r[3] for r in rows[1:]] == ["作成（下書き）"] * 6
    assert 'href="/admin/document/import-xml/%d/"' % job.id in client.get("/admin/document/import-xml/").get_data(
        as_text=True)
    accepted = log_entries("document_import_job")
    assert len(accepted) == 1 and accepted[0].data["files"] == ["batch.zip"] and accepted[0].target_id == str(job.id)
    assert len(log_entries("document_import")) == 6 and len(log_entries("document_import_batch")) == 1


def test_the_waiting_files_are_encrypted_and_only_the_job_reads_them(app, client, w, monkeypatch, file_store):
    monkeypatch.setattr(tasks, "run_xml_import", lambda job_id: None)  # the queue holds it
    login(client, w["doctor"])
    data = two_documents()
    upload(client, w["hospital"], [("a.xml", data)])
    job = only_job()
    (stored,) = stored_files(app)
    assert stored == job.files[0][1] and job.files[0][0] == "a.xml" and job.status == JOB_WAITING
    on_disk = file_store.body(f"{file_store.prefix}/imports/{stored}") if file_store else \
        open(os.path.join(app.config["NANBYO_IMPORT_DIR"], stored), "rb").read()
    assert "ミホン".encode() not in on_disk and b"<documents" not in on_disk and len(on_disk) > len(data)
    if not file_store:
        assert oct(os.stat(os.path.join(app.config["NANBYO_IMPORT_DIR"], stored)).st_mode & 0o777) == "0o600"
    page = client.get(f"/admin/document/import-xml/{job.id}/").get_data(as_text=True)
    assert "待機中" in page and 'data-pending="1"' in page and "import-job.js" in page
    assert client.get(f"/admin/document/import-xml/{job.id}/report.xlsx").status_code == 404  # no report yet
    import_jobs.run(job.id)
    assert only_job().status == JOB_DONE and count() == 2 and stored_files(app) == []


def test_no_one_else_sees_a_job_or_its_report(app, w, monkeypatch):
    owner = app.test_client()
    login(owner, w["doctor"])
    upload(owner, w["hospital"], [("a.xml", two_documents())])
    job = only_job()
    tokyo = w["hospital"].municipality
    others = [w["colleague"], w["staff"], gen_user("institution_staff", institution=gen_institution(tokyo)),
              gen_user("municipality_admin", municipality=tokyo), gen_user("operator_admin")]
    for other in others:
        client = app.test_client()
        login(client, other)
        for path in (f"/admin/document/import-xml/{job.id}/", f"/admin/document/import-xml/{job.id}/report.xlsx"):
            assert client.get(path).status_code in (403, 404), (other.role, path)
        assert f"/import-xml/{job.id}/" not in client.get("/admin/document/import-xml/").get_data(as_text=True)
    # An expired job is gone for its owner too.
    job.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert owner.get(f"/admin/document/import-xml/{job.id}/").status_code == 404


def test_progress_is_written_as_the_files_are_imported(app, client, w, monkeypatch):
    """Progress is written when a group of documents is committed (here every 2) and after a file with nothing
    left uncommitted."""
    monkeypatch.setattr(import_jobs, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(importer, "GROUP", 2)
    seen = []
    update = import_jobs._update
    monkeypatch.setattr(import_jobs, "_update", lambda job_id, **values: (seen.append(values), update(job_id, **values)))
    login(client, w["doctor"])
    upload(client, w["hospital"], [("batch.zip", a_zip(3))])
    progress = [(v["files_done"], v["documents_done"]) for v in seen if "files_done" in v]
    assert seen[0]["status"] == JOB_RUNNING and seen[0]["files_total"] == 3
    assert progress == [(1, 2), (2, 4), (3, 6)]


def test_an_owner_no_longer_allowed_gets_nothing_imported(app, client, w, monkeypatch):
    monkeypatch.setattr(tasks, "run_xml_import", lambda job_id: None)
    login(client, w["doctor"])
    upload(client, w["hospital"], [("a.xml", two_documents())])
    job = only_job()
    w["doctor"].memberships[0].institution_id = gen_institution(w["hospital"].municipality).id  # moved away
    db.session.commit()
    import_jobs.run(job.id)
    job = only_job()
    assert job.status == JOB_FAILED and job.error == import_jobs.DENIED and count() == 0 and stored_files(app) == []
    assert log_entries("document_import_job_failed")[0].result == "failure"


def test_a_job_that_fails_half_way_keeps_what_it_imported_and_the_files_again_duplicate_nothing(app, client, w,
                                                                                                   monkeypatch):
    real = importer._import_one
    calls = []

    def breaks_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the worker fell over")
        return real(*args)

    monkeypatch.setattr(importer, "_import_one", breaks_on_the_third)
    login(client, w["doctor"])
    upload(client, w["hospital"], [("batch.zip", a_zip(3))])
    job = only_job()
    assert job.status == JOB_FAILED and job.error == import_jobs.FAILED and count() == 2
    assert job.counts["created"] == 2 and stored_files(app) == []
    page = client.get(f"/admin/document/import-xml/{job.id}/").get_data(as_text=True)
    assert "失敗" in page and page.count('class="import-created"') == 2
    monkeypatch.setattr(importer, "_import_one", real)
    upload(client, w["hospital"], [("batch.zip", a_zip(3))])
    again = db.session.execute(select(XmlImportJob).order_by(XmlImportJob.id.desc())).scalars().first()
    assert again.status == JOB_DONE and again.counts == {"created": 4, "updated": 2, "received": 0, "kept": 0, "refused": 0}
    assert count() == 6


def test_a_job_whose_worker_stopped_says_failed(app, client, w, monkeypatch):
    monkeypatch.setattr(tasks, "run_xml_import", lambda job_id: None)
    login(client, w["doctor"])
    upload(client, w["hospital"], [("a.xml", two_documents())])
    job = only_job()
    job.status, job.started_at = JOB_RUNNING, utcnow() - timedelta(minutes=4)
    job.progress_at = job.started_at
    db.session.commit()
    assert import_jobs.fail_stalled() == []  # 4 minutes: still going
    job.progress_at = utcnow() - import_jobs.STALLED_AFTER - timedelta(seconds=1)
    job.all_or_nothing = True
    db.session.commit()
    assert import_jobs.fail_stalled() == []  # all or nothing writes its progress only at the end
    job.all_or_nothing = False
    db.session.commit()
    page = client.get(f"/admin/document/import-xml/{job.id}/").get_data(as_text=True)  # the owner is told at once
    assert "失敗" in page and import_jobs.STALLED in page
    assert only_job().status == JOB_FAILED and stored_files(app) == []
    import_jobs.run(job.id)  # a late worker does nothing
    assert count() == 0


def test_a_refused_queue_says_failed(app, client, w, monkeypatch):
    def down(job_id):
        raise ConnectionError("queue down")

    monkeypatch.setattr(tasks, "run_xml_import", down)
    login(client, w["doctor"])
    response = upload(client, w["hospital"], [("a.xml", two_documents())])
    job = only_job()
    assert response.status_code == 302 and job.status == JOB_FAILED and stored_files(app) == []


def test_expired_jobs_and_stray_files_are_deleted(app, client, w, monkeypatch, file_store):
    monkeypatch.setattr(tasks, "run_xml_import", lambda job_id: None)
    login(client, w["doctor"])
    upload(client, w["hospital"], [("a.xml", two_documents())])
    job = only_job()
    import_jobs.import_store().put("left-by-a-crash", b"x")
    later = utcnow() + app.config["NANBYO_IMPORT_KEEP"] + timedelta(hours=1)
    job.expires_at = later + timedelta(hours=1)  # the job is kept; the stray is older than the keep time by then
    db.session.commit()
    assert import_jobs.delete_expired() == [] and len(stored_files(app)) == 2  # nothing old enough yet
    assert import_jobs.delete_expired(now=later) == [] and stored_files(app) == [job.files[0][1]]
    job.expires_at = utcnow() - timedelta(seconds=1)
    job_id = job.id
    db.session.commit()
    assert import_jobs.delete_expired() == [job_id]
    assert db.session.execute(select(func.count()).select_from(XmlImportJob)).scalar() == 0
    assert stored_files(app) == [] and log_entries("document_import_job_expire")[0].data == {"jobs": [job_id]}


def test_all_or_nothing_in_the_background(app, client, w):
    bad = vendor_kit.sample_element("nanbyo", "6")
    bad.find("patient/sex").text = "F"
    login(client, w["doctor"])
    upload(client, w["hospital"], [("a.xml", two_documents()), ("b.xml", file_bytes([bad]))], all_or_nothing=True)
    job = only_job()
    assert job.status == JOB_DONE and job.all_or_nothing and count() == 0
    assert job.counts == {"created": 0, "updated": 0, "received": 0, "kept": 0, "refused": 3}


def test_the_cli_shows_its_progress(app, runner, tmp_path, w):
    (tmp_path / "batch.zip").write_bytes(a_zip(3))
    result = runner.invoke(args=["nanbyo", "import-xml", str(tmp_path / "batch.zip"), "--institution",
                                 w["hospital"].code, "--as", w["doctor"].login_id])
    assert result.exit_code == 0, result.output
    assert "取込中: ファイル 3 / 3・書類 6 件" in result.stderr and count() == 6


def test_a_municipality_user_cannot_be_the_cli_importer(app, runner, tmp_path, w):
    clerk = gen_user("municipality_admin", municipality=gen_municipality(TOKYO))
    (tmp_path / "a.xml").write_bytes(two_documents())
    result = runner.invoke(args=["nanbyo", "import-xml", str(tmp_path / "a.xml"), "--institution",
                                 w["hospital"].code, "--as", clerk.login_id])
    assert result.exit_code == 1 and count() == 0


def test_a_full_file_store_refuses_a_background_import_and_keeps_nothing(app, client, w, monkeypatch):
    import errno
    from nanbyo import files

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("nanbyo.files.storage.open_private", full)
    login(client, w["doctor"])
    response = upload(client, w["hospital"], [("batch.zip", a_zip())])
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert files.STORE_FULL in page
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(XmlImportJob)).scalar() == 0
    assert stored_files(app) == [] and count() == 0 and log_entries("document_import_job") == []
