"""Backup and restore (issue 15): a backup of a deployment with users, documents, corrections, scans and log entries
is restored into an empty one and every table and file compares equal; the log chain verifies; the wrong key file,
a damaged backup and a deployment that is not empty are refused with nothing written; generations are kept."""
import os
from datetime import datetime, timedelta, timezone

import pytest
from flask import current_app
from sqlalchemy import create_engine, inspect, make_url, select, text

from app import create_app
from models.documents import Document
from nanbyo import audit_chain, backup, crypto, database, documents, files
from nanbyo.extensions import db
from tests.conftest import BASE_CONFIG
from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_scan, gen_user


def world():
    tokyo = gen_municipality(TOKYO)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo))
    clerk = gen_user("municipality_user", municipality=tokyo)
    doc = gen_document(doctor, status="received")
    database.begin_write()
    doc = db.session.get(Document, doc.id)
    documents.save_review(doc, {"review_result": "approved", "valid_from": "2026-04-01",
                                "valid_until": "2027-03-31", "research_consent": "1"}, clerk)
    db.session.commit()
    gen_document(doctor)
    return gen_scan(clerk), gen_scan(clerk, kind="shoman")


def snapshot(engine) -> dict:
    """Every table's rows, in primary-key order."""
    with engine.connect() as connection:
        return {table.name: [tuple(row) for row in connection.execute(
            select(table).order_by(*table.primary_key.columns))] for table in db.metadata.sorted_tables}


def scan_files() -> dict:
    """The scans in the current app's file store, by name."""
    store = files.store("scans")
    return {entry.name: store.read(entry.name) for entry in store.entries()}


@pytest.fixture
def empty_database(app, tmp_path):
    """The URL of a database without tables, on the server the tests use."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"nanbyo_restore_{os.getpid()}"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def second_deployment(url, tmp_path, keys_file=None, bucket=None):
    """Another deployment on the database `url`: its own scan folder, or its own prefix of the test's bucket."""
    config = BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": url, "NANBYO_SCAN_DIR": str(tmp_path / "restored-scans"),
                            "NANBYO_DATA_KEYS_FILE": str(keys_file or tmp_path / "other-keys.json")}
    if bucket:
        config |= {key: value for key, value in current_app.config.items() if key.startswith("NANBYO_S3_")}
        config["NANBYO_FILE_STORE_URL"] = f"s3://{bucket.name}/restored"
    return create_app(config)


def test_backup_then_restore_into_an_empty_deployment_brings_back_every_row_and_file(app, tmp_path,
                                                                                    empty_database, file_store):
    world()
    before, scans_before = snapshot(db.engine), scan_files()
    folder = backup.backup(tmp_path / "backups")
    assert len(scans_before) == 2 and all(not data.startswith(b"%PDF") for data in scans_before.values())
    assert {p.name: p.read_bytes() for p in (folder / "scans").iterdir()} == scans_before
    restored = second_deployment(empty_database, tmp_path, keys_file=crypto.keys_path(app), bucket=file_store)
    with restored.app_context():
        manifest = backup.restore(folder)
        assert snapshot(db.engine) == before
        assert scan_files() == scans_before
        if file_store:  # put back into the restored deployment's own place in the bucket
            assert file_store.keys() == sorted([f"deploy/scans/{name}" for name in scans_before] +
                                                 [f"restored/scans/{name}" for name in scans_before])
        assert audit_chain.verify_chain(full=True).problems == []
        doc = db.session.execute(select(Document).where(Document.status == "reviewed")).scalar_one()
        assert documents.patient_of(doc)["family_name"] == "見本"  # readable with the key file kept apart
        db.session.remove()
        db.engine.dispose()
    assert manifest["database"] == db.engine.dialect.name and manifest["keys"]


def test_the_wrong_key_file_a_damaged_backup_and_a_full_database_are_refused(app, tmp_path, empty_database):
    world()
    folder = backup.backup(tmp_path / "backups")
    stranger = second_deployment(empty_database, tmp_path)  # its own, new key file
    with stranger.app_context():
        with pytest.raises(backup.BackupError, match="この鍵ファイル"):
            backup.restore(folder)
        assert inspect(db.engine).get_table_names() == []  # nothing written
        db.engine.dispose()
    with pytest.raises(backup.BackupError, match="空ではありません"):
        backup.restore(folder)  # into the deployment it came from
    damaged = next((folder / "scans").iterdir())
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"x")
    with pytest.raises(backup.BackupError, match="チェックサム"):
        backup.restore(folder)


def test_three_generations_are_kept(app, tmp_path):
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    made = [backup.backup(tmp_path / "backups", now=start + timedelta(days=n)) for n in range(4)]
    assert backup.generations(tmp_path / "backups") == made[1:]
    assert not made[0].exists()


def test_the_commands_back_up_and_log_it(app, runner, tmp_path):
    result = runner.invoke(args=["nanbyo", "backup", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    from tests.helpers import log_entries
    assert log_entries("backup")[-1].data["keep"] == 3
    refused = runner.invoke(args=["nanbyo", "restore", str(tmp_path / "backups")])
    assert refused.exit_code == 1 and "空ではありません" in refused.output
