"""Tabular exports: CSV (UTF-8 with BOM, or CP932 on request) and xlsx, with formula injection neutralised.

An export is one SELECT of raw column values (ExportSource, built by the list's view as one user sees the list), read
in chunks from one consistent state of the database (Snapshot: the count that is logged and the rows that are written
agree), turned into cell texts column by column and written as it is read: CSV as a stream of byte chunks, xlsx into
a file (openpyxl write-only mode), a new sheet past Excel's row limit. Nothing holds every row at once, and no row is
dropped.

On PostgreSQL an export whose every column has an SQL form (ExportSource.copy_statement) is formatted by the database
instead: COPY (SELECT <cell texts>) TO STDOUT (FORMAT csv) hands over rows ready to write, several times faster than
Python can turn raw values into cells. cell_sql() is cell_text() written in SQL; a test compares the two files.
"""
import csv
import io
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable
from zoneinfo import ZoneInfo

from flask import Response, send_file, stream_with_context
from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet._writer import WorksheetWriter, create_temporary_file
from sqlalchemy import Boolean, Date, DateTime, Integer, String, case, cast, func, literal, null, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

JST = ZoneInfo("Asia/Tokyo")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)  # every prefix is one character
FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "csv_cp932": ("text/csv; charset=shift_jis", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}
CHUNK_ROWS = 2000  # rows fetched, formatted and written at a time
XLSX_SHEET_ROWS = 1_048_576  # Excel's rows per sheet, the heading included
XLSX_CELL_CHARS = 32_767  # Excel's characters per cell (openpyxl cuts there too)


def jst_text(value: datetime | None, seconds: bool = False) -> str:
    """A time as people here read it on screen: Japan time, 2026-11-25 14:03 (with seconds: 14:03:09), no offset,
    no microseconds. Exports keep cell_text()'s ISO 8601 with the offset, which no reader can misread."""
    if value is None:
        return ""
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def cell_text(value) -> str:
    """A value as text a spreadsheet will not execute: a leading formula character gets a quote."""
    if value.__class__ is str:  # most cells: checked first
        return "'" + value if value[:1] in _FORMULA_FIRST else value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, datetime):
        return value.astimezone(JST).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    text_value = str(value)
    if text_value[:1] in _FORMULA_FIRST:
        return "'" + text_value
    return text_value


def cell_texts(values) -> list[str]:
    """cell_text() of each value. Text, most of an export's cells, is checked here without a call per cell (the
    same rule as cell_text's first line); anything else goes through cell_text()."""
    return [("'" + v if v[:1] in _FORMULA_FIRST else v) if v.__class__ is str else cell_text(v) for v in values]


# --- what an export selects ------------------------------------------------------------------------------------------

class joined_text(FunctionElement):
    """joined_text(text, separator): an aggregate of a group's texts joined by `separator`, in no set order (put
    what orders them in the text): group_concat on SQLite, string_agg on PostgreSQL."""
    type = String()
    name = "joined_text"
    inherit_cache = True


@compiles(joined_text, "sqlite")
def _group_concat(element, compiler, **kw):
    return f"group_concat({compiler.process(element.clauses, **kw)})"


@compiles(joined_text, "postgresql")
def _string_agg(element, compiler, **kw):
    return f"string_agg({compiler.process(element.clauses, **kw)})"


class ExportColumn:
    """A column of an export computed from raw values: `sources` are attribute paths of the view's model ("kind",
    "institution.code": related tables are outer-joined) or functions of the model returning an SQL expression;
    `format(*values)` makes the cell's value from them (None: the one value as it is). cell_text() comes after.
    `sql(*expressions)`, the same format as an SQL text expression, lets PostgreSQL write the column (COPY); a format
    without one keeps the export in Python."""

    def __init__(self, *sources, format: Callable | None = None, sql: Callable | None = None):
        if not sources or (format is None and len(sources) != 1):
            raise ValueError("an export column needs one source, or several and a format")
        self.sources = sources
        self.format = format
        self.sql = sql or getattr(format, "sql", None)


