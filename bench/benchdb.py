"""What the benchmarks share: a database of their own on a PostgreSQL server, and a migrated app with masters."""
import os


def server_database(url, create, prefix="nanbyo_bench"):
    """Create (or drop) <prefix>_<pid> on the server `url` names; the URL of that database."""
    from sqlalchemy import create_engine, make_url, text
    name = f"{prefix}_{os.getpid()}"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def make_app(url, instance):
    """The app on `url` with its instance folder in `instance`: schema migrated, masters loaded."""
    os.environ["NANBYO_INSTANCE_PATH"] = instance
    from flask_migrate import upgrade
    from app import create_app
    from nanbyo.extensions import db
    from nanbyo.masters import load_masters
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        load_masters(app.config["NANBYO_MASTERS_DIR"])
        db.session.commit()
    return app
