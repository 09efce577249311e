"""Fixtures in the style of Flask's tutorial: app, client, runner; one database per test.

The schema comes from the real Alembic migrations, once per session. On SQLite every test gets a copy of the
migrated template file; on PostgreSQL (NANBYO_TEST_DATABASE_URL) the tables are emptied between tests.
"""
import os
import shutil

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from app import create_app
from nanbyo.extensions import db
from nanbyo.masters import load_masters

TEST_DATABASE_URL = os.environ.get("NANBYO_TEST_DATABASE_URL")
BASE_CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret", "NANBYO_ARGON2_PROFILE": "fast"}
# Tables the masters fill; everything else is emptied between PostgreSQL tests.
MASTER_TABLES = {"nanbyo_category", "nanbyo_disease", "shoman_group", "shoman_disease", "alembic_version"}


def _migrate(uri, instance):
    app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": uri})
    with app.app_context():
        upgrade()
        load_masters(app.config["NANBYO_MASTERS_DIR"])
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance-template")
    os.environ["NANBYO_INSTANCE_PATH"] = str(instance)
    if TEST_DATABASE_URL:
        engine = create_engine(TEST_DATABASE_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        _migrate(TEST_DATABASE_URL, instance)
        with engine.connect() as conn:
            municipalities = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM municipality"))]
        yield {"engine": engine, "municipalities": municipalities}
        engine.dispose()
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


@pytest.fixture
def app(database_template, tmp_path, monkeypatch):
    monkeypatch.setenv("NANBYO_INSTANCE_PATH", str(tmp_path))
    if TEST_DATABASE_URL:
        _reset_postgresql(database_template)
        uri = TEST_DATABASE_URL
    else:
        shutil.copy(database_template["path"], tmp_path / "test.db")
        uri = f"sqlite:///{tmp_path / 'test.db'}"
    app = create_app(BASE_CONFIG | {"SQLALCHEMY_DATABASE_URI": uri})
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
