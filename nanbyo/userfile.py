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
import re
import secrets
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select

from models._types import utcnow
from models.accounts import Designation, ImportBatch, Membership, User
from models.institutions import Institution, Municipality
from nanbyo import audit, auth, database, jurisdiction
from nanbyo.codes import institution_code_error
from nanbyo.document_codes import NANBYO, SHOMAN
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR, DOCTOR_KIND_LABELS, STATUS_DELETED
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


def has_gaiji(text: str) -> bool:
    # CP932's 外字 (user-defined area) decodes to the Private Use Area: not a character anyone else can read.
    return any("\ue000" <= ch <= "\uf8ff" for ch in text)


def read_table(filename: str, data: bytes) -> list[tuple[int, list]]:
    """Rows as (row number, raw cell values), header included. Raises FileRefused."""
    if len(data) > MAX_BYTES:
        raise FileRefused([f"ファイルが大きすぎます（{MAX_BYTES // 1024 // 1024}MB まで）。"])
    if not data:
        raise FileRefused(["ファイルが空です。"])
    name = (filename or "").lower()
    is_zip = data.startswith(b"PK\x03\x04")
    if name.endswith(".xlsx") != is_zip or not (name.endswith(".xlsx") or name.endswith(".csv")):
        raise FileRefused(["ファイルの種類が正しくありません（.xlsx または .csv、中身と拡張子が一致すること）。"])
    return _read_xlsx(data) if is_zip else _read_csv(data)


