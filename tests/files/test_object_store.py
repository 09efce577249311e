"""The file store (issue 15): the same operations on the local folders and on an S3 server (moto's, started by the
test run: tests/object_store.py); on S3 every object the application writes is ciphertext where it holds personal
data, private, and its errors are refusals in Japanese, not crashes."""
import io
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app
from models._types import utcnow
from models.accounts import ImportBatch
from models.scans import ScanFile
from nanbyo import files, tasks
from nanbyo.extensions import db
from nanbyo.files import storage
from tests.conftest import BASE_CONFIG
from tests.helpers import (TOKYO, csrf_token, gen_municipality, gen_scan, gen_user, log_entries, login, scan_pdf)
from tests.userfile_helpers import csv_bytes, doctor_row

PUBLIC = ("http://acs.amazonaws.com/groups/global/AllUsers",
          "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")


# --- the operations, on either store ----------------------------------------------------------------------------------

def test_the_store_keeps_what_it_is_given_and_never_replaces_it(app, file_store):
    store = files.store("imports")
    assert isinstance(store, storage.S3Store if file_store else storage.LocalStore)
    store.put("a1", b"first")
    with pytest.raises(FileExistsError):
        store.put("a1", b"second")
    assert store.read("a1") == b"first" and store.size("a1") == 5 and store.exists("a1")
    with store.open("a1") as stream:
        assert stream.read(3) == b"fir"
    with store.writer("b2.csv") as out:
        out.write(b"x" * 1000)
    assert store.read("b2.csv") == b"x" * 1000
    with pytest.raises(RuntimeError), store.writer("c3.csv") as out:
        out.write(b"half")
        raise RuntimeError("the writer stopped")
    assert not store.exists("c3.csv") and sorted(e.name for e in store.entries()) == ["a1", "b2.csv"]
    entry = next(e for e in store.entries() if e.name == "a1")
    assert entry.size == 5 and abs(entry.modified - utcnow()) < timedelta(minutes=1)
    with pytest.raises(FileNotFoundError):
        store.read("gone")
    for name in ("../a1", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            store.put(name, b"x")
    store.remove("a1", "never-there")
    assert not store.exists("a1") and [e.name for e in store.entries()] == ["b2.csv"]
    store.remove_strays({"b2.csv"}, before=utcnow() + timedelta(days=1))  # named: kept however old
    assert [e.name for e in store.entries()] == ["b2.csv"]
    store.remove_strays(set(), before=utcnow() - timedelta(days=1))  # too new to be a stray
    assert [e.name for e in store.entries()] == ["b2.csv"]
    store.remove_strays(set(), before=utcnow() + timedelta(days=1))
    assert list(store.entries()) == []
    if file_store:
        assert file_store.keys() == []
    else:
        assert os.listdir(app.config["NANBYO_IMPORT_DIR"]) == []  # no partial file left either


def test_the_local_folders_stay_the_default(app):
    for area, setting in storage.AREAS.items():
        store = files.store(area)
        assert isinstance(store, storage.LocalStore) and store.folder == storage.Path(app.config[setting])
    assert app.config["NANBYO_SCAN_DIR"] == os.path.join(app.instance_path, "scans")
    assert app.config["NANBYO_EXPORT_DIR"] == os.path.join(app.instance_path, "exports")


def test_a_store_url_that_is_not_s3_stops_the_start(app, monkeypatch):
    monkeypatch.setenv("NANBYO_FILE_STORE_URL", "https://bucket.example/prefix")
    with pytest.raises(ValueError, match="s3://"):
        create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    assert storage.parse_url("s3://bucket/a/b/") == ("bucket", "a/b/") and storage.parse_url("s3://b") == ("b", "")


# --- S3: large files, private objects, ciphertext -------------------------------------------------------------------

def test_a_large_file_goes_up_in_parts_and_stale_parts_are_aborted(app, s3_store):
    store = files.store("exports")
    big = os.urandom(1024) * (9 * 1024)  # 9 MB: above boto3's 8 MB multipart threshold
    with store.writer("big.csv") as out:
        for start in range(0, len(big), 1 << 20):
            out.write(big[start:start + (1 << 20)])
    head = s3_store.client.head_object(Bucket=s3_store.name, Key="deploy/exports/big.csv")
    assert head["ContentLength"] == len(big) and "-" in head["ETag"]  # a multipart ETag: "<md5>-<parts>"
    with store.open("big.csv") as stream:
        assert stream.read() == big
    # A worker killed in the middle of an upload leaves its parts behind.
    left = s3_store.client.create_multipart_upload(Bucket=s3_store.name, Key="deploy/exports/killed.csv")
    s3_store.client.upload_part(Bucket=s3_store.name, Key="deploy/exports/killed.csv", PartNumber=1,
                                UploadId=left["UploadId"], Body=b"x" * 100)
    assert len(s3_store.client.list_multipart_uploads(Bucket=s3_store.name)["Uploads"]) == 1
    # (moto dates every upload in 2010, so an upload too new to abort cannot be shown here.)
    store.remove_strays({"big.csv"}, before=utcnow() + timedelta(hours=1))
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.name).get("Uploads", []) == []
    assert s3_store.keys() == ["deploy/exports/big.csv"]


