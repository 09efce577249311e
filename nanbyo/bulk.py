"""Inserting thousands of rows with a statement per table, not per row: COPY on PostgreSQL, executemany on SQLite.

For the writes of one unit of work that grow with a file (a user data file import and its log entries). The rows go
in on the session's own connection, inside its transaction, so they commit or roll back with everything else.
Measured on PostgreSQL for 20,000 rows: psycopg's executemany sends an INSERT per row (1.2-1.6 s), and SQLAlchemy's
multi-row VALUES (insertmanyvalues) spends as long again in psycopg parsing the long statements; COPY takes a
fraction of that. On SQLite the rows go to the driver's executemany as tuples, each value through its column type's
own bind processor (what SQLAlchemy stores, unchanged): SQLAlchemy's executemany of dicts spent as long again as
SQLite's insert itself in working out each row's parameters.
"""
import json
from functools import lru_cache

import psycopg
from psycopg import sql
from sqlalchemy import JSON, func, insert, select, text
from sqlalchemy.exc import DBAPIError


def insert_rows(connection, table, rows: list[dict], meanwhile=None):
    """Insert `rows` (dicts by column name, all with the same keys) into `table` on `connection` (a SQLAlchemy
    Connection in the caller's transaction). A column left out gets its Python-side default (as an INSERT through
    SQLAlchemy would; a callable one is called once for all the rows), else its server default or NULL.
    meanwhile(), if given, is called once the rows are sent, before the database is waited for (on PostgreSQL it runs
    while the server inserts them): work of the caller's that does not use the database."""
    if not rows:
        if meanwhile is not None:
            meanwhile()
        return
    names = list(rows[0])
    if any(len(row) != len(names) for row in rows):
        raise ValueError("every row must have the same columns")
    defaults = {column.name: column.default.arg(None) if column.default.is_callable else column.default.arg
                for column in table.columns
                if column.name not in names and column.default is not None
                and not (column.default.is_sequence or column.default.is_clause_element)}
    columns = names + list(defaults)
    if connection.dialect.name == "sqlite":
        _insert_sqlite(connection, table, rows, names, defaults)
        if meanwhile is not None:
            meanwhile()
        return
    json_names = {column.name for column in table.columns if isinstance(column.type, JSON)}
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(name) for name in columns))
    # COPY's text format: every value is parsed as its column's type; JSON goes as its text, as SQLAlchemy sends it.
    encode = [(name, name in json_names) for name in names]
    tail = [json.dumps(value) if name in json_names else value for name, value in defaults.items()]
    try:
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([json.dumps(row[name]) if is_json else row[name] for name, is_json in encode] + tail)
            if meanwhile is not None:
                meanwhile()
    except psycopg.Error as error:
        # As SQLAlchemy raises it for a statement of its own (IntegrityError for a NOT NULL or UNIQUE refused):
        # callers catch one kind of error on both databases.
        raise DBAPIError.instance(statement.as_string(connection.connection.driver_connection), None, error,
                                  psycopg.Error) from None


def _insert_sqlite(connection, table, rows, names, defaults):
    """insert_rows on SQLite: tuples to the driver's executemany, each value through its column type's processor."""
    statement, plan = _sqlite_plan(connection.dialect, table, tuple(names), tuple(defaults))
    fixed = {key: defaults[key] if process is None else process(defaults[key]) for key, process in plan
             if key in defaults}
    # exec_driver_sql: the driver's executemany inside the caller's transaction; a refusal raises SQLAlchemy's
    # IntegrityError as connection.execute() would.
    connection.exec_driver_sql(statement, [
        tuple([fixed[key] if key in fixed else row[key] if process is None else process(row[key])
               for key, process in plan]) for row in rows])


@lru_cache(maxsize=32)
def _sqlite_plan(dialect, table, names, defaults):
    """The INSERT of these columns, and its parameters in order with their columns' bind processors (or None)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=[*names, *defaults])
    return compiled.string, [(key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
                             for key in compiled.positiontup]


def next_ids(connection, table, count) -> list[int]:
    """`count` ids for new rows of `table` (its integer primary key `id`), for rows inserted with them in the caller's
    unit of work (write lock held): from the table's sequence on PostgreSQL; after the largest id on SQLite, which is
    what SQLite itself gives a new row of a table without AUTOINCREMENT."""
    if count <= 0:
        return []
    if connection.dialect.name == "postgresql":
        return list(connection.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count) ORDER BY 1"),
            {"table": table.name, "count": count}).scalars())
    largest = connection.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(largest + 1, largest + 1 + count))