class coded:
    """A format showing a code's label: an unknown code as it is, or `missing` when given (also in SQL)."""

    def __init__(self, labels: dict, missing=None):
        self.labels, self.missing = labels, missing

    def __call__(self, code):
        return self.labels.get(code, code if self.missing is None else self.missing)

    def sql(self, code):
        whens = [(code == key, literal(label, String)) for key, label in self.labels.items() if key is not None]
        absent = self.labels.get(None, "" if self.missing is None else self.missing)
        whens.insert(0, (code.is_(None), literal(absent, String)))
        otherwise = cast(code, String) if self.missing is None else literal(self.missing, String)
        return case(*whens, else_=otherwise)


# --- the same cells in SQL (PostgreSQL's COPY writes them) ------------------------------------------------------------

def _neutralized(text_value):
    """cell_text()'s rule for text in SQL: a leading formula character gets a quote; '' becomes NULL, which COPY
    writes as nothing, as csv.writer writes ''."""
    guarded = case((func.substr(text_value, 1, 1).in_(FORMULA_PREFIXES), literal("'", String) + text_value),
                   else_=text_value)
    return func.nullif(guarded, literal("", String))


def cell_sql(expression, formatted=False):
    """The SQL text of cell_text(value) for a raw column `expression` (by its type), or of a format's text result
    (`formatted`); None for a type cell_text() writes in a way SQL does not repeat exactly (floats, JSON)."""
    if formatted:
        return _neutralized(expression)
    kind = expression.type
    if isinstance(kind, Boolean):
        return case((expression.is_(True), literal("はい", String)), (expression.is_(False), literal("いいえ", String)),
                    else_=null())
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        # Japan has kept +09:00 all year since 1951: the offset cell_text() writes.
        return func.to_char(func.timezone("Asia/Tokyo", expression), 'YYYY-MM-DD"T"HH24:MI:SS"+09:00"')
    if isinstance(kind, Date):
        return func.to_char(expression, "YYYY-MM-DD")
    if isinstance(kind, (Integer, String)):
        return _neutralized(cast(expression, String))
    return None


def cells_statement(statement, columns, specs):
    """The SELECT of cell texts of an export whose raw values `statement` selects (columns: ExportSource.columns;
    specs: their ExportColumns), or None when a column has no SQL form. The database sorts the raw values, then
    formats the sorted rows (formatting first would sort the wide formatted rows: twice the time at 1M rows):
    SELECT <cells> FROM (<raw values, sort keys> OFFSET 0) ORDER BY <sort keys>, where OFFSET 0 keeps PostgreSQL from
    merging the two, and the outer ORDER BY, already met by the inner one, costs no second sort."""
    order = list(statement._order_by_clauses)  # the list's order, the primary key last
    rows = statement.add_columns(*(_order_key(clause).label(f"export_order_{i}") for i, clause in enumerate(order)))
    rows = rows.offset(0).subquery("export_rows")
    raw = list(rows.c)[:len(statement.selected_columns)]
    cells = []
    for (positions, fmt), spec in zip(columns, specs):
        if fmt is None:
            cells.append(cell_sql(raw[positions[0]]))
        else:
            cells.append(spec.sql and cell_sql(spec.sql(*(raw[p] for p in positions)), formatted=True))
    if any(cell is None for cell in cells):
        return None
    return select(*cells).order_by(*(_same_order(clause, rows.c[f"export_order_{i}"])
                                     for i, clause in enumerate(order)))


def _order_key(clause):
    """The expression an ORDER BY item sorts by (x of x DESC NULLS LAST)."""
    while isinstance(clause, UnaryExpression) and clause.modifier is not None:
        clause = clause.element
    return clause


def _same_order(clause, column):
    """`column` sorted as the ORDER BY item `clause` sorts its expression (DESC, NULLS FIRST…)."""
    if isinstance(clause, UnaryExpression) and clause.modifier is not None:
        return UnaryExpression(_same_order(clause.element, column), modifier=clause.modifier)
    return column