def test_every_object_holding_personal_data_is_ciphertext_and_private(app, s3_store, monkeypatch):
    """A scan, the files of an XML import job and a user-file preview, all waiting in the bucket: none of them shows
    the patient's or the doctor's data or a file's own header, and none is readable by anyone but the owner."""
    from tests.xmlio.test_import import two_documents, upload
    from tests.xmlio.test_import import world as import_world
    tokyo = gen_municipality(TOKYO)
    gen_scan(gen_user("municipality_user", municipality=tokyo), data=scan_pdf())
    app.config["NANBYO_XML_INLINE_BYTES"] = 100
    monkeypatch.setattr(tasks, "run_xml_import", lambda job_id: None)  # the job waits in the queue
    w = import_world()
    client = app.test_client()
    login(client, w["doctor"])
    assert upload(client, w["hospital"], [("a.xml", two_documents())]).status_code == 302
    clerk = app.test_client()
    login(clerk, gen_user("municipality_admin", municipality=tokyo))
    preview = clerk.post("/admin/user-import/preview", data={
        "csrf_token": csrf_token(clerk, "/admin/user-import/"),
        "file": (io.BytesIO(csv_bytes([doctor_row(1)])), "u.csv")}, content_type="multipart/form-data")
    assert preview.status_code == 200
    keys = s3_store.keys()
    assert [key.split("/")[1] for key in keys] == ["imports", "scans", "uploads"]
    for key in keys:
        body = s3_store.body(key)
        for plain in ("見本", "ミホン", "doc1@example.jp", "13-N-0001", "%PDF", "<documents", "<?xml"):
            assert plain.encode() not in body, (key, plain)
        grants = s3_store.client.get_object_acl(Bucket=s3_store.name, Key=key)["Grants"]
        assert [g["Permission"] for g in grants] == ["FULL_CONTROL"] and not [
            g for g in grants if g["Grantee"].get("URI") in PUBLIC]
    # The preview confirmed from the bucket (as another app server would), and then gone from it.
    confirmed = clerk.post("/admin/user-import/confirm", data={"csrf_token": csrf_token(clerk, "/admin/user-import/")})
    assert confirmed.status_code == 302 and db.session.query(ImportBatch).one().created_count == 1
    assert s3_store.keys("uploads") == []


def test_a_deleted_scan_leaves_no_object_and_another_municipality_gets_404(app, s3_store):
    from tests.helpers import OSAKA
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    clerk_user = gen_user("municipality_user", municipality=tokyo)
    scan = gen_scan(clerk_user)
    scan_id, key = scan.id, f"deploy/scans/{scan.stored_name}"
    assert s3_store.keys("scans") == [key]
    other = app.test_client()
    login(other, gen_user("municipality_admin", municipality=osaka))
    token = csrf_token(other, "/admin/scans/")
    assert other.get(f"/admin/scans/{scan_id}/download").status_code == 404
    assert other.post(f"/admin/scans/{scan_id}/delete", data={"csrf_token": token}).status_code == 404
    assert s3_store.keys("scans") == [key]
    clerk = app.test_client()
    login(clerk, clerk_user)
    assert clerk.get(f"/admin/scans/{scan_id}/download").data.startswith(b"%PDF")
    assert clerk.post(f"/admin/scans/{scan_id}/delete",
                      data={"csrf_token": csrf_token(clerk, "/admin/scans/")}).status_code == 302
    db.session.expire_all()
    assert s3_store.keys("scans") == [] and db.session.get(ScanFile, scan_id) is None


