"""Upgrades (issue 15): a database made by the first migration, holding a municipality, an institution, a doctor and
a clerk, upgraded one release at a time to the newest keeps its rows, and the upgraded deployment works: the masters
load, the doctor logs in and writes a document, the clerk sees it received, the log chain verifies."""
import re
from datetime import datetime, timezone

import pytest

from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import event, func, select, text

from app import create_app
from models.accounts import User
from models.documents import Document
from nanbyo import audit_chain, auth
from nanbyo.extensions import db
from nanbyo.masters import load_masters
from tests.conftest import BASE_CONFIG, IsolatedClient
from tests.helpers import PASSWORD, gen_document, login
from tests.test_backup import empty_database  # noqa: F401 (a fixture: a database without tables)


def releases(app) -> list[str]:
    """Every migration, oldest first."""
    with app.app_context():
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def first_schema_data(connection):
    """Rows as the first release wrote them (its columns only; ids from the database, as the app's inserts)."""
    now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    insert = lambda sql, **values: connection.execute(text(sql + " RETURNING id"), values).scalar()  # noqa: E731
    tokyo = insert("INSERT INTO municipality (code, name, prefecture_no, kind) "
                   "VALUES ('130001', '東京都', '13', 'prefecture')")
    hospital = insert("INSERT INTO institution (code, name, address, municipality_id) "
                      "VALUES ('1310000017', '東京見本病院', '東京都府中市見本町1-1', :tokyo)", tokyo=tokyo)
    users = {}
    for login_id, role, municipality in (("old-doctor", "designated_doctor", None),
                                         ("old-clerk", "municipality_user", tokyo)):
        users[login_id] = insert(
            "INSERT INTO user_account (login_id, name, name_kana, email, role, status, failed_logins, "
            "password_hash, must_change_password, password_changed_at, municipality_id, issuing_municipality_id, "
            "created_at) VALUES (:login, :name, 'ミホン', :email, :role, 'active', 0, :hash, false, :now, "
            ":municipality, :tokyo, :now)",
            login=login_id, name=f"見本 {login_id}", email=f"{login_id}@example.jp", role=role,
            hash=auth.hash_password(PASSWORD), now=now, municipality=municipality, tokyo=tokyo)
    insert("INSERT INTO designation (user_id, kind, number, valid_from, valid_until) "
           "VALUES (:user, 'nanbyo', '13-N-0001', '2026-04-01', '2031-03-31')", user=users["old-doctor"])
    insert("INSERT INTO membership (user_id, institution_id, kind, is_manager, department) "
           "VALUES (:user, :hospital, 'primary', true, '内科')", user=users["old-doctor"], hospital=hospital)


def test_the_first_schema_with_data_upgrades_release_by_release_and_works(empty_database):  # noqa: F811
    app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": empty_database})
    app.test_client_class = IsolatedClient
    revisions = releases(app)
    with app.app_context():
        upgrade(revision=revisions[0])
        with db.engine.begin() as connection:
            first_schema_data(connection)
        for revision in revisions[1:]:
            upgrade(revision=revision)
        assert db.session.execute(text("SELECT version_num FROM alembic_version")).scalar() == revisions[-1]
        load_masters(app.config["NANBYO_MASTERS_DIR"])
        db.session.commit()
        doctor = db.session.execute(select(User).filter_by(login_id="old-doctor")).scalar_one()
        clerk = db.session.execute(select(User).filter_by(login_id="old-clerk")).scalar_one()
        assert [m.institution.code for m in doctor.memberships] == ["1310000017"]
        assert doctor.memberships[0].is_manager and doctor.designations[0].number == "13-N-0001"
        doctor.key_file = auth.issue_key_file(doctor)
        clerk.key_file = auth.issue_key_file(clerk)
        db.session.commit()
        client = app.test_client()
        assert login(client, doctor).status_code == 302
        assert client.get("/admin/document/").status_code == 200
        doc = gen_document(doctor, status="received")
        town = app.test_client()
        assert login(town, clerk).status_code == 302
        assert town.get(f"/admin/document/details/?id={doc.id}").status_code == 200
        assert db.session.execute(select(func.count()).select_from(Document)).scalar() == 1
        assert audit_chain.verify_chain(full=True).problems == []
        db.session.remove()
        db.engine.dispose()


NATIONAL_SIZE = {"document", "operation_log", "user_account", "institution"}


def test_indexes_on_tables_in_use_are_built_concurrently_on_postgresql(empty_database):  # noqa: F811
    """An upgrade of a deployment with a million documents must not stop the writes while an index builds: every
    index a migration adds to a table of national size (documents, operation log, accounts, institutions) that an
    earlier migration made is built CONCURRENTLY (PostgreSQL). Small tables (designations, scans) need not, nor the
    index of a column the same migration adds (its ALTER TABLE … ADD COLUMN locks the table anyway)."""
    if not empty_database.startswith("postgresql"):
        pytest.skip("CONCURRENTLY is PostgreSQL's")
    app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": empty_database})
    blocking = []
    with app.app_context():
        for revision in releases(app):
            created, statements = set(), []
            listener = lambda conn, cursor, sql, *args: statements.append(" ".join(sql.split()))  # noqa: E731
            event.listen(db.engine, "before_cursor_execute", listener)
            try:
                upgrade(revision=revision)
            finally:
                event.remove(db.engine, "before_cursor_execute", listener)
            for sql in statements:
                if match := re.match(r"CREATE TABLE (\w+)|ALTER TABLE (\w+) ADD COLUMN", sql):
                    created.add(match[1] or match[2])
            for sql in statements:
                match = re.match(r"CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?(\w+) ON (\w+)", sql)
                if match and not match[1] and match[3] in NATIONAL_SIZE and match[3] not in created:
                    blocking.append((revision, match[2]))
        db.session.remove()
        db.engine.dispose()
    assert blocking == [], "\n".join(map(str, blocking))
