"""スキャンファイル (issue 13): a municipality uploads scans of paper forms, encrypted at rest, its own alone; the
operator downloads them (one or a ZIP), which marks them ダウンロード済 and is logged, or sends one back with a reason;
hostile files are refused with nothing stored."""
import io
import os
import zipfile

import pytest
from sqlalchemy import func, select

from models.scans import ScanFile
from nanbyo.extensions import db
from nanbyo.files.scans import scan_store
from tests.helpers import (OSAKA, TOKYO, csrf_token, gen_institution, gen_municipality, gen_user, log_entries,
                           login)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n" + b"scanned page " * 200 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
TIFF = b"II*\x00" + b"\x00" * 64
META = {"kind": "nanbyo", "application_kind": "new", "reception_no": "R2026-00001", "disease_code": "6",
        "reference": "整理-1"}


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    return {"tokyo": tokyo, "osaka": osaka,
            "clerk": gen_user("municipality_user", municipality=tokyo),
            "osaka_clerk": gen_user("municipality_admin", municipality=osaka),
            "operator": gen_user("operator_user"),
            "doctor": gen_user("designated_doctor", institution=gen_institution(tokyo))}


def client_of(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def upload(client, files, **meta):
    data = {"csrf_token": csrf_token(client, "/admin/scans/"), **(META | meta),
            "files": [(io.BytesIO(body), name) for name, body in files]}
    return client.post("/admin/scans/upload", data=data, content_type="multipart/form-data")


def stored():
    return db.session.execute(select(func.count()).select_from(ScanFile)).scalar()


def scan_files(app):
    return sorted(entry.name for entry in scan_store().entries())


def test_a_municipality_uploads_scans_kept_encrypted(app, world, file_store):
    clerk = client_of(app, world["clerk"])
    response = upload(clerk, [("../../etc/申請書1.pdf", PDF), ("/scans/page2.png", PNG), ("p3.JPG", JPEG),
                              ("p4.tif", TIFF)])
    assert response.status_code == 302
    scans = db.session.execute(select(ScanFile).order_by(ScanFile.id)).scalars().all()
    assert [(s.original_name, s.file_type, s.status) for s in scans] == [
        ("申請書1.pdf", "pdf", "waiting"), ("page2.png", "png", "waiting"), ("p3.JPG", "jpeg", "waiting"),
        ("p4.tif", "tiff", "waiting")]
    assert scans[0].municipality_id == world["tokyo"].id and scans[0].reception_no == "R2026-00001"
    assert scan_files(app) == sorted(s.stored_name for s in scans)
    raw = file_store.body(f"{file_store.prefix}/scans/{scans[0].stored_name}") if file_store else \
        open(os.path.join(app.config["NANBYO_SCAN_DIR"], scans[0].stored_name), "rb").read()
    assert b"scanned page" not in raw and b"%PDF" not in raw  # the stored bytes are not the plaintext
    if not file_store:
        assert oct(os.stat(os.path.join(app.config["NANBYO_SCAN_DIR"], scans[0].stored_name)).st_mode & 0o777) \
            == "0o600"
    assert len(log_entries("scan_upload")) == 4
    page = clerk.get("/admin/scans/").get_data(as_text=True)
    assert "申請書1.pdf" in page and "未ダウンロード" in page and "臨床調査個人票・新規" in page
    own = clerk.get(f"/admin/scans/{scans[0].id}/download")
    assert own.data == PDF and own.headers["Content-Disposition"].startswith("attachment")
    assert own.headers["X-Content-Type-Options"] == "nosniff" and own.mimetype == "application/pdf"
    db.session.expire_all()
    assert db.session.get(ScanFile, scans[0].id).status == "waiting"  # the municipality's own look changes nothing


def test_the_name_shown_is_the_files_own_name():
    from nanbyo.files.scans import shown_name
    assert shown_name("C:\\scans\\page2.png") == "page2.png" and shown_name("../../etc/passwd") == "passwd"
    assert shown_name("a\x00b\x1f.pdf") == "ab.pdf" and shown_name("") == "scan"


@pytest.mark.parametrize("name, body, message", [
    ("page.pdf", b"<html><body><script>alert(1)</script></body></html>", "中身が PDF"),
    ("polyglot.pdf", b"%PDF-1.4\n<html><script>alert(document.cookie)</script></html>", "HTML・SVG"),
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "拡張子"),
    ("image.png", PDF, "拡張子（.png）と中身（PDF）"),
    ("scan.pdf.exe", PDF, "拡張子"),
    ("nul\x00.pdf", b"MZ\x90\x00", "中身が PDF"),
    ("empty.pdf", b"", "空です"),
])
def test_hostile_files_are_refused_and_nothing_is_stored(app, world, name, body, message):
    clerk = client_of(app, world["clerk"])
    response = upload(clerk, [("ok.pdf", PDF), (name, body)])
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page, page[:2000]
    assert stored() == 0 and scan_files(app) == [] and log_entries("scan_upload") == []