@dataclass
class ExportSource:
    """What an export writes: the headings, one SELECT of raw values, and per heading the positions of its values in
    a selected row with the format that makes them one cell (None: the value at the one position). `copy_statement`,
    when every column has an SQL form: the same rows as one SELECT of cell texts."""
    headers: list
    statement: object  # sqlalchemy Select
    columns: list
    copy_statement: object = None

    def cells(self, rows):
        """A chunk of selected rows as rows of cell texts, worked column by column: one tight loop per column."""
        if not rows:
            return []
        values = list(zip(*rows))
        out = []
        for positions, fmt in self.columns:
            column = values[positions[0]] if fmt is None else map(fmt, *(values[p] for p in positions))
            out.append(cell_texts(column))
        return list(zip(*out))


class Snapshot:
    """A connection of its own that reads one consistent state of the database: the bounded count that decides
    between a stream and a job, the count that is logged, and the rows then written all see the same rows.
    PostgreSQL: a REPEATABLE READ transaction, rows through a server-side cursor; SQLite: one read transaction
    (WAL keeps it stable while others write), rows by plain iteration."""

    def __init__(self, engine):
        self.engine = engine
        self.connection = None

    def open(self):
        connection = self.engine.connect()
        self.postgresql = connection.dialect.name == "postgresql"
        if self.postgresql:
            connection.execution_options(isolation_level="REPEATABLE READ")
            connection.begin()
        else:
            connection.begin()
            # pysqlite opens no transaction for reads: without this each statement would see its own state.
            connection.exec_driver_sql("BEGIN")
        self.connection = connection
        return self

    def close(self):
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()  # rolls the read transaction back

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def count(self, statement, limit=None):
        """Rows of `statement`, counting at most `limit` (SELECT count(*) FROM (… LIMIT n))."""
        inner = statement.order_by(None)
        if limit is not None:
            inner = inner.limit(limit)
        return self.connection.execute(select(func.count()).select_from(inner.subquery())).scalar_one()

    def chunks(self, statement, size=None):
        """The rows of `statement` in lists of at most `size` (CHUNK_ROWS)."""
        size = size or CHUNK_ROWS
        options = {"stream_results": True, "yield_per": size} if self.postgresql else {}
        result = self.connection.execute(statement, execution_options=options)
        try:
            yield from result.partitions(size)
        finally:
            result.close()

    def copies(self, source):
        """Whether the database writes this export's cells (PostgreSQL, every column with an SQL form)."""
        return self.postgresql and source.copy_statement is not None

    def copy_lines(self, statement, size=None):
        """PostgreSQL: the rows of `statement` as COPY … (FORMAT csv) writes them, in lists of at most `size`
        lines, each ending in \\n (the protocol sends one row per message)."""
        size = size or CHUNK_ROWS
        compiled = statement.compile(dialect=self.connection.dialect, compile_kwargs={"render_postcompile": True})
        processors = compiled._bind_processors  # what SQLAlchemy applies to each parameter before the driver
        params = {name: processors[name](value) if name in processors else value
                  for name, value in compiled.construct_params().items()}
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            # psycopg merges the parameters into the statement client-side (COPY takes none), quoting each.
            with cursor.copy(f"COPY ({compiled.string}) TO STDOUT (FORMAT csv)", params) as copy:
                lines = []
                for line in copy:
                    lines.append(line)
                    if len(lines) >= size:
                        yield lines
                        lines = []
                if lines:
                    yield lines
        finally:
            cursor.close()


def cell_chunks(source, snapshot, on_rows=None):
    """The export's rows as chunks of cell-text rows (`on_rows(n)` told of each chunk's size)."""
    if snapshot.copies(source):
        for lines in snapshot.copy_lines(source.copy_statement):
            rows = list(csv.reader(io.StringIO(b"".join(lines).decode(), newline="")))
            if on_rows:
                on_rows(len(rows))
            yield rows
        return
    for rows in snapshot.chunks(source.statement):
        if on_rows:
            on_rows(len(rows))
        yield source.cells(rows)


