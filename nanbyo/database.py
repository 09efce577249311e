"""Database connections and units of work.

A unit of work is every change one action makes plus its operation-log entries, committed together. It starts with
`begin_write()`, before the reads that decide the change: on SQLite that is the database's write lock (BEGIN
IMMEDIATE), on PostgreSQL the advisory lock of the log chain, held until commit either way. So two workers never
extend the log from the same tail, and a limit counted under the lock (lockout, key lookups) holds exactly.

Inside a request, a change flushed outside a unit of work is a programming error and raises: the tests then find
every path that would write without its lock.
"""
import sqlite3
import time
from contextlib import contextmanager

from flask import g, has_request_context
from sqlalchemy import any_, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.accounts import User
from nanbyo.extensions import db

CHAIN_LOCK = 724001  # pg_advisory_xact_lock key of the operation log chain
SQLITE_BUSY_TIMEOUT_MS = 15_000
SQLITE_LOCK_ATTEMPTS = 3
LOCKED = "nanbyo_write_locked"  # session.info: this transaction holds the write lock
WROTE = "nanbyo_wrote"  # session.info: this transaction has sent a change to the database


class UnitOfWorkError(RuntimeError):
    """A change made outside begin_write(): its log entry could not be committed with it."""


def configure_engine(engine):
    """Per-connection settings; SQLite gets foreign keys, WAL and a busy timeout (PostgreSQL has them built in)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_settings(dbapi_connection, _record):
        # Outside any transaction (pysqlite begins one only before a change), where PRAGMAs take effect.
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers never wait for the writer, and a log entry written on a second connection does not wait
        # for the request's own reads.
        dbapi_connection.execute("PRAGMA journal_mode = WAL")


IN_LIST_SIZE = 1000  # values per IN (...) of a batch look-up on SQLite: a statement per thousand rows, not per row


def among(column, values) -> list:
    """Conditions `column` is one of `values`, each for one statement: on PostgreSQL one `= ANY(array)` (one
    parameter: psycopg spends ~20 ms parsing a statement of a thousand, and PostgreSQL planning it), elsewhere IN
    lists of IN_LIST_SIZE."""
    values = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(None, values, type_=ARRAY(column.type)))] if values else []
    return [column.in_(values[start:start + IN_LIST_SIZE]) for start in range(0, len(values), IN_LIST_SIZE)]


def has_changes(session):
    """Anything of this transaction's to commit: pending objects, real changes, or statements already sent."""
    return bool(session.new or session.deleted or session.info.get(WROTE)
                or any(session.is_modified(o) for o in session.dirty))


def is_write_locked(session=None):
    return bool((session or db.session).info.get(LOCKED))


def begin_write(session=None):
    """Take the write lock for the current transaction (no-op when held); objects read before are re-read.

    Must come before the first change of the transaction: the lock cannot be taken after writing."""
    session = session or db.session
    if session.info.get(LOCKED):
        return
    if has_changes(session):
        raise UnitOfWorkError("begin_write() must come before the transaction's first change")
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _sqlite_begin_immediate(connection)
    else:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    # What was read before the lock may have changed meanwhile: read it again under the lock. The logged-in user
    # is read at once, so that code reading it later cannot autoflush objects it is still filling in.
    session.expire_all()
    session.info[LOCKED] = True
    user = g.get("_login_user") if has_request_context() else None  # Flask-Login's; unset while it loads the user
    if isinstance(user, User) and user in session:
        session.refresh(user)


def _sqlite_begin_immediate(connection):
    # pysqlite runs reads outside a transaction and begins one only before a change; so no transaction is open
    # here and BEGIN IMMEDIATE (waiting up to the busy timeout) starts ours with the write lock already held.
    dbapi = connection.connection.driver_connection
    for attempt in range(1, SQLITE_LOCK_ATTEMPTS + 1):
        try:
            dbapi.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or attempt == SQLITE_LOCK_ATTEMPTS:
                raise OperationalError("BEGIN IMMEDIATE", {}, e) from e
            time.sleep(0.05 * attempt)


@contextmanager
def separate_write():
    """A unit of work on a connection of its own, committed on exit: for a log entry that goes with no change of
    the caller's (a read of patient data, a refused request), without touching the caller's session."""
    with db.engine.connect() as connection, connection.begin():
        if connection.dialect.name == "sqlite":
            _sqlite_begin_immediate(connection)
        else:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
        yield connection


# --- bookkeeping: which transaction holds the lock, which has written ---------------------------------------------

@event.listens_for(Session, "after_transaction_end")
def _forget_transaction(session, transaction):
    if transaction.parent is None:
        session.info.pop(LOCKED, None)
        session.info.pop(WROTE, None)


@event.listens_for(Session, "before_flush")
def _guard_flush(session, flush_context, instances):
    if has_changes(session):
        _require_lock(session)
        session.info[WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _guard_statement(state):
    if state.is_insert or state.is_update or state.is_delete:
        _require_lock(state.session)
        state.session.info[WROTE] = True


def _require_lock(session):
    if has_request_context() and not session.info.get(LOCKED):
        raise UnitOfWorkError("a change inside a request must be made after begin_write()")
