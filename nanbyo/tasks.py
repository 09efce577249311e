"""The task queue (Huey): background export jobs, XML import jobs and their clean-up.

Where the queue is kept, from NANBYO_TASK_QUEUE_URL:
- unset: a SQLite file, `tasks.db` in the instance folder (NANBYO_INSTANCE_PATH, else `instance/` beside app.py);
- `redis://…`: Redis;
- `postgresql://…` (or `postgresql+psycopg://…`): PostgreSQL through peewee (tables huey_kv, huey_task,
  huey_schedule, huey_counter, which may share the application's database).
The consumer runs the tasks: `huey_consumer nanbyo.tasks.huey -w 2 -m 1` (-m: an idle consumer looks at a polled
queue, SQLite or PostgreSQL, at least every second, rather than huey's default 10). Each task runs in an app context
of an app created once per consumer process, when it starts (create_app(), configured by the environment like the web
app). Tests (app.testing) run tasks at once, in memory, in the app that enqueued them.
"""
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from huey import RedisHuey, SqliteHuey, crontab
from huey.storage import SqliteStorage

from nanbyo import export_jobs, userfile
from nanbyo.xmlio import import_jobs

NAME = "nanbyo"
ROOT = Path(__file__).resolve().parent.parent
CLEAN_UP_EVERY = crontab(minute="*/5")  # stalled jobs, expired export files and import reports
QUEUE_DDL_LOCK = 724002  # pg_advisory_xact_lock key: one process at a time creates the queue's tables


class _SqliteStorage(SqliteStorage):
    """Tables made on first use, so that importing this module (a test, a CLI command) creates no file."""

    def _create_connection(self):
        Path(self.filename).parent.mkdir(parents=True, exist_ok=True)
        connection = super()._create_connection()
        for statement in self.ddl:
            connection.execute(statement)
        return connection


def _sql_huey(url):
    from huey.contrib.sql_huey import SqlHuey, SqlStorage
    from peewee import ModelIndex

    class PrefixedSqlStorage(SqlStorage):
        """huey_* tables: the queue may live in the application's own database without taking common names."""

        def create_models(self):
            kv, schedule, task, counter = super().create_models()
            for model in (kv, schedule, task, counter):
                model._meta.set_table_name(f"huey_{model._meta.table_name}")
            # huey's index of the task table names the table it was made for: made again for the new name.
            task._meta.indexes = [index for index in task._meta.indexes if not isinstance(index, ModelIndex)]
            task.add_index(task.priority.desc(), task.id)
            return kv, schedule, task, counter

        def create_tables(self):
            # Every web worker and the consumer create the tables as they start: at a first start, side by side,
            # CREATE TABLE IF NOT EXISTS of two sessions collides (a duplicate pg_type row) and a worker fails to
            # boot. Under the lock the second one finds the tables made.
            with self.database:
                self.database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (QUEUE_DDL_LOCK,))
                self.database.create_tables([self.KV, self.Schedule, self.Task, self.Counter])

    # peewee names the driver by the scheme alone (it uses psycopg 3 when psycopg2 is absent).
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    return SqlHuey(NAME, storage_class=PrefixedSqlStorage, database=url, results=False)


def make_huey(url=None):
    """The queue NANBYO_TASK_QUEUE_URL names (see the module's docstring)."""
    url = os.environ.get("NANBYO_TASK_QUEUE_URL", "") if url is None else url
    scheme = urlsplit(url).scheme
    if not url:
        instance = Path(os.environ.get("NANBYO_INSTANCE_PATH") or ROOT / "instance")
        return SqliteHuey(NAME, filename=str(instance / "tasks.db"), storage_class=_SqliteStorage,
                          create_tables=False, results=False)
    if scheme in ("redis", "rediss", "unix"):
        return RedisHuey(NAME, url=url, results=False)
    if scheme.startswith("postgres"):
        return _sql_huey(url)
    raise ValueError(f"NANBYO_TASK_QUEUE_URL: redis://… または postgresql://… を指定してください（{scheme}: は使えません）")


huey = make_huey()

_worker_app = None
_worker_app_lock = threading.Lock()


def init_app(app):
    """Tests run tasks immediately (in memory); so does an app configured with NANBYO_TASKS_IMMEDIATE."""
    if app.config.get("NANBYO_TASKS_IMMEDIATE", app.testing):
        huey.immediate = True


def _app():
    """The app a task runs in: the enqueuing one in immediate mode, else one created once per consumer process."""
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()
    with _worker_app_lock:
        if _worker_app is None:
            from app import create_app
            _worker_app = create_app()
        return _worker_app


@huey.on_startup()
def _ready():
    """The consumer's app made as it starts, not when the first job is waiting for it."""
    _app()


@huey.task()
def run_export(job_id):
    with _app().app_context():  # a context (and database session) of its own, even in immediate mode
        export_jobs.run(job_id)


@huey.task()
def run_xml_import(job_id):
    with _app().app_context():
        import_jobs.run(job_id)


@huey.periodic_task(CLEAN_UP_EVERY)
def delete_expired_exports():
    with _app().app_context():
        export_jobs.fail_stalled()
        export_jobs.delete_expired()
        import_jobs.fail_stalled()
        import_jobs.delete_expired()
        userfile.fail_stalled()