def test_size_and_count_limits(app, world):
    app.config["NANBYO_SCAN_MAX_BYTES"] = 1000
    clerk = client_of(app, world["clerk"])
    big = upload(clerk, [("big.pdf", PDF + b"x" * 1000)])
    assert big.status_code == 400 and "大きすぎます" in big.get_data(as_text=True)
    many = upload(clerk, [(f"p{n}.png", PNG) for n in range(21)])
    assert many.status_code == 400 and "20 件まで" in many.get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    over = upload(clerk, [("a.pdf", PDF * 10)])
    assert over.status_code == 413 and "ファイルが大きすぎます" in over.get_data(as_text=True)
    assert stored() == 0


def test_metadata_is_checked(app, world):
    clerk = client_of(app, world["clerk"])
    response = upload(clerk, [("a.pdf", PDF)], kind="shoman", application_kind="mild", reception_no="")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "申請区分" in page and "受付番号を入力してください" in page
    assert stored() == 0


def test_others_get_404_and_the_operator_takes_them(app, world, file_store):
    clerk = client_of(app, world["clerk"])
    upload(clerk, [("a.pdf", PDF), ("b.png", PNG)])
    a, b = db.session.execute(select(ScanFile).order_by(ScanFile.id)).scalars().all()
    osaka = client_of(app, world["osaka_clerk"])
    token = csrf_token(osaka, "/admin/scans/")
    assert osaka.get(f"/admin/scans/{a.id}/download").status_code == 404
    assert osaka.post(f"/admin/scans/{a.id}/delete", data={"csrf_token": token}).status_code == 404
    zipped = osaka.post("/admin/scans/zip", data={"csrf_token": token, "ids": [a.id, b.id]})
    assert zipped.status_code == 302 and "a.pdf" not in osaka.get("/admin/scans/").get_data(as_text=True)
    doctor = client_of(app, world["doctor"])
    for path in ("/admin/scans/", f"/admin/scans/{a.id}/download"):
        assert doctor.get(path).status_code == 403
    assert log_entries("scan_download") == []

    operator = client_of(app, world["operator"])
    token = csrf_token(operator, "/admin/scans/")
    page = operator.get("/admin/scans/").get_data(as_text=True)
    assert "a.pdf" in page and "scan-upload" not in page  # the operator uploads nothing
    archive = operator.post("/admin/scans/zip", data={"csrf_token": token, "ids": [a.id, b.id, 999]})
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        assert {n: z.read(n) for n in z.namelist()} == {f"{a.id}_R2026-00001_a.pdf": PDF,
                                                          f"{b.id}_R2026-00001_b.png": PNG}
    db.session.expire_all()
    assert {s.status for s in db.session.execute(select(ScanFile)).scalars()} == {"downloaded"}
    assert [e.target_id for e in log_entries("scan_download")] == [str(a.id), str(b.id)]
    # Taken by the operator: the municipality can no longer delete it.
    denied = clerk.post(f"/admin/scans/{a.id}/delete", data={"csrf_token": csrf_token(clerk, "/admin/scans/")},
                        follow_redirects=True)
    assert "削除できません" in denied.get_data(as_text=True) and stored() == 2

    # Sent back with a reason the municipality reads; then the municipality may delete it, file and all.
    assert operator.post(f"/admin/scans/{a.id}/return", data={"csrf_token": token, "reason": " "}).status_code == 302
    db.session.expire_all()
    assert db.session.get(ScanFile, a.id).status == "downloaded"  # no reason, no send-back
    operator.post(f"/admin/scans/{a.id}/return", data={"csrf_token": token, "reason": "2枚目が読めません"})
    assert "2枚目が読めません" in clerk.get("/admin/scans/").get_data(as_text=True)
    stored_name = db.session.get(ScanFile, a.id).stored_name
    clerk.post(f"/admin/scans/{a.id}/delete", data={"csrf_token": csrf_token(clerk, "/admin/scans/")})
    assert stored() == 1 and stored_name not in scan_files(app) and len(scan_files(app)) == 1
    assert log_entries("scan_return")[0].data == {"reason": "2枚目が読めません"}
    assert len(log_entries("scan_delete")) == 1