def test_expired_exports_and_strays_leave_the_bucket(app, s3_store):
    from models.exports import ExportJob
    from nanbyo import export_jobs
    app.config["NANBYO_EXPORT_INLINE_ROWS"] = 0  # every export a job
    client = app.test_client()
    login(client, gen_user("operator_admin"))
    assert client.get("/admin/operation_log/export/csv/").status_code == 302
    job = db.session.execute(select(ExportJob)).scalar_one()
    assert s3_store.keys("exports") == [f"deploy/exports/{job.file_name}"]
    export_jobs.export_store().put("left-by-a-stopped-run.csv", b"x")
    job.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert export_jobs.delete_expired(now=utcnow() + app.config["NANBYO_EXPORT_KEEP"] + timedelta(minutes=1))
    assert s3_store.keys("exports") == []


# --- S3 errors: refusals, nothing kept ----------------------------------------------------------------------------

def _unreachable(app):
    """The app pointed at an S3 endpoint where nothing listens."""
    from tests.object_store import _free_port
    app.config.update(NANBYO_FILE_STORE_URL="s3://nanbyo-test-gone/deploy",
                      NANBYO_S3_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}", NANBYO_S3_REGION="ap-northeast-1")


def test_storage_that_does_not_answer_refuses_the_upload_cleanly(app, s3_store):
    from tests.files.test_scans import PDF, upload
    tokyo = gen_municipality(TOKYO)
    clerk = app.test_client()
    login(clerk, gen_user("municipality_user", municipality=tokyo))
    _unreachable(app)
    response = upload(clerk, [("a.pdf", PDF)])
    assert response.status_code == 400 and files.STORE_UNAVAILABLE in response.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(ScanFile)).scalar() == 0
    assert log_entries("scan_upload") == []


def test_storage_that_does_not_answer_refuses_a_background_import_cleanly(app, s3_store, monkeypatch):
    from models.xml_imports import XmlImportJob
    from tests.xmlio.test_import import two_documents, upload
    from tests.xmlio.test_import import world as import_world
    app.config["NANBYO_XML_INLINE_BYTES"] = 100
    w = import_world()
    client = app.test_client()
    login(client, w["doctor"])
    _unreachable(app)
    response = upload(client, w["hospital"], [("a.xml", two_documents())])
    assert response.status_code == 302
    assert files.STORE_UNAVAILABLE in client.get(response.location).get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(XmlImportJob)).scalar() == 0
    assert log_entries("document_import_job") == []


@pytest.mark.parametrize("code, refusal", [("EntityTooLarge", files.STORE_FULL), ("QuotaExceeded", files.STORE_FULL),
                                           ("XMinioStorageFull", files.STORE_FULL),
                                           ("AccessDenied", files.STORE_UNAVAILABLE),
                                           ("NoSuchKey", None)])
def test_s3_error_codes_become_the_refusal_they_mean(code, refusal):
    from botocore.exceptions import ClientError
    with pytest.raises(OSError) as raised, storage._translated("deploy/scans/x"):
        raise ClientError({"Error": {"Code": code, "Message": "..."}}, "PutObject")
    assert files.refusal(raised.value) == refusal
    assert isinstance(raised.value, FileNotFoundError) == (code == "NoSuchKey")


def test_a_refused_upload_in_parts_is_the_same_refusal():
    """boto3 wraps an error of a multipart upload in S3UploadFailedError, raised while handling the ClientError."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError
    with pytest.raises(storage.StoreFull), storage._translated("deploy/exports/x.csv"):
        try:
            raise ClientError({"Error": {"Code": "EntityTooLarge", "Message": "..."}}, "UploadPart")
        except ClientError as e:
            raise S3UploadFailedError(f"Failed to upload: {e}")


def test_healthz_asks_the_bucket_when_the_store_is_object_storage(app, client, s3_store):
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok", "queue": "ok", "files": "ok"}
    _unreachable(app)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "ok", "queue": "ok", "files": "error"}
    assert b"127.0.0.1" not in response.data
