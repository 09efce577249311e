"""医療機関ユーザデータファイル: read (xlsx or csv), validate, plan and import doctors' IDs for one municipality.

One file = one institution and one kind of doctor (難病 or 小慢). Headings are matched by name (the template's labels,
the ministry notice's names and common variants, in any order). Every problem is reported at once with its row and
column; a refused file writes nothing, and an accepted one is imported in a single transaction.

The individual path (one doctor typed into a form, tied to the 指定 application) builds the same one-row table in
memory (`form_table`) and goes through the same `plan_table` and `execute`.
"""
import csv
import hashlib
import io
import json
import re
import secrets
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from flask import current_app
from lxml import etree
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import joinedload, selectinload

from models._types import utcnow
from models.accounts import BATCH_DONE, BATCH_FAILED, BATCH_RUNNING, Designation, ImportBatch, Membership, User
from models.institutions import Institution, Municipality
from nanbyo import audit, auth, bulk, database, files, jurisdiction
from nanbyo.codes import DOCTOR_NUMBER, institution_code_error
from nanbyo.document_codes import NANBYO, SHOMAN
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR, DOCTOR_KIND_LABELS, STATUS_ACTIVE, STATUS_DELETED
from nanbyo.safe_files import UnsafeFile, check_xml_parts, check_zip, parse_xml

MAX_ROWS = 5000
MAX_SHEET_ROWS = 20 * MAX_ROWS  # blank rows included: spreadsheets save formatted-but-empty rows
MAX_COLUMNS = 100  # cells read per xlsx row: a forged <dimension ref="A1:XFD…"> would make every row 16,384 wide
MAX_BYTES = 10 * 1024 * 1024
MAX_FIELD_CHARS = 1000  # a csv field: the longest valid value is a 254-character e-mail address
MAX_LINE_CHARS = 20 * MAX_FIELD_CHARS  # a csv line: 14 such fields, quotes, commas and a few empty columns
SHEET_NAME = "医療機関ユーザデータ"
KIND_BY_LABEL = {label: code for code, label in DOCTOR_KIND_LABELS.items()}
FAMILY = {"nanbyo": "難病", "nanbyo_kyoryoku": "難病", "shoman": "小慢"}
FAMILY_CODES = {"難病": NANBYO, "小慢": SHOMAN}
WORK_KINDS = ("主たる勤務先", "兼務")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    required: bool
    example: str
    description: str
    aliases: tuple[str, ...] = ()  # other headings accepted for the column (the notice's names, common variants)

    @property
    def headings(self) -> tuple[str, ...]:
        return (self.label,) + self.aliases


COLUMNS = [
    Column("doctor_kind", "指定医区分", True, "難病指定医", "難病指定医 / 協力難病指定医 / 小慢指定医 のいずれか。1ファイルに難病と小慢を混在させない",
           ("指定医", "指定医の種類")),
    Column("doctor_number", "指定医番号", True, "13-N-0101", "自治体が付番した指定医番号（英数字とハイフン、20文字以内）"),
    Column("institution_code", "医療機関コード", True, "1310000017", "10桁の数字（都道府県番号2桁＋点数表番号1桁＋医療機関コード7桁）。全行同じ医療機関",
           ("医療機関番号",)),
    Column("institution_name", "医療機関名", False, "東京見本病院", "医療機関が未登録のときは必須（新規登録に使う）",
           ("医療機関名称",)),
    Column("work_kind", "勤務区分", True, "主たる勤務先", "「主たる勤務先」のみ。兼務の指定医は記載しない（兼務先は本人が登録）",
           ("勤務形態",)),
    Column("department", "部署（部門/診療科）", False, "脳神経内科", "100文字以内", ("部署", "部門", "診療科")),
    Column("family_name", "氏名 姓", True, "見本", "50文字以内", ("姓", "氏名（姓）")),
    Column("given_name", "氏名 名", True, "太郎", "50文字以内", ("名", "氏名（名）")),
    Column("family_kana", "カナ 姓", True, "ミホン", "全角カタカナ、50文字以内", ("フリガナ 姓", "氏名カナ 姓", "セイ")),
    Column("given_kana", "カナ 名", True, "タロウ", "全角カタカナ、50文字以内", ("フリガナ 名", "氏名カナ 名", "メイ")),
    Column("phone", "電話", False, "03-1234-5678", "数字とハイフン", ("電話番号", "TEL")),
    Column("email", "メールアドレス", False, "taro@example.jp", "本人のメールアドレス（初回ログイン時にも登録できます）",
           ("メール", "E-mail")),
    Column("valid_from", "指定期間 開始", False, "2026-04-01", "日付（YYYY-MM-DD、Excel の日付セル可）",
           ("指定年月日", "指定日", "有効期間 開始")),
    Column("valid_until", "指定期間 終了", False, "2031-03-31", "日付（YYYY-MM-DD、Excel の日付セル可）",
           ("有効期間 終了", "指定期間満了日")),
]
LABELS = [c.label for c in COLUMNS]
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
# Headings are compared after NFKC (全角 letters, digits and brackets become half-width), without any spaces, with
# the middle dots and slashes (・ ･ · / ／) as one character, hyphens and dashes as one, and ASCII letters in any case.
_HEADING_CHARS = str.maketrans({"･": "・", "·": "・", "•": "・", "‧": "・", "∙": "・", "/": "・",
                                "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-"})


def heading_key(value) -> str:
    text = unicodedata.normalize("NFKC", "" if value is None else str(value))
    return "".join(text.split()).translate(_HEADING_CHARS).casefold()


def _heading_index():
    index = {}
    for column in COLUMNS:
        for heading in column.headings:
            other = index.setdefault(heading_key(heading), column)
            assert other is column, f"heading {heading} names two columns"
    return index


HEADING_INDEX = _heading_index()
MAX_LISTED_HEADINGS = 10  # unknown headings named in the message; a hostile header row may have thousands