def test_only_the_operator_sends_back_and_only_the_municipality_uploads(app, world):
    clerk = client_of(app, world["clerk"])
    upload(clerk, [("a.pdf", PDF)])
    scan = db.session.execute(select(ScanFile)).scalar_one()
    token = csrf_token(clerk, "/admin/scans/")
    assert clerk.post(f"/admin/scans/{scan.id}/return", data={"csrf_token": token, "reason": "x"}).status_code == 403
    operator = client_of(app, world["operator"])
    assert upload(operator, [("b.pdf", PDF)]).status_code == 403
    assert operator.post(f"/admin/scans/{scan.id}/delete",
                         data={"csrf_token": csrf_token(operator, "/admin/scans/")}).status_code == 403
    assert stored() == 1


@pytest.mark.parametrize("role", ["institution_staff", "designated_doctor", "manager"])
def test_institutions_have_no_scans(app, world, role):
    clerk = client_of(app, world["clerk"])
    upload(clerk, [("a.pdf", PDF)])
    scan = db.session.execute(select(ScanFile)).scalar_one()
    institution = gen_institution(world["tokyo"])
    user = gen_user("designated_doctor", institution=institution, manager=True) if role == "manager" else \
        gen_user(role, institution=institution)
    client = client_of(app, user)
    token = csrf_token(client, "/admin/account/")
    assert client.get("/admin/scans/").status_code == 403
    assert client.get(f"/admin/scans/{scan.id}/download").status_code == 403
    assert client.get(f"/admin/scans/{scan.id}/page/1.png").status_code == 403
    assert client.post("/admin/scans/zip", data={"csrf_token": token, "ids": [scan.id]}).status_code == 403
    assert log_entries("scan_download") == [] and log_entries("scan_view") == []


def test_pages_are_shown_as_fresh_png_to_the_municipality_and_the_operator(app, world):
    from PIL import Image
    from tests.helpers import scan_pdf
    clerk = client_of(app, world["clerk"])
    upload(clerk, [("two.pdf", scan_pdf(pages=2)), ("fake.pdf", PDF)])
    two, fake = db.session.execute(select(ScanFile).order_by(ScanFile.id)).scalars().all()
    for user in ("clerk", "operator"):
        client = clerk if user == "clerk" else client_of(app, world["operator"])
        page = client.get(f"/admin/scans/{two.id}/page/2.png")
        assert page.status_code == 200 and page.mimetype == "image/png" and page.data.startswith(b"\x89PNG")
        assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Content-Type-Options"] == "nosniff"
        assert Image.open(io.BytesIO(page.data)).width <= 1400
        assert client.get(f"/admin/scans/{two.id}/page/3.png").status_code == 404
    unreadable = clerk.get(f"/admin/scans/{fake.id}/page/1.png")
    assert unreadable.status_code == 404 and "表示できません" in unreadable.get_data(as_text=True)
    assert client_of(app, world["osaka_clerk"]).get(f"/admin/scans/{two.id}/page/1.png").status_code == 404
    assert [(e.target_id, e.data) for e in log_entries("scan_view")] == [(str(two.id), {"page": 2})] * 2


def test_a_scan_made_a_document_is_not_sent_back(app, world):
    from nanbyo import database
    from nanbyo.files import scans
    from tests.helpers import gen_document, gen_scan
    doc, scan = gen_document(world["doctor"]), gen_scan(world["clerk"])
    database.begin_write()
    scan.document_id = doc.id
    db.session.commit()
    assert "差し戻せません" in scans.send_back(world["operator"], scan, "読めません")
    db.session.rollback()
    assert db.session.get(ScanFile, scan.id).status == "waiting" and log_entries("scan_return") == []


def test_a_full_file_store_refuses_the_upload_whole_and_keeps_nothing(app, world, monkeypatch):
    import errno
    from nanbyo import files
    real, calls = files.open_private, []

    def filling(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)
    monkeypatch.setattr("nanbyo.files.storage.open_private", filling)
    clerk = client_of(app, world["clerk"])
    response = upload(clerk, [("a.pdf", PDF), ("b.png", PNG)])
    assert response.status_code == 400 and files.STORE_FULL in response.get_data(as_text=True)
    assert stored() == 0 and scan_files(app) == [] and log_entries("scan_upload") == []
    monkeypatch.undo()
    assert upload(clerk, [("a.pdf", PDF)]).status_code == 302 and stored() == 1  # room again: it works