def _read_csv(data: bytes):
    if b"\x00" in data:
        raise FileRefused(["ファイルに NUL 文字が含まれています（テキストの CSV ではありません）。"])
    # Decoded and parsed as a stream, a line at a time: the whole file as one str (and StringIO's copy of it) made a
    # 9 MB one-field file cost 70-110 MB before csv refused the field. A file that is not UTF-8 is read again as
    # CP932; one with a UTF-8 BOM must be UTF-8.
    for encoding in ("utf-8-sig",) if data.startswith(b"\xef\xbb\xbf") else ("utf-8", "cp932"):
        try:
            return _collect(_csv_rows(io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")))
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


def _collect(numbered_rows):
    """Row 1 and the non-blank rows. The limit counts data rows; blank ones (a spreadsheet's formatted but empty
    rows, ",,,," lines) only up to MAX_SHEET_ROWS."""
    rows, filled = [], 0
    for number, cells in numbered_rows:
        if number > MAX_SHEET_ROWS:
            raise FileRefused([f"行数が多すぎます（空白行を含めて{MAX_SHEET_ROWS}行まで）。不要な行を削除してください。"])
        # count(None) first: an xlsx row of empty cells is blank without a call per cell
        if number == 1 or (cells.count(None) < len(cells) and any(normalise(c) for c in cells)):
            filled += 1
            if filled > MAX_ROWS + 1:
                raise FileRefused([f"データが{MAX_ROWS}行を超えています。ファイルを分けてください。"])
            rows.append((number, cells))
    return rows


MERGE_CELL = re.compile(rb"<(?:[\w.-]+:)?mergeCell[\s/>]")  # with or without a namespace prefix


def _sheet_paths(data: bytes) -> dict[str, str]:
    """Sheet name -> worksheet XML path, read from the workbook parts (to look for merged cells)."""
    z = zipfile.ZipFile(io.BytesIO(data))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
          "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
    book = parse_xml(z.read("xl/workbook.xml"))
    rels = parse_xml(z.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") for r in rels}
    paths = {}
    for sheet in book.iterfind("m:sheets/m:sheet", ns):
        target = targets.get(sheet.get(f"{{{ns['r']}}}id"), "")
        target = target.lstrip("/")
        paths[sheet.get("name")] = target if target.startswith("xl/") else f"xl/{target}"
    return paths


def _read_xlsx(data: bytes):
    from openpyxl import load_workbook
    from openpyxl.cell.read_only import EMPTY_CELL
    try:
        check_zip(data)
        # openpyxl reads worksheets and shared strings with Python's expat, which expands entities (unless defusedxml
        # is installed): no part may have a DTD, in whatever encoding it is written.
        check_xml_parts(data)
        paths = _sheet_paths(data)
    except (UnsafeFile, KeyError, zipfile.BadZipFile) as e:
        raise FileRefused([str(e) if isinstance(e, UnsafeFile) else "xlsx ファイルが壊れています。"])
    except Exception:  # lxml errors: a broken workbook part
        raise FileRefused(["xlsx ファイルが壊れています。"])
    if SHEET_NAME not in paths:
        raise FileRefused([f"シート「{SHEET_NAME}」がありません（テンプレートのシートに入力してください）。"])
    try:
        sheet_xml = zipfile.ZipFile(io.BytesIO(data)).read(paths[SHEET_NAME])
    except Exception:  # a missing part
        raise FileRefused(["xlsx ファイルが壊れています。"])
    if MERGE_CELL.search(sheet_xml):
        raise FileRefused(["結合されたセルがあります。セルの結合を解除してください。"])
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:
        raise FileRefused(["xlsx ファイルを読み込めません。"])
    try:
        ws = wb[SHEET_NAME]
        # openpyxl stops at the last row <dimension> claims, and a writer can claim too few: read every row (the
        # width stays capped, the rows are limited by _collect).
        ws.reset_dimensions()
        # Cells the sheet leaves out are EMPTY_CELL: skipping the call for them keeps the 100,000 blank rows a lone
        # cell at row 1,048,576 brings (refused by _collect) to well under a second.
        return _collect((number, [None if c is EMPTY_CELL else _cell_value(c) for c in cells])
                        for number, cells in enumerate(ws.iter_rows(max_col=MAX_COLUMNS), start=1))
    except FileRefused:
        raise
    except Exception:  # the worksheet is parsed while iterating: malformed XML, a NUL byte, a bad character
        raise FileRefused(["xlsx ファイルを読み込めません。"])
    finally:
        wb.close()


class Formula(str):
    """A formula cell, kept as its text and refused by validation."""


def _cell_value(cell):
    if getattr(cell, "data_type", None) == "f":
        return Formula(cell.value)
    return getattr(cell, "value", None)


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
    return re.sub(r"\s+", " ", text)


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
NUMBER = re.compile(r"^[0-9A-Za-z-]{1,20}$")


def _check_record(r, problems):
    n = r["_row"]
    if r["doctor_kind"] and r["doctor_kind"] not in KIND_BY_LABEL:
        problems.append(Problem(n, "指定医区分", "難病指定医・協力難病指定医・小慢指定医のいずれかを入力してください"))
    if r["doctor_number"] and not NUMBER.match(r["doctor_number"]):
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

def _existing_doctor(kind, number):
    return db.session.execute(
        select(User).join(Designation).where(Designation.kind == kind, Designation.number == number,
                                             User.status != STATUS_DELETED)).scalars().first()


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
    for r in records:
        row = _plan_row(r, municipality, result.institution)
        if not manager_taken and row.outcome in ("create", "registered"):
            row.manager = manager_taken = True
            row.message += "（この医療機関の責任者になります）"
        result.rows.append(row)
    return result


def _plan_row(r, municipality, institution) -> PlannedRow:
    kind = KIND_BY_LABEL[r["doctor_kind"]]
    existing = _existing_doctor(kind, r["doctor_number"])
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

def new_login_id() -> str:
    while True:
        candidate = "d" + "".join(secrets.choice("0123456789") for _ in range(8))
        if db.session.execute(select(User.id).filter_by(login_id=candidate)).first() is None:
            return candidate


def unusable_password_hash() -> str:
    """Accounts start with a password nobody knows; the 発行通知書 sets the one the doctor receives."""
    return auth.hash_password(secrets.token_urlsafe(32))


def execute(result: Plan, *, filename: str, data: bytes, actor=None, change_primary_rows=frozenset(),
            source: str = "file", application_ref: str = "") -> ImportBatch:
    """Write the plan in one transaction (all rows or none) and log it.

    change_primary_rows: row numbers of change_primary rows whose doctor's 主たる勤務先 moves to this institution
    (the clerk confirmed it with the institution); the other change_primary rows change nothing. A number that is
    not such a row, or a doctor who is 責任者 at the current 主たる勤務先, refuses the whole import (FileRefused).
    source / application_ref: "file", or "form" with the 指定 application's reference (the individual path)."""
    if not result.ok:
        raise FileRefused([str(p) for p in result.problems])
    change_primary_rows = set(change_primary_rows)
    refused = change_primary_problems(result, change_primary_rows)
    if refused:
        raise FileRefused([str(p) for p in refused])
    if source not in ("file", "form"):
        raise ValueError(f"unknown source {source!r}")
    try:
        database.begin_write()  # no-op when the caller planned under the lock already
        institution = result.institution
        if institution is None:
            nanbyo_authority, shoman_authority = jurisdiction.defaults_for(result.municipality)
            institution = Institution(code=result.institution_code, name=result.institution_name, address="",
                                      municipality=nanbyo_authority, shoman_municipality=shoman_authority)
            db.session.add(institution)
        batch = ImportBatch(municipality=result.municipality, institution=institution, filename=filename[:200],
                            file_sha256=hashlib.sha256(data).hexdigest(), family=result.family,
                            created_by_id=getattr(actor, "id", None), created_at=utcnow(),
                            created_count=len(result.to_create),
                            reported_count=len(result.rows) - len(result.to_create),
                            source=source, application_ref=application_ref[:40])
        db.session.add(batch)
        placeholder = unusable_password_hash()
        created = []
        for row in result.rows:
            v = row.values
            if row.outcome == "create":
                user = User(login_id=new_login_id(), name=f"{v['family_name']} {v['given_name']}",
                            name_kana=f"{v['family_kana']} {v['given_kana']}", email=v["email"] or None,
                            phone=v["phone"], role=DESIGNATED_DOCTOR, password_hash=placeholder,
                            must_change_password=True, issuing_municipality=result.municipality, import_batch=batch)
                user.designations.append(Designation(kind=KIND_BY_LABEL[v["doctor_kind"]], number=v["doctor_number"],
                                                     valid_from=v["valid_from"], valid_until=v["valid_until"]))
                user.memberships.append(Membership(institution=institution, kind="primary", is_manager=row.manager,
                                                   department=v["department"]))
                db.session.add(user)
                created.append(user)
            elif row.outcome == "registered" and row.manager:
                membership = row.existing.primary_membership
                membership.is_manager = True
        db.session.flush()
        for user in created:
            audit.record("create", target=user, actor=actor, commit=False,
                         data={"import_batch": batch.id, "role": user.role})
        moved = [_change_primary(row, institution, batch, actor)
                 for row in result.rows if row.row in change_primary_rows]
        audit.record("import_users", target=batch, actor=actor, commit=False,
                     data={"institution_code": institution.code, "created": batch.created_count,
                           "reported": batch.reported_count, "file_sha256": batch.file_sha256, "source": source,
                           "primary_changed": [user.id for user in moved]})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return batch


def _change_primary(row: PlannedRow, institution: Institution, batch: ImportBatch, actor) -> User:
    """Move the doctor's 主たる勤務先 to `institution` (its 兼務 row there, if any, becomes the primary one), drop the
    old primary membership, and take the file's 指定期間. Checked again here, under the write lock."""
    user, v = row.existing, row.values
    old = user.primary_membership
    blocked = _manager_block(user, old)
    if blocked:
        raise FileRefused([str(Problem(row.row, None, blocked))])
    old_code = old.institution.code if old is not None else None
    here = next((m for m in user.memberships if m.institution_id == institution.id), None)
    if old is not None:
        user.memberships.remove(old)
        db.session.flush()  # the old primary row goes first: a user has at most one primary membership
    if here is not None:
        here.kind = "primary"
        if v["department"]:
            here.department = v["department"]
    else:
        user.memberships.append(Membership(institution=institution, kind="primary", department=v["department"]))
    kind = KIND_BY_LABEL[v["doctor_kind"]]
    designation = next(d for d in user.designations if d.kind == kind)
    if v["valid_from"] is not None:
        designation.valid_from = v["valid_from"]
    if v["valid_until"] is not None:
        designation.valid_until = v["valid_until"]
    db.session.flush()
    audit.record("update", target=user, actor=actor, commit=False,
                 data={"primary_from": old_code, "primary_to": institution.code, "import_batch": batch.id,
                       "row": row.row, "from_concurrent": here is not None, "designation": kind,
                       "valid_from": designation.valid_from.isoformat() if designation.valid_from else None,
                       "valid_until": designation.valid_until.isoformat() if designation.valid_until else None})
    return user


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
