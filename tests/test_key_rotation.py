"""Key rotation (`nanbyo rotate-key`) rewrites everything encrypted under the old keys, on either file store —
documents and corrections (tests/test_documents.py), held forms, scans, XML import jobs' waiting files and reports,
user-file previews — and drops the old keys: a new process (the key file read again) reads every one of them."""
import json

from werkzeug.datastructures import MultiDict

from models.xml_imports import XmlImportJob
from nanbyo import crypto, held_forms, userfile
from nanbyo.extensions import db
from nanbyo.files import scans
from nanbyo.xmlio import import_jobs
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_scan, gen_user, log_entries


def key_of(blob) -> str:
    return crypto.keyring().key_id_of(bytes(blob))


def test_rotation_rewrites_every_encrypted_thing_and_a_new_process_reads_them(app, runner, file_store):
    tokyo = gen_municipality(TOKYO)
    clerk = gen_user("municipality_user", municipality=tokyo)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo))
    scan = gen_scan(clerk)
    scan_bytes = scans.content(scan)
    assert held_forms.hold(clerk.id, "/admin/document/edit/", MultiDict([("family_name", "見本")]))
    waiting = import_jobs.create(doctor, doctor.memberships[0].institution, [("a.xml", b"<documents/>")], False)
    db.session.commit()
    done = import_jobs.create(doctor, doctor.memberships[0].institution, [("b.xml", b"<documents/>")], False)
    db.session.commit()
    import_jobs.run(done.id)
    report = import_jobs.report(db.session.get(XmlImportJob, done.id))
    uploads = userfile.files.store("uploads")
    uploads.put(userfile.preview_name("tok1"), crypto.keyring().encrypt(b"row,data", userfile.preview_aad("tok1")))
    old = crypto.keyring().active
    stored = {"scan": scans.scan_store().read(scan.stored_name),
              "job": import_jobs.import_store().read(waiting.files[0][1])}

    result = runner.invoke(args=["nanbyo", "rotate-key"])
    assert result.exit_code == 0, result.output
    assert "スキャンファイル 1 件" in result.output
    ring = json.loads(crypto.keys_path(app).read_text())
    assert list(ring["keys"]) == [ring["active"]] and ring["active"] != old
    app.extensions.pop("nanbyo_keyring", None)  # as a new process: the key file read again
    db.session.expire_all()

    assert scans.content(scan) == scan_bytes
    assert key_of(scans.scan_store().read(scan.stored_name)) == ring["active"] != key_of(stored["scan"])
    job = db.session.get(XmlImportJob, waiting.id)
    assert [data for _name, data in import_jobs._uploads(job)] == [b"<documents/>"]
    assert key_of(import_jobs.import_store().read(waiting.files[0][1])) == ring["active"]
    assert import_jobs.report(db.session.get(XmlImportJob, done.id)) == report
    assert crypto.keyring().decrypt(uploads.read(userfile.preview_name("tok1")), userfile.preview_aad("tok1")) == \
        b"row,data"
    assert held_forms.take(clerk, "/admin/document/edit/") == MultiDict([("family_name", "見本")])
    entry = log_entries("rotate_key")[-1]
    assert {k: entry.data[k] for k in ("scans", "held_forms", "import_files", "import_reports", "previews")} == {
        "scans": 1, "held_forms": 1, "import_files": 1, "import_reports": 1, "previews": 1}


def test_a_scan_deleted_during_the_rotation_does_not_come_back(app, file_store, monkeypatch):
    clerk = gen_user("municipality_user", municipality=gen_municipality(TOKYO))
    scan = gen_scan(clerk)
    name = scan.stored_name
    ring = crypto.keyring()
    ring.begin_rotation()
    real_replace = type(scans.scan_store()).replace

    def deleted_meanwhile(store, stored_name, data):
        # The clerk deletes the scan (row and file) after the rotation read it, before it writes it back.
        assert scans.delete(clerk, db.session.get(type(scan), scan.id)) is None
        real_replace(store, stored_name, data)
    monkeypatch.setattr(type(scans.scan_store()), "replace", deleted_meanwhile)
    assert scans.reencrypt(ring) == 1
    assert not scans.scan_store().exists(name)