# --- writers ---------------------------------------------------------------------------------------------------------

def csv_stream(fmt, headers, chunks):
    """A CSV file as byte chunks: the heading, then one chunk per chunk of cell rows. UTF-8 starts with the BOM;
    CP932 replaces what it cannot encode."""
    encoding = "cp932" if fmt == "csv_cp932" else "utf-8"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush():
        data = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return data.encode(encoding, errors="replace")

    writer.writerow([cell_text(h) for h in headers])
    yield ("\ufeff".encode() if encoding == "utf-8" else b"") + flush()
    for rows in chunks:
        writer.writerows(rows)
        yield flush()


def csv_file(fmt, source, snapshot, on_rows=None):
    """The export as CSV byte chunks. COPY's lines are passed on as they come, their line ends made \\r\\n as
    csv.writer writes them (a line feed inside a quoted cell stays as it is in both)."""
    if not snapshot.copies(source):
        yield from csv_stream(fmt, source.headers, cell_chunks(source, snapshot, on_rows))
        return
    heading = csv_stream(fmt, source.headers, ())
    yield from heading
    for lines in snapshot.copy_lines(source.copy_statement):
        data = b"\r\n".join(line[:-1] for line in lines) + b"\r\n"
        if fmt == "csv_cp932":
            data = data.decode().encode("cp932", errors="replace")
        if on_rows:
            on_rows(len(lines))
        yield data


# What a text cell may hold in XML: markup characters escaped, a carriage return kept (a literal one would read back
# as a line feed), and the control characters XML 1.0 forbids (openpyxl refuses them) left out.
_XML_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;",
                           **{c: None for c in (*range(0, 9), 11, 12, *range(14, 32))}})
_COLUMN_LETTERS = [get_column_letter(i) for i in range(1, 16385)]


def _rows_xml(rows, first):
    """<row> elements, numbered from `first`, as UTF-8: text cells as the inline strings openpyxl writes for text,
    integers (statistics' counts) as numbers."""
    parts, inline = [], {}  # text -> its <is> element: statistics repeat a few hundred labels over 68,000 rows
    for number, row in enumerate(rows, first):
        parts.append(f'<row r="{number}">')
        for letter, value in zip(_COLUMN_LETTERS, row):
            if type(value) is int:
                parts.append(f'<c r="{letter}{number}" t="n"><v>{value}</v></c>')
            elif value:
                element = inline.get(value)
                if element is None:
                    element = inline[value] = _inline_string(value)
                parts.append(f'<c r="{letter}{number}" t="inlineStr">{element}</c>')
        parts.append("</row>")
    return "".join(parts).encode()


def _inline_string(value: str) -> str:
    value = value[:XLSX_CELL_CHARS]
    space = ' xml:space="preserve"' if value != value.strip() else ""
    return f"<is><t{space}>{value.translate(_XML_TEXT)}</t></is>"


