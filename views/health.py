"""/healthz: whether this server can serve, for a load balancer or monitoring. It checks the database, the task
queue and, when the file store is object storage (NANBYO_FILE_STORE_URL), its bucket, and says only ok or error for each (the reason goes to the server log, never to the caller); no login, no
operation log entry (it is polled every few seconds), nothing changed."""
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from nanbyo import files, tasks
from nanbyo.extensions import db

bp = Blueprint("health", __name__)


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:
        current_app.logger.exception("healthz: the database does not answer")
        return False
    finally:
        db.session.rollback()


def _queue_ok() -> bool:
    try:
        tasks.huey.storage.queue_size()
        return True
    except Exception:
        current_app.logger.exception("healthz: the task queue's storage does not answer")
        return False


def _files_ok() -> bool:
    try:
        files.store("scans").ping()
        return True
    except Exception:
        current_app.logger.exception("healthz: the file store does not answer")
        return False


@bp.route("/healthz")
def healthz():
    checks = {"database": _database_ok(), "queue": _queue_ok()}
    if current_app.config["NANBYO_FILE_STORE_URL"]:  # local folders: nothing that could stop answering
        checks["files"] = _files_ok()
    healthy = all(checks.values())
    body = {"status": "ok" if healthy else "error", **{name: "ok" if ok else "error" for name, ok in checks.items()}}
    return jsonify(body), 200 if healthy else 503
