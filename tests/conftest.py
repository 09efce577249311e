"""Fixtures in the style of Flask's tutorial: app, client, runner; one database per test.

The schema comes from the real Alembic migrations, once per session. On SQLite every test gets a copy of the
migrated template file; on PostgreSQL (NANBYO_TEST_DATABASE_URL names the server) the run creates its own database
and empties its tables between tests.
"""
import contextvars
import os
import shutil

import pytest
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text

from app import create_app
from nanbyo.extensions import db
from nanbyo.masters import load_masters

# Shared fixtures of the user-data-file tests (tokyo, hospital) and of the file store on object storage.
pytest_plugins = ["tests.userfile_helpers", "tests.object_store"]

TEST_DATABASE_URL = os.environ.get("NANBYO_TEST_DATABASE_URL")
BASE_CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret", "NANBYO_ARGON2_PROFILE": "fast"}
# Tables the masters fill; everything else is emptied between PostgreSQL tests. A test that changes the masters asks
# for `restore_masters`, which puts them back from the template afterwards.
DISEASE_MASTERS = ("nanbyo_category", "nanbyo_disease", "shoman_group", "shoman_disease")
MASTER_TABLES = {*DISEASE_MASTERS, "alembic_version"}


def _migrate(uri, instance):
    app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": uri})
    with app.app_context():
        upgrade()
        load_masters(app.config["NANBYO_MASTERS_DIR"])
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance-template")
    os.environ["NANBYO_INSTANCE_PATH"] = str(instance)
    if TEST_DATABASE_URL:
        # A database of its own per run, so parallel runs on one server never meet.
        server = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        name = f"nanbyo_test_{os.getpid()}"
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url)
        _migrate(url, instance)
        with engine.connect() as conn:
            municipalities = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM municipality"))]
            masters = {t: [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {t}"))]
                       for t in DISEASE_MASTERS}
        yield {"engine": engine, "url": url, "municipalities": municipalities, "masters": masters}
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
        return
    path = instance / "template.db"
    _migrate(f"sqlite:///{path}", instance)
    yield {"path": path}


def _reset_postgresql(template):
    engine = template["engine"]
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")) if r[0] not in MASTER_TABLES]
        # replica role: the operation log's append-only triggers stay in force for the app, not for cleanup.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO municipality (id, code, name, prefecture_no, kind) "
                          "VALUES (:id, :code, :name, :prefecture_no, :kind)"), template["municipalities"])
        conn.execute(text("SELECT setval('municipality_id_seq', (SELECT max(id) FROM municipality))"))


def _insert_rows(conn, table, rows):
    if rows:
        columns = list(rows[0])
        conn.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) "
                          f"VALUES ({', '.join(':' + c for c in columns)})"), rows)
    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                      f"(SELECT coalesce(max(id), 1) FROM {table}))"))


@pytest.fixture
def restore_masters(app, database_template):
    """For a test that loads changed masters: on PostgreSQL (where the masters are kept between tests) they are put
    back as the template has them; on SQLite every test has a fresh copy anyway."""
    yield
    if not TEST_DATABASE_URL:
        return
    db.session.remove()  # the test's transaction would hold the tables TRUNCATE must lock
    with database_template["engine"].begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(DISEASE_MASTERS)} CASCADE"))
        for table in DISEASE_MASTERS:
            _insert_rows(conn, table, database_template["masters"][table])


class IsolatedClient(FlaskClient):
    """Each request runs as in production: its own app context, so its own `g` and database session.

    Without this, a request reuses the app context the test pushed, and `g` (Flask-Login's user, Flask-WTF's
    token) and the SQLAlchemy session would leak from one request into the next. The body is read inside that
    context too (buffered), as a server reads a streamed response (stream_with_context) in the request's thread.
    """

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def app(database_template, tmp_path, monkeypatch):
    monkeypatch.setenv("NANBYO_INSTANCE_PATH", str(tmp_path))
    if TEST_DATABASE_URL:
        _reset_postgresql(database_template)
        uri = database_template["url"]
    else:
        shutil.copy(database_template["path"], tmp_path / "test.db")
        uri = f"sqlite:///{tmp_path / 'test.db'}"
    app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": uri})
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