class _TextSheet(WriteOnlyWorksheet):
    """A write-only sheet taking rows of cell texts a chunk at a time. openpyxl writes the sheet around them (its
    XML writer, on a file of ours); the rows themselves are written as ready XML, because openpyxl's per-cell
    objects cost more than the rest of an export together."""
    _file = None
    dimension = None  # "A1:R1001" when the rows are known before they are written (readers use it as the size)

    @property
    def calculate_dimension(self):
        """What openpyxl's writer calls, if there is one, for the size it writes before the rows."""
        return (lambda: self.dimension) if self.dimension else None

    def _get_writer(self):
        if self._writer is None:
            path = create_temporary_file()
            self._file = open(path, "wb")
            self._writer = WorksheetWriter(self, out=self._file)
            self._writer.out = path  # where the workbook's archive reads the sheet from, and what it removes
            self._writer.write_top()

    def append_rows(self, rows):
        self._get_writer()
        if self._rows is None:
            self._rows = self._write_chunks()
            next(self._rows)
        self._rows.send(rows)

    def _write_chunks(self):
        xf = self._writer.xf.send(True)
        with xf.element("sheetData"):
            number = 1
            try:
                while True:
                    rows = yield
                    xf.flush()  # what openpyxl wrote so far, then ours, in order
                    self._file.write(_rows_xml(rows, number))
                    number += len(rows)
            except GeneratorExit:
                pass
        self._writer.xf.send(None)

    def close(self):
        super().close()
        self._file.close()

    def discard(self):
        """After a failed export: the sheet's writers are closed (inner first) and its temporary file goes now, not
        when the process ends."""
        for generator in (self._rows, getattr(self._writer, "xf", None)):
            if generator is not None:
                try:
                    generator.close()
                except Exception:  # an unfinished sheet cannot be closed cleanly; it is thrown away anyway
                    pass
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._writer is not None and os.path.exists(self._writer.out):
            self._writer.cleanup()


def write_xlsx(target, headers, chunks, rows=None, sheet_rows=None, title="データ"):
    """Write an xlsx workbook of text (and integer) cells to `target` (a path or a binary file). Rows beyond a sheet's
    limit go on in the next sheet, under the heading again. `rows`, the number of data rows when known in advance,
    sizes each sheet in the file. Returns (data rows written, sheets)."""
    sheet_rows = sheet_rows or XLSX_SHEET_ROWS
    workbook = Workbook(write_only=True)
    heading = [cell_text(h) for h in headers]
    last_column = _COLUMN_LETTERS[max(len(heading), 1) - 1]
    sheets, written = [], 0

    def new_sheet():
        sheet = _TextSheet(parent=workbook, title=f"{title}{len(sheets) + 1}" if sheets else title)
        if rows is not None:
            sheet.dimension = f"A1:{last_column}{min(rows - written, sheet_rows - 1) + 1}"
        workbook._add_sheet(sheet)
        sheets.append(sheet)
        sheet.append_rows([heading])
        return sheet, sheet_rows - 1

    try:
        sheet, room = new_sheet()
        for chunk in chunks:
            chunk = list(chunk)
            while chunk:
                if room == 0:
                    sheet, room = new_sheet()
                part, chunk = chunk[:room], chunk[room:]
                sheet.append_rows(part)
                room -= len(part)
                written += len(part)
        workbook.save(target)
    except BaseException:
        for sheet in sheets:
            sheet.discard()
        raise
    return written, len(sheets)


def response(fmt, source, snapshot, rows, filename):
    """The export as an HTTP response, taking `snapshot` over (closed when the response ends). CSV streams chunk by
    chunk as the rows are read; xlsx is written to a temporary file first (a zip is not streamable), then sent."""
    mimetype, _ext = FORMATS[fmt]
    if fmt == "xlsx":
        out = tempfile.TemporaryFile()
        try:
            write_xlsx(out, source.headers, cell_chunks(source, snapshot), rows=rows)
        except BaseException:
            out.close()
            raise
        finally:
            snapshot.close()
        out.seek(0)
        return send_file(out, mimetype=mimetype, as_attachment=True, download_name=filename)

    def generate():
        try:
            yield from csv_file(fmt, source, snapshot)
        finally:
            snapshot.close()

    streamed = Response(stream_with_context(generate()), mimetype=mimetype,
                        headers={"Content-Disposition": f"attachment; filename={filename}"})
    streamed.call_on_close(snapshot.close)  # also when the client leaves before the first chunk
    return streamed


def render(fmt: str, headers: list[str], rows) -> bytes:
    """Rows (iterables of raw values) as a whole file in one of FORMATS. Every cell goes through cell_text()."""
    chunk = [[cell_text(v) for v in row] for row in rows]
    if fmt == "xlsx":
        out = io.BytesIO()
        write_xlsx(out, headers, [chunk])
        return out.getvalue()
    return b"".join(csv_stream(fmt, headers, [chunk]))