class FileRefused(ValueError):
    """The file as a whole cannot be read; `problems` are Japanese messages."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass
class Problem:
    row: int | None
    column: str | None
    message: str

    def __str__(self):
        where = f"{self.row}行目 " if self.row else ""
        return f"{where}{self.column}: {self.message}" if self.column else f"{where}{self.message}"


@dataclass
class PlannedRow:
    row: int
    values: dict
    outcome: str  # create / registered / change_primary / other_issuer
    message: str
    existing: User | None = None
    manager: bool = False
    blocked: str = ""  # change_primary: why the 主たる勤務先 cannot be changed now (the doctor is 責任者 there)


@dataclass
class Plan:
    municipality: Municipality
    institution_code: str
    institution: Institution | None
    institution_name: str
    family: str
    rows: list[PlannedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    @property
    def to_create(self):
        return [r for r in self.rows if r.outcome == "create"]

    @property
    def to_confirm(self):
        """Rows of doctors with an ID at another institution: changed only when asked (change_primary_rows)."""
        return [r for r in self.rows if r.outcome == "change_primary"]

    @property
    def change_primary_rows(self) -> set[int]:
        """Every row whose 主たる勤務先 execute() may move here (the CLI's --change-primary)."""
        return {r.row for r in self.to_confirm}


OUTCOME_LABELS = {"create": "新規発行", "registered": "登録不要", "change_primary": "要確認：医療機関に主たる勤務先を確認",
                  "other_issuer": "他自治体で発行済み"}


# --- reading -----------------------------------------------------------------------------------------------------

def normalise(value) -> str:
    """NFKC (全角 digits, letters and spaces become half-width; 半角カナ becomes 全角), trimmed."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).strip()


# CP932's 外字 (user-defined area) decodes to the Private Use Area: not a character anyone else can read.
GAIJI = re.compile("[\ue000-\uf8ff]")
WHITESPACE = re.compile(r"\s+")


def has_gaiji(text: str) -> bool:
    return GAIJI.search(text) is not None


def read_table(filename: str, data: bytes, max_rows: int = MAX_ROWS, sheet: str | None = SHEET_NAME
               ) -> list[tuple[int, list]]:
    """Rows as (row number, raw cell values), header included; at most `max_rows` data rows; of an xlsx the sheet
    named `sheet` (None: the first). Raises FileRefused. (Also the reader of other tables municipalities upload:
    認定結果, nanbyo.results.)"""
    if len(data) > MAX_BYTES:
        raise FileRefused([f"ファイルが大きすぎます（{MAX_BYTES // 1024 // 1024}MB まで）。"])
    if not data:
        raise FileRefused(["ファイルが空です。"])
    name = (filename or "").lower()
    is_zip = data.startswith(b"PK\x03\x04")
    if name.endswith(".xlsx") != is_zip or not (name.endswith(".xlsx") or name.endswith(".csv")):
        raise FileRefused(["ファイルの種類が正しくありません（.xlsx または .csv、中身と拡張子が一致すること）。"])
    return _read_xlsx(data, max_rows, sheet) if is_zip else _read_csv(data, max_rows)


def _read_csv(data: bytes, max_rows=MAX_ROWS):
    if b"\x00" in data:
        raise FileRefused(["ファイルに NUL 文字が含まれています（テキストの CSV ではありません）。"])
    # Decoded and parsed as a stream, a line at a time: the whole file as one str (and StringIO's copy of it) made a
    # 9 MB one-field file cost 70-110 MB before csv refused the field. A file that is not UTF-8 is read again as
    # CP932; one with a UTF-8 BOM must be UTF-8.
    for encoding in ("utf-8-sig",) if data.startswith(b"\xef\xbb\xbf") else ("utf-8", "cp932"):
        try:
            return _collect(_csv_rows(io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")), max_rows)
        except UnicodeDecodeError:
            continue
        except csv.Error:  # e.g. a quoted field over csv.field_size_limit() across several lines
            raise FileRefused(["CSV ファイルを読み込めません（項目が長すぎるか、CSV の形式が正しくありません）。"])
    raise FileRefused(["文字コードを判別できません。UTF-8 または Shift_JIS（CP932）で保存してください。"])


def _csv_rows(text):
    """(row number, cells) of a csv text stream; a line or field too long for a valid row is refused as soon as it
    is read, so no more than MAX_LINE_CHARS of it is ever held."""
    number = 0

    def too_long(row):
        return FileRefused([f"CSV ファイルを読み込めません: {row}行目に{MAX_FIELD_CHARS}文字を超える項目があります。"])

    def lines():
        while line := text.readline(MAX_LINE_CHARS):
            if len(line) == MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                raise too_long(number + 1)
            yield line

    for number, cells in enumerate(csv.reader(lines()), start=1):
        if any(len(c) > MAX_FIELD_CHARS for c in cells):
            raise too_long(number)
        yield number, cells


def _collect(numbered_rows, max_rows=MAX_ROWS):
    """Row 1 and the non-blank rows. The limit counts data rows; blank ones (a spreadsheet's formatted but empty
    rows, ",,,," lines) only up to 20 times as many."""
    rows, filled = [], 0
    sheet_rows = 20 * max_rows
    for number, cells in numbered_rows:
        if number > sheet_rows:
            raise FileRefused([f"行数が多すぎます（空白行を含めて{sheet_rows}行まで）。不要な行を削除してください。"])
        # count(None) first: an xlsx row of empty cells is blank without a call per cell
        if number == 1 or (cells.count(None) < len(cells) and any(normalise(c) for c in cells)):
            filled += 1
            if filled > max_rows + 1:
                raise FileRefused([f"データが{max_rows}行を超えています。ファイルを分けてください。"])
            rows.append((number, cells))
    return rows


MERGE_CELL = re.compile(rb"<(?:[\w.-]+:)?mergeCell[\s/>]")  # with or without a namespace prefix
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CONTENT_TYPES_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
SHARED_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
STYLES_PART = "xl/styles.xml"  # where openpyxl reads the styles too
_ROW, _CELL, _VALUE, _FORMULA, _INLINE, _TEXT, _RUN, _SHARED = (
    f"{{{MAIN_NS}}}{tag}" for tag in ("row", "c", "v", "f", "is", "t", "r", "si"))
CELL_REF = re.compile(r"([A-Za-z]{1,3})([0-9]+)")
# No DTD (check_xml_parts refused any before), no entities, no network, libxml2's limits on depth and text size.
SAFE_XML = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass
class _Workbook:
    sheets: dict[str, str]  # sheet name -> worksheet part
    shared_strings: str | None  # part name
    date1904: bool


def _workbook(archive: zipfile.ZipFile) -> _Workbook:
    """What the workbook parts say: where each sheet and the shared strings are, and the date system."""
    ns = {"m": MAIN_NS, "r": RELATIONSHIPS_NS, "ct": CONTENT_TYPES_NS}
    book = parse_xml(archive.read("xl/workbook.xml"))
    rels = parse_xml(archive.read("xl/_rels/workbook.xml.rels"))
    types = parse_xml(archive.read("[Content_Types].xml"))
    targets = {r.get("Id"): r.get("Target") for r in rels}
    sheets = {}
    for sheet in book.iterfind("m:sheets/m:sheet", ns):
        target = (targets.get(sheet.get(f"{{{RELATIONSHIPS_NS}}}id")) or "").lstrip("/")
        sheets[sheet.get("name")] = target if target.startswith("xl/") else f"xl/{target}"
    # As openpyxl finds them: by the content type the package declares.
    strings = next((o.get("PartName", "").lstrip("/") for o in types.iterfind("ct:Override", ns)
                    if o.get("ContentType") == SHARED_STRINGS_TYPE), None)
    properties = book.find("m:workbookPr", ns)
    date1904 = properties is not None and (properties.get("date1904") or "").lower() in ("1", "true")
    return _Workbook(sheets, strings, date1904)


def _read_xlsx(data: bytes, max_rows=MAX_ROWS, sheet=SHEET_NAME):
    try:
        check_zip(data)
        # No part may have a DTD, in whatever encoding it is written: the parsers below then meet no entity.
        check_xml_parts(data)
        archive = zipfile.ZipFile(io.BytesIO(data))
        workbook = _workbook(archive)
    except (UnsafeFile, KeyError, zipfile.BadZipFile) as e:
        raise FileRefused([str(e) if isinstance(e, UnsafeFile) else "xlsx ファイルが壊れています。"])
    except Exception:  # lxml errors: a broken workbook part
        raise FileRefused(["xlsx ファイルが壊れています。"])
    if sheet is None and workbook.sheets:
        sheet = next(iter(workbook.sheets))
    if sheet not in workbook.sheets:
        raise FileRefused([f"シート「{sheet}」がありません（テンプレートのシートに入力してください）。"])
    try:
        sheet_xml = archive.read(workbook.sheets[sheet])
    except Exception:  # a missing part
        raise FileRefused(["xlsx ファイルが壊れています。"])
    if MERGE_CELL.search(sheet_xml):
        raise FileRefused(["結合されたセルがあります。セルの結合を解除してください。"])
    try:
        return _collect(_sheet_rows(archive, workbook, sheet_xml), max_rows)
    except FileRefused:
        raise
    except Exception:  # malformed XML (a NUL byte, a bad character, cut short), a bad cell reference or value
        raise FileRefused(["xlsx ファイルを読み込めません。"])


def _sheet_rows(archive, workbook: _Workbook, sheet_xml: bytes):
    """(row number, cell values) of the worksheet, the values as openpyxl's read-only worksheet gives them
    (numbers, strings, datetimes for cells with a date format, a Formula for a formula), at most MAX_COLUMNS cells a
    row, a row the sheet leaves out as an empty one. Read with lxml, not by openpyxl, whose objects per cell made a
    5,000-row sheet cost ~2 s (issue 11 asks 2,000 rows/s for the whole import); openpyxl still reads the styles.
    tests/test_bulk_import.py checks that both read the same files the same."""
    from openpyxl.styles.stylesheet import Stylesheet
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel, from_ISO8601

    shared = _shared_strings(archive, workbook.shared_strings)
    date_styles = timedelta_styles = set()  # no styles part: no date formats
    if STYLES_PART in archive.namelist():
        styles = Stylesheet.from_tree(parse_xml(archive.read(STYLES_PART)))
        date_styles, timedelta_styles = styles.date_formats, styles.timedelta_formats
    epoch = CALENDAR_MAC_1904 if workbook.date1904 else CALENDAR_WINDOWS_1900
    columns = {}  # column letters -> index, per sheet

    def column_of(ref):
        letters = ref.rstrip("0123456789")
        index = columns.get(letters)
        if index is None:
            if not CELL_REF.fullmatch(ref):
                raise ValueError(f"bad cell reference {ref!r}")
            index = 0
            for letter in letters.upper():
                index = index * 26 + ord(letter) - 64
            if index > 16384:
                raise ValueError(f"bad cell reference {ref!r}")
            columns[letters] = index
        elif len(letters) == len(ref):  # a known column without a row number
            raise ValueError(f"bad cell reference {ref!r}")
        return index

    def value_of(cell):
        value = formula = inline = None
        for child in cell:  # the first of each, as find() gives it; a loop costs less than a find() for each
            tag = child.tag
            if tag == _VALUE:
                value = child if value is None else value
            elif tag == _FORMULA:
                formula = child if formula is None else formula
            elif tag == _INLINE:
                inline = child if inline is None else inline
        if formula is not None:
            return Formula("=" + (formula.text or ""))
        kind = cell.get("t", "n")
        if kind == "inlineStr":
            return _text_content(inline) if inline is not None else None
        value = value.text if value is not None else None
        if not value:
            return None
        if kind == "n":
            number = float(value) if ("." in value or "e" in value or "E" in value) else int(value)
            style = int(cell.get("s") or 0)
            if style in date_styles:
                try:
                    return from_excel(number, epoch, timedelta=style in timedelta_styles)
                except (OverflowError, ValueError):
                    return "#VALUE!"  # openpyxl's error value for a date out of range
            return number
        if kind == "s":
            return shared[int(value)]
        if kind == "b":
            return bool(int(value))
        if kind == "d":
            return from_ISO8601(value)
        return value  # "str" (a formula's text), "e" (an error such as #N/A)

    number, expected = 0, 1  # the row read last, the next row number to give
    for _, row in etree.iterparse(io.BytesIO(sheet_xml), tag=_ROW, **SAFE_XML):
        if row.get("r"):
            r = float(row.get("r"))
            if not r.is_integer():
                raise ValueError(f"bad row number {row.get('r')!r}")
            number = int(r)
        else:
            number += 1
        if number >= expected:  # a row again or out of order is skipped, as openpyxl does
            for blank in range(expected, number):
                yield blank, []
            cells, column = [], 0
            for cell in row.iterchildren(_CELL):
                ref = cell.get("r")
                column = column_of(ref) if ref else column + 1
                if column > MAX_COLUMNS:
                    continue
                value = value_of(cell)
                if len(cells) < column:
                    cells.extend([None] * (column - len(cells)))
                cells[column - 1] = value
            yield number, cells
            expected = number + 1
        row.clear()
        while row.getprevious() is not None:  # the rows read so far: memory stays that of one row
            del row.getparent()[0]


def _text_content(element) -> str:
    """The text of a string item (<si> or an inline <is>): its <t> and its runs' <t>, without the phonetic
    reading (<rPh>), as openpyxl gives it."""
    plain, runs = None, []
    for child in element:
        if child.tag == _TEXT:
            plain = child if plain is None else plain
        elif child.tag == _RUN:
            text = next((t for t in child if t.tag == _TEXT), None)
            if text is not None and text.text is not None:
                runs.append(text.text)
    if plain is not None and plain.text is not None:
        runs.insert(0, plain.text)
    return "".join(runs)


def _shared_strings(archive, part) -> list[str]:
    if part is None:
        return []
    strings = []
    with archive.open(part) as source:
        for _, item in etree.iterparse(source, tag=_SHARED, **SAFE_XML):
            strings.append(_text_content(item).replace("x005F_", ""))  # openpyxl's un-escaping of "_x005F_"
            item.clear()
    return strings


class Formula(str):
    """A formula cell, kept as its text and refused by validation."""


# --- validating ----------------------------------------------------------------------------------------------------

def _date(value, label, problems, row):
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 1 <= value < 2958466:  # an Excel serial date (1900 system)
            return date(1899, 12, 30) + timedelta(days=int(value))
    text = normalise(value).replace("/", "-")
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(Problem(row, label, "日付（YYYY-MM-DD）ではありません"))
        return None


def _text(value, column) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = normalise(value)
    if column.key == "institution_code" and isinstance(value, int) and len(text) == 9:
        text = "0" + text  # Excel drops the leading zero of 北海道 (01...) codes typed as numbers
    return WHITESPACE.sub(" ", text)


def _display(value) -> str:
    text = re.sub(r"\s+", " ", normalise(value))
    return text if len(text) <= 40 else text[:40] + "…"


def map_headings(header_row: int, header: list) -> list[Column | None]:
    """The column each heading names, by position (None for an empty heading). Headings are matched by name in any
    order; a heading that names no column, a column named twice and a missing required column refuse the file."""
    mapped, unknown, named = [], [], {}
    for cell in header:
        key = heading_key(cell)
        column = HEADING_INDEX.get(key) if key else None
        if key and column is None:
            unknown.append(_display(cell))
        if column is not None:
            named.setdefault(column.key, []).append(_display(cell))
        mapped.append(column)
    problems = []
    if unknown:
        listed = "".join(f"「{h}」" for h in unknown[:MAX_LISTED_HEADINGS])
        more = f"ほか{len(unknown) - MAX_LISTED_HEADINGS}件" if len(unknown) > MAX_LISTED_HEADINGS else ""
        problems.append(f"{header_row}行目: 見出し{listed}{more}は使えません。使える見出し: {'、'.join(LABELS)}"
                        "（通知の見出し名などの別名も使えます。一覧は取込画面の「列の定義」にあります）")
    for column in COLUMNS:
        if len(named.get(column.key, ())) > 1:
            problems.append(f"{header_row}行目: 「{column.label}」の列が{len(named[column.key])}つあります"
                            f"（見出し{''.join(f'「{h}」' for h in named[column.key])}）。1列にしてください")
    missing = [c.label for c in COLUMNS if c.required and c.key not in named]
    if missing:
        problems.append(f"{header_row}行目: 必須の列がありません: {'、'.join(missing)}")
    if problems:
        raise FileRefused(problems)
    return mapped


def parse_rows(table):
    """Header check and per-cell validation. Returns (records, problems); records are dicts by column key."""
    problems: list[Problem] = []
    if not table:
        raise FileRefused(["ファイルにデータがありません。"])
    header_row, header = table[0]
    mapped = map_headings(header_row, header)
    records = []
    for number, cells in table[1:]:
        if all(normalise(c) == "" for c in cells):
            continue  # blank lines are not rows
        if any(normalise(c) for i, c in enumerate(cells) if i >= len(mapped) or mapped[i] is None):
            problems.append(Problem(number, None, "見出しのない列に値があります"))
        raw_by_key = {column.key: cells[i] if i < len(cells) else None
                      for i, column in enumerate(mapped) if column is not None}
        record = {"_row": number}
        for column in COLUMNS:
            raw = raw_by_key.get(column.key)
            if isinstance(raw, Formula):
                problems.append(Problem(number, column.label, "数式は使えません。値を入力してください"))
                record[column.key] = None if column.key in ("valid_from", "valid_until") else ""
                continue
            if isinstance(raw, str) and "\x00" in raw:
                problems.append(Problem(number, column.label, "NUL 文字が含まれています"))
                raw = raw.replace("\x00", "")
            if column.key in ("valid_from", "valid_until"):
                record[column.key] = _date(raw, column.label, problems, number)
                continue
            text = _text(raw, column)
            if has_gaiji(text):
                problems.append(Problem(number, column.label, "外字（機種依存文字）が含まれています。常用の文字に置き換えてください"))
            if column.required and not text:
                problems.append(Problem(number, column.label, "必須項目です"))
            record[column.key] = text
        _check_record(record, problems)
        records.append(record)
    if not records:
        problems.append(Problem(None, None, "データ行がありません"))
    return records, problems


KANA = re.compile(r"^[ァ-ヶー ]+$")
PHONE = re.compile(r"^[0-9-]{10,13}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_record(r, problems):
    n = r["_row"]
    if r["doctor_kind"] and r["doctor_kind"] not in KIND_BY_LABEL:
        problems.append(Problem(n, "指定医区分", "難病指定医・協力難病指定医・小慢指定医のいずれかを入力してください"))
    if r["doctor_number"] and not DOCTOR_NUMBER.match(r["doctor_number"]):
        problems.append(Problem(n, "指定医番号", "英数字とハイフン20文字以内で入力してください"))
    if r["institution_code"]:
        if not re.fullmatch(r"\d{10}", r["institution_code"]):
            problems.append(Problem(n, "医療機関コード", "10桁の数字ではありません"))
        elif institution_code_error(r["institution_code"]):
            problems.append(Problem(n, "医療機関コード", institution_code_error(r["institution_code"]).rstrip("。")))
    if r["work_kind"] == "兼務":
        problems.append(Problem(n, "勤務区分", "兼務の指定医は記載できません（兼務先は指定医本人が自アカウント管理で追加します）"))
    elif r["work_kind"] and r["work_kind"] not in WORK_KINDS:
        problems.append(Problem(n, "勤務区分", "「主たる勤務先」と入力してください"))
    for key, label, limit in (("family_name", "氏名 姓", 50), ("given_name", "氏名 名", 50),
                              ("family_kana", "カナ 姓", 50), ("given_kana", "カナ 名", 50),
                              ("department", "部署（部門/診療科）", 100), ("institution_name", "医療機関名", 200)):
        if len(r[key]) > limit:
            problems.append(Problem(n, label, f"{limit}文字以内で入力してください"))
    # The account keeps 「姓 名」 in 100 characters.
    for keys, label in ((("family_name", "given_name"), "氏名 名"), (("family_kana", "given_kana"), "カナ 名")):
        if all(len(r[k]) <= 50 for k in keys) and sum(len(r[k]) for k in keys) > 99:
            problems.append(Problem(n, label, "姓と名をあわせて99文字以内で入力してください"))
    for key, label in (("family_kana", "カナ 姓"), ("given_kana", "カナ 名")):
        if r[key] and not KANA.match(r[key]):
            problems.append(Problem(n, label, "全角カタカナで入力してください"))
    if r["phone"] and not PHONE.match(r["phone"]):
        problems.append(Problem(n, "電話", "数字とハイフンで入力してください"))
    if r["email"] and (len(r["email"]) > 254 or not EMAIL.match(r["email"])):
        problems.append(Problem(n, "メールアドレス", "メールアドレスの形式が正しくありません"))
    if r["valid_from"] and r["valid_until"] and r["valid_from"] > r["valid_until"]:
        problems.append(Problem(n, "指定期間 終了", "開始日より前の日付です"))


# --- planning ------------------------------------------------------------------------------------------------------

def _existing_doctors(keys) -> dict[tuple[str, str], User]:
    """The doctor (not deleted) holding each (kind, 指定医番号) of `keys`, found with one query (database.among);
    what the plan reads of them (issuer, memberships and their institutions, designations) comes along in a
    constant number of queries, not one per row."""
    found = {}
    numbers = sorted({number for _, number in keys})
    for among in database.among(Designation.number, numbers):
        query = (select(Designation.kind, Designation.number, User).join(User, Designation.user)
                 .where(among, User.status != STATUS_DELETED).order_by(User.id)
                 .options(joinedload(User.issuing_municipality),
                          selectinload(User.memberships).joinedload(Membership.institution),
                          selectinload(User.designations)))
        for kind, number, user in db.session.execute(query):
            found.setdefault((kind, number), user)
    return {key: found[key] for key in keys if key in found}


def plan(municipality: Municipality, filename: str, data: bytes) -> Plan:
    """Read and check the file against the database; nothing is written."""
    try:
        table = read_table(filename, data)
    except FileRefused as e:
        return Plan(municipality, "", None, "", "", problems=[Problem(None, None, p) for p in e.problems])
    return plan_table(municipality, table)


def plan_table(municipality: Municipality, table: list[tuple[int, list]]) -> Plan:
    """Check a table (as read_table returns it: the headings' row, then the data rows) against the database."""
    try:
        records, problems = parse_rows(table)
    except FileRefused as e:
        return Plan(municipality, "", None, "", "", problems=[Problem(None, None, p) for p in e.problems])
    return plan_records(municipality, records, problems)


def plan_records(municipality: Municipality, records: list[dict], problems=()) -> Plan:
    """Check parsed records (parse_rows; `problems` its problems) against the database; nothing is written. The
    confirm step plans the records kept from the preview again, under the write lock, without reading the file."""
    problems = list(problems)
    codes = {r["institution_code"] for r in records if r["institution_code"]}
    families = {FAMILY[KIND_BY_LABEL[r["doctor_kind"]]] for r in records if r["doctor_kind"] in KIND_BY_LABEL}
    if len(codes) > 1:
        problems.append(Problem(None, "医療機関コード", "1つのファイルには1つの医療機関の指定医だけを記載してください"
                                f"（{'、'.join(sorted(codes))}）"))
    if len(families) > 1:
        problems.append(Problem(None, "指定医区分", "1つのファイルに難病と小慢の指定医を混在させることはできません。"
                                "種類ごとにファイルを分けてください"))
    code = next(iter(codes)) if len(codes) == 1 else ""
    names = {r["institution_name"] for r in records if r["institution_name"]}
    result = Plan(municipality, code, None, next(iter(names), ""), next(iter(families), ""), problems=problems)
    family = FAMILY_CODES.get(result.family)
    if family and not jurisdiction.is_authority(municipality, family):
        problems.append(Problem(None, "指定医区分", f"{municipality.name}は{result.family}の実施主体ではありません"
                                "（難病は都道府県・指定都市、小慢はそれに加えて中核市・児童相談所設置市）"))
    if code and not problems:
        result.institution = db.session.execute(select(Institution).filter_by(code=code)).scalar_one_or_none()
        authority = result.institution and jurisdiction.institution_authority(result.institution, family)
        if result.institution is not None and authority.id != municipality.id:
            problems.append(Problem(None, "医療機関コード", f"医療機関 {code} は{result.family}について"
                                    f"{authority.name}の所管です。所管の自治体に提出してください"))
        elif result.institution is not None and not result.institution.active:
            problems.append(Problem(None, "医療機関コード", f"医療機関 {code} は無効（廃止）になっています。"
                                    "再開した場合は医療機関の画面で「有効」にしてから取り込んでください"))
        if result.institution is None and not result.institution_name:
            problems.append(Problem(None, "医療機関名", f"医療機関 {code} は未登録です。医療機関名を記載するか、"
                                    "先に医療機関を登録してください"))
    seen = {}
    for r in records:
        key = (r["doctor_kind"], r["doctor_number"])
        if r["doctor_number"] and key in seen:
            problems.append(Problem(r["_row"], "指定医番号", f"{seen[key]}行目と同じ指定医が重複しています"))
        seen.setdefault(key, r["_row"])
    if problems:
        return result
    manager_taken = result.institution is not None and any(
        m.is_manager for m in result.institution.memberships)
    existing = _existing_doctors([(KIND_BY_LABEL[r["doctor_kind"]], r["doctor_number"]) for r in records])
    for r in records:
        row = _plan_row(r, municipality, result.institution,
                        existing.get((KIND_BY_LABEL[r["doctor_kind"]], r["doctor_number"])))
        if not manager_taken and row.outcome in ("create", "registered"):
            row.manager = manager_taken = True
            row.message += "（この医療機関の責任者になります）"
        result.rows.append(row)
    return result


DATE_KEYS = ("valid_from", "valid_until")


def records_json(result: Plan) -> bytes:
    """The plan's parsed rows as JSON: kept between preview and confirm, so that the confirm plans them again
    (plan_records) without reading the file a second time."""
    return json.dumps([{key: value.isoformat() if key in DATE_KEYS and value else value
                        for key, value in row.values.items()} for row in result.rows],
                      ensure_ascii=False).encode()


def records_from_json(data: bytes) -> list[dict]:
    """records_json's rows back; ValueError if `data` is not such a list."""
    try:
        records = json.loads(data)
        for record in records:
            for key in DATE_KEYS:
                record[key] = date.fromisoformat(record[key]) if record[key] else None
            if set(record) != {"_row", *COLUMN_BY_KEY}:
                raise ValueError("unexpected keys")
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError("not the rows of a plan") from e
    return records


def _plan_row(r, municipality, institution, existing: User | None) -> PlannedRow:
    if existing is None:
        return PlannedRow(r["_row"], r, "create", "ログインIDを発行します")
    if existing.issuing_municipality_id != municipality.id:
        issuer = existing.issuing_municipality.name if existing.issuing_municipality else "他の自治体"
        return PlannedRow(r["_row"], r, "other_issuer",
                          f"{issuer}が発行したID（{existing.login_id}）があります。ID は発行した自治体しか変更・削除"
                          f"できないため、{issuer}が削除してから再発行してください", existing)
    primary = existing.primary_membership
    if institution is not None and primary is not None and primary.institution_id == institution.id:
        return PlannedRow(r["_row"], r, "registered", f"既に登録済みです（{existing.login_id}）。登録不要です", existing)
    where = f"{primary.institution.name}（{primary.institution.code}）" if primary else "なし"
    return PlannedRow(r["_row"], r, "change_primary",
                      f"既にIDがあります（{existing.login_id}、現在の主たる勤務先: {where}）。新規発行はしません。"
                      "医療機関に主たる勤務先を確認し、この医療機関に移す場合だけ主たる勤務先の変更を指定してください"
                      "（指定しなければ、この行では何も変更しません）", existing,
                      blocked=_manager_block(existing, primary))


def _manager_block(user, primary) -> str:
    if primary is None or not primary.is_manager:
        return ""
    return (f"{user.name}（{user.login_id}）は{primary.institution.name}の責任者のため、主たる勤務先を変更できません。"
            "先に責任者を交代してください")


def change_primary_problems(result: Plan, rows) -> list[Problem]:
    """Why the rows asked for cannot have their 主たる勤務先 changed: a row that is not a change_primary row of this
    plan, or a doctor who is 責任者 at the current 主たる勤務先."""
    by_row = {r.row: r for r in result.rows}
    problems = []
    for number in sorted(rows):
        row = by_row.get(number)
        if row is None or row.outcome != "change_primary":
            problems.append(Problem(number, None, "主たる勤務先の変更の対象ではありません"
                                    "（確認画面の後に内容が変わった可能性があります。もう一度確認してください）"))
        elif row.blocked:
            problems.append(Problem(number, None, row.blocked))
    return problems


# --- importing -----------------------------------------------------------------------------------------------------

LOGIN_ID_DIGITS = 8


def new_login_ids(count: int) -> list[str]:
    """`count` distinct login IDs nobody has ("d" and 8 random digits), checked with one query (database.among; and
    again only for the rare ones already taken). Call it under the write lock, so that no other import takes them
    too."""
    chosen, seen = [], set()
    while len(chosen) < count:
        candidates = []
        while len(candidates) < count - len(chosen):
            candidate = f"d{secrets.randbelow(10 ** LOGIN_ID_DIGITS):0{LOGIN_ID_DIGITS}d}"
            if candidate not in seen:
                seen.add(candidate)
                candidates.append(candidate)
        taken = set()
        for among in database.among(User.login_id, candidates):
            taken.update(db.session.execute(select(User.login_id).where(among)).scalars())
        chosen.extend(c for c in candidates if c not in taken)
    return chosen


def new_login_id() -> str:
    return new_login_ids(1)[0]


def unusable_password_hash() -> str:
    """Accounts start with a password nobody knows; the 発行通知書 sets the one the doctor receives."""
    return auth.hash_password(secrets.token_urlsafe(32))


@lru_cache(maxsize=2)
def _imported_password_hash(profile: str) -> str:
    """unusable_password_hash() once per process (and argon2 profile) for every imported account: the secret is
    thrown away, so sharing the hash tells nothing, and an import does not spend an argon2 hash (0.2-0.3 s) each."""
    return unusable_password_hash()


def execute(result: Plan, *, filename: str, data: bytes = b"", actor=None, change_primary_rows=frozenset(),
            source: str = "file", application_ref: str = "", file_sha256: str | None = None,
            batch_id: int | None = None) -> ImportBatch:
    """Write the plan in one transaction (all rows or none) and log it.

    change_primary_rows: row numbers of change_primary rows whose doctor's 主たる勤務先 moves to this institution
    (the clerk confirmed it with the institution); the other change_primary rows change nothing. A number that is
    not such a row, or a doctor who is 責任者 at the current 主たる勤務先, refuses the whole import (FileRefused).
    source / application_ref: "file", or "form" with the 指定 application's reference (the individual path).
    file_sha256: the digest of the file the plan was read from, when `data` is not that file (the screen keeps the
    parsed rows between preview and confirm).
    batch_id: the batch begin_batch() recorded as 取込中 for this confirmation, which this makes 完了.

    The statements do not grow with the rows: one look-up of the login IDs, the accounts, designations and
    memberships a statement per table (nanbyo.bulk), the moves of 主たる勤務先 a few statements for all of them, the
    log entries one read of the chain's tail and one insert (audit.record_many)."""
    if not result.ok:
        raise FileRefused([str(p) for p in result.problems])
    change_primary_rows = set(change_primary_rows)
    refused = change_primary_problems(result, change_primary_rows)
    if refused:
        raise FileRefused([str(p) for p in refused])
    if source not in ("file", "form"):
        raise ValueError(f"unknown source {source!r}")
    placeholder = _imported_password_hash(current_app.config.get("NANBYO_ARGON2_PROFILE", "default"))
    try:
        database.begin_write()  # no-op when the caller planned under the lock already
        to_create = result.to_create
        institution = result.institution
        if institution is None:
            nanbyo_authority, shoman_authority = jurisdiction.defaults_for(result.municipality)
            institution = Institution(code=result.institution_code, name=result.institution_name, address="",
                                      municipality=nanbyo_authority, shoman_municipality=shoman_authority)
            db.session.add(institution)
        values = dict(municipality=result.municipality, institution=institution, institution_code=institution.code,
                      filename=filename[:200], file_sha256=file_sha256 or hashlib.sha256(data).hexdigest(),
                      family=result.family, created_by_id=getattr(actor, "id", None), created_count=len(to_create),
                      reported_count=len(result.rows) - len(to_create), source=source,
                      application_ref=application_ref[:40], status=BATCH_DONE)
        batch = db.session.get(ImportBatch, batch_id) if batch_id is not None else None
        if batch is None or batch.status != BATCH_RUNNING:
            batch = ImportBatch(created_at=utcnow(), **values)
            db.session.add(batch)
        else:
            for name, value in values.items():
                setattr(batch, name, value)
        for row in result.rows:
            if row.outcome == "registered" and row.manager:
                row.existing.primary_membership.is_manager = True
        moves = [_move(row, institution) for row in result.rows if row.row in change_primary_rows]
        db.session.flush()  # the institution and the batch: their ids go into every row below
        created_ids = _insert_doctors(to_create, result.municipality, institution, batch, placeholder)
        _apply_moves(moves, institution)
        audit.record_many(
            [dict(action="create", target_type=User.__tablename__, target_id=user_id,
                  data={"import_batch": batch.id, "role": DESIGNATED_DOCTOR}) for user_id in created_ids]
            + [dict(action="update", target=move.user, data=move.log_data(institution, batch)) for move in moves]
            + [dict(action="import_users", target=batch,
                    data={"institution_code": institution.code, "created": batch.created_count,
                          "reported": batch.reported_count, "file_sha256": batch.file_sha256, "source": source,
                          "primary_changed": [move.user.id for move in moves]})],
            actor=actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return batch


# A confirmation runs in one request (gunicorn's timeout, 120 s): a batch 取込中 for longer than this was killed.
BATCH_STALLED_AFTER = timedelta(minutes=10)


def begin_batch(municipality_id, *, filename, file_sha256, institution_code, actor) -> int:
    """Record a file's confirmation as 取込中, committed before its unit of work (on a connection of its own: the
    caller takes the write lock after this), so that a worker killed in the middle leaves the batch saying so. Its
    institution, if registered (a file may register it)."""
    with database.separate_write() as connection:
        return connection.execute(insert(ImportBatch.__table__).values(
            municipality_id=municipality_id, institution_code=institution_code[:10], filename=filename[:200],
            institution_id=select(Institution.id).where(Institution.code == institution_code).scalar_subquery(),
            file_sha256=file_sha256, family="", created_by_id=getattr(actor, "id", None), created_at=utcnow(),
            created_count=0, reported_count=0, source="file", application_ref="", status=BATCH_RUNNING,
        ).returning(ImportBatch.id)).scalar_one()


def forget_batch(batch_id):
    """The confirmation was refused (the rows no longer import cleanly; the clerk sees why): no batch to list. In the
    caller's unit of work, committed."""
    database.begin_write()
    db.session.execute(delete(ImportBatch).where(ImportBatch.id == batch_id, ImportBatch.status == BATCH_RUNNING))
    db.session.commit()


def fail_stalled(municipality_id=None, now=None) -> list[int]:
    """Batches (of `municipality_id`, or all) still 取込中 long after a confirmation can last become 失敗 (their worker
    died: nothing of them was written). Their ids."""
    stalled = select(ImportBatch.id).where(ImportBatch.status == BATCH_RUNNING,
                                           ImportBatch.created_at < (now or utcnow()) - BATCH_STALLED_AFTER)
    if municipality_id is not None:
        stalled = stalled.where(ImportBatch.municipality_id == municipality_id)
    if not db.session.execute(stalled.limit(1)).first():
        db.session.rollback()
        return []
    return fail_batches(stalled)


def fail_batches(ids) -> list[int]:
    """The batches `ids` (a list or a query of ids) still 取込中 become 失敗, each with one log entry in the name of who
    confirmed it, in a unit of work of their own: after a confirmation that failed (rolled back) or stalled."""
    database.begin_write()
    batches = db.session.execute(select(ImportBatch).where(ImportBatch.id.in_(ids),
                                                           ImportBatch.status == BATCH_RUNNING)).scalars().all()
    for batch in batches:  # a few at most: a record() each
        batch.status = BATCH_FAILED
        audit.record("import_users_failed", target=batch, result="failure", commit=False,
                     actor=db.session.get(User, batch.created_by_id) if batch.created_by_id else None,
                     data={"institution_code": batch.institution_code, "file_sha256": batch.file_sha256})
    db.session.commit()
    return [batch.id for batch in batches]


def _insert_doctors(rows: list[PlannedRow], municipality: Municipality, institution: Institution,
                    batch: ImportBatch, password_hash: str) -> list[int]:
    """The rows' accounts with their designation and primary membership, a statement per table (nanbyo.bulk); their
    ids in the rows' order. The login IDs are chosen here, under the write lock."""
    if not rows:
        return []
    login_ids = new_login_ids(len(rows))
    now = utcnow()
    connection = db.session.connection()
    bulk.insert_rows(connection, User.__table__, [
        dict(login_id=login_id, name=f"{v['family_name']} {v['given_name']}",
             name_kana=f"{v['family_kana']} {v['given_kana']}", email=v["email"] or None, phone=v["phone"],
             role=DESIGNATED_DOCTOR, status=STATUS_ACTIVE, failed_logins=0, password_hash=password_hash,
             must_change_password=True, issuing_municipality_id=municipality.id, import_batch_id=batch.id,
             created_at=now)
        for login_id, v in zip(login_ids, (row.values for row in rows))])
    # The batch is new: its accounts are exactly these.
    id_by_login = dict(db.session.execute(select(User.login_id, User.id).filter_by(import_batch_id=batch.id)).all())
    ids = [id_by_login[login_id] for login_id in login_ids]
    bulk.insert_rows(connection, Designation.__table__, [
        dict(user_id=user_id, kind=KIND_BY_LABEL[row.values["doctor_kind"]], number=row.values["doctor_number"],
             valid_from=row.values["valid_from"], valid_until=row.values["valid_until"])
        for user_id, row in zip(ids, rows)])
    bulk.insert_rows(connection, Membership.__table__, [
        dict(user_id=user_id, institution_id=institution.id, kind="primary", is_manager=row.manager,
             department=row.values["department"])
        for user_id, row in zip(ids, rows)])
    return ids


@dataclass
class _Move:
    """A change_primary row to carry out: the doctor's 主たる勤務先 moves to the importing institution."""
    row: PlannedRow
    old_id: int | None  # the primary membership that goes, and its institution's code
    old_code: str | None
    here: Membership | None  # the doctor's 兼務 row at the importing institution, which becomes the primary one
    designation: Designation
    valid_from: date | None
    valid_until: date | None

    @property
    def user(self) -> User:
        return self.row.existing

    def log_data(self, institution: Institution, batch: ImportBatch) -> dict:
        return {"primary_from": self.old_code, "primary_to": institution.code, "import_batch": batch.id,
                "row": self.row.row,
                "from_concurrent": self.here is not None, "designation": self.designation.kind,
                "valid_from": self.valid_from.isoformat() if self.valid_from else None,
                "valid_until": self.valid_until.isoformat() if self.valid_until else None}


def _move(row: PlannedRow, institution: Institution) -> _Move:
    """What moving the doctor's 主たる勤務先 here changes; checked again here, under the write lock."""
    user, v = row.existing, row.values
    old = user.primary_membership
    blocked = _manager_block(user, old)
    if blocked:
        raise FileRefused([str(Problem(row.row, None, blocked))])
    here = next((m for m in user.memberships if m.institution_id == institution.id), None) \
        if institution.id is not None else None
    designation = next(d for d in user.designations if d.kind == KIND_BY_LABEL[v["doctor_kind"]])
    return _Move(row, old.id if old is not None else None, old.institution.code if old is not None else None, here,
                 designation, v["valid_from"] or designation.valid_from, v["valid_until"] or designation.valid_until)


def _apply_moves(moves: list[_Move], institution: Institution):
    """Drop the old primary memberships, then make the 兼務 rows here primary or add primary rows (a user has at
    most one primary membership), and take the file's 指定期間: a few multi-row statements for any number of moves."""
    if not moves:
        return
    for among in database.among(Membership.id, [move.old_id for move in moves if move.old_id is not None]):
        db.session.execute(delete(Membership).where(among))
    promoted = [dict(id=move.here.id, kind="primary",
                     department=move.row.values["department"] or move.here.department)
                for move in moves if move.here is not None]
    if promoted:
        db.session.execute(update(Membership), promoted)
    added = [dict(user_id=move.user.id, institution_id=institution.id, kind="primary", is_manager=False,
                  department=move.row.values["department"]) for move in moves if move.here is None]
    if added:
        db.session.execute(insert(Membership), added)
    db.session.execute(update(Designation), [
        dict(id=move.designation.id, valid_from=move.valid_from, valid_until=move.valid_until) for move in moves])


FORM_ROW = 2  # the row number of the individual form's one doctor (as if under the headings' row of a file)
FORM_WORK_KIND = "主たる勤務先"


def form_table(values: dict) -> list[tuple[int, list]]:
    """The individual path: one doctor's values (by column key, as the form names its fields) as the one-row table of
    a file with the template's headings, for plan_table. The work kind is always 主たる勤務先."""
    values = dict(values, work_kind=FORM_WORK_KIND)
    return [(1, list(LABELS)), (FORM_ROW, ["" if values.get(c.key) is None else str(values.get(c.key))
                                           for c in COLUMNS])]


def report_lines(result: Plan) -> list[str]:
    """The same report on screen and on the command line."""
    if not result.ok:
        return [f"問題 {len(result.problems)} 件:"] + [f"  {p}" for p in result.problems]
    inst = result.institution.name if result.institution else f"{result.institution_name}（新規登録）"
    lines = [f"医療機関: {result.institution_code} {inst}  区分: {result.family}  {len(result.rows)} 行"]
    for row in result.rows:
        v = row.values
        lines.append(f"  {row.row}行目 {v['family_name']} {v['given_name']} {v['doctor_kind']} {v['doctor_number']}: "
                     f"{OUTCOME_LABELS[row.outcome]} - {row.message}" + (f"（{row.blocked}）" if row.blocked else ""))
    return lines


# --- template and sample ------------------------------------------------------------------------------------------

def template_xlsx() -> bytes:
    """A blank template: the data sheet (cells formatted as text so codes keep their zeros) and a guide sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET_NAME
    ws.append(LABELS)
    for i, column in enumerate(COLUMNS, start=1):
        cell = ws.cell(row=1, column=i)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="FFF2CC" if column.required else "EEEEEE")
        letter = cell.column_letter
        ws.column_dimensions[letter].width = max(12, len(column.label) * 2 + 2)
        if column.key not in ("valid_from", "valid_until"):
            for row in range(2, 202):
                ws.cell(row=row, column=i).number_format = "@"
    ws.freeze_panes = "A2"
    guide = wb.create_sheet("記入方法")
    guide.append(["列", "必須", "記入例", "説明", "使える見出し"])
    for column in COLUMNS:
        guide.append([column.label, "必須" if column.required else "", column.example, column.description,
                      " / ".join(column.headings)])
    guide.append([])
    guide.append(["注意", "", "", f"1ファイル＝1医療機関・1種類（難病または小慢）。{MAX_ROWS}行まで。セルの結合・数式は使えません。"])
    guide.append(["見出し", "", "", "見出しは列の名前で照合します（順序は自由。任意の列は省略可）。全角・半角、空白の有無、"
                  "（）と()、・と/ の違いは問いません。"])
    for letter, width in zip("ABCDE", (22, 6, 18, 90, 50)):
        guide.column_dimensions[letter].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def sample_csv() -> bytes:
    rows = [LABELS,
            ["難病指定医", "13-N-0101", "1310000017", "東京見本病院", "主たる勤務先", "脳神経内科", "見本", "太郎",
             "ミホン", "タロウ", "03-1234-5678", "taro@example.jp", "2026-04-01", "2031-03-31"],
            ["難病指定医", "13-N-0102", "1310000017", "東京見本病院", "主たる勤務先", "小児科", "見本", "花子",
             "ミホン", "ハナコ", "03-1234-5679", "", "2026-04-01", "2031-03-31"]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


# --- previews waiting for confirmation (the file store's "uploads" area; views/user_import.py) ----------------------

PREVIEW_SUFFIX = ".upload"


def preview_name(token) -> str:
    return f"{token}{PREVIEW_SUFFIX}"


def preview_aad(token) -> bytes:
    return f"user-import:{token}".encode()


def reencrypt_previews(ring) -> int:
    """Every preview waiting for confirmation under the ring's active key (the key rotation), in place."""
    area_store, done = files.store("uploads"), 0
    for entry in area_store.entries():
        if entry.name.endswith(PREVIEW_SUFFIX):
            token = entry.name[:-len(PREVIEW_SUFFIX)]
            done += files.reencrypt_stored(area_store, entry.name, preview_aad(token), ring)
    return done
