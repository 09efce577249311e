"""Counting documents and distinct patients (by blind index) in one GROUP BY, by up to MAX_DIMENSIONS dimensions.

- Scope: what the user may read (access.row_filter), so a municipality counts the documents it received and the
  operator every document; the CLI (user None) counts everything.
- Period: 作成年月日 (written_on), by month, fiscal quarter (第1四半期 = 4–6月) or 年度 (April–March); the filter is a
  年度 or a range of dates.
- 研究利用: research outputs count only the documents whose 研究利用同意 is 同意あり.
- Small cells: a row of fewer than SMALL_CELL patients shows neither count (「10未満」) when masked; a municipality's
  outputs are always masked, the operator's when asked.
- Distinct patients (by patient_key, the blind index as a number) are counted in the database at the level asked
  (never summed from finer rows: a patient with two documents of one 疾患群 is one patient of that 疾患群).
- Every dimension is an expression of the document's own columns (a 疾病's 疾患群, a 実施主体's 都道府県 and a 医療機関's
  code are read from lists the query carries, `lookup`, not by joins): on PostgreSQL the documents are then read in
  patient order from one covering index (ix_document_statistics) and a patient's documents of a group are told apart
  as they pass, with no hash of a million (group, patient) pairs (at 1M documents the disease and institution tables
  1.5–1.7 times faster than by joins and that hash; the others alike or a little faster).
"""
import json
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import (BigInteger, Integer, String, and_, bindparam, case, cast, extract, func, literal, select, text,
                        true)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from models.documents import Document
from models.institutions import Institution, Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo import access
from nanbyo.documents import fiscal_year
from nanbyo.document_codes import (APPLICATION_KIND_LABELS, KIND_SHORT_LABELS, NANBYO, REVIEW_RESULT_LABELS,
                                   SEX_LABELS, SHOMAN, STATUS_LABELS)
from nanbyo.extensions import db
from nanbyo.roles import OPERATOR_ROLES

SMALL_CELL = 10
MASKED = f"{SMALL_CELL}未満"
MAX_DIMENSIONS = 3
UNKNOWN = "不明"
WORK_MEM = "128MB"  # the sorts of 1M documents (a municipality's, by its own index) in memory, not on disk
PARALLEL_TUPLE_COST = 0.001  # PostgreSQL's default 0.1 keeps the statistics' million rows in one process
AGE_BANDS = [(0, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 79), (80, None)]


def _age_band():
    age = Document.patient_age
    return case(*[((age >= low) & (age <= high) if high is not None else age >= low, literal(low))
                  for low, high in AGE_BANDS], else_=literal(-1))


def _month():
    return cast(extract("month", Document.written_on), Integer)


def _year():
    return cast(extract("year", Document.written_on), Integer)


def _fiscal_year():
    return _year() - case((_month() < 4, 1), else_=0)


def _fiscal_quarter():
    return case((_month() < 4, 4), (_month() < 7, 1), (_month() < 10, 2), else_=3)


class lookup(FunctionElement):
    """`numbers[column]`: the number a small table gives the row's id, from a list of integers the query carries
    (position = id; 0 where no row has the id), instead of a join. A join would make the database read the documents
    in the joined order; this keeps each document's groups an expression of its own columns (see the module's note).
    Integers, and no gaps: PostgreSQL then finds an element by its position, where in an array of text or with
    NULLs it counts its way there (1.8 s more over a million rows for 2,000 institutions). Not cached: the list is
    part of the statement, read when it is compiled."""
    type = BigInteger()
    inherit_cache = False

    def __init__(self, numbers: list, column):
        self.numbers = numbers
        super().__init__(column)


@compiles(lookup, "postgresql")
def _lookup_postgresql(element, compiler, **kw):
    array = bindparam(None, element.numbers, type_=ARRAY(BigInteger), unique=True)
    # PostgreSQL's arrays count from 1.
    return f"({compiler.process(array, **kw)})[{compiler.process(element.clauses, **kw)} + 1]"


@compiles(lookup)
def _lookup_json(element, compiler, **kw):
    listed = bindparam(None, json.dumps(element.numbers), type_=String, unique=True)
    return f"json_extract({compiler.process(listed, **kw)}, '$[' || {compiler.process(element.clauses, **kw)} || ']')"


class code_number(FunctionElement):
    """A code of digits (a paper form's 医療機関コード) as a number, NULL for anything else: the numbers `lookup`
    gives registered institutions, so that a paper form naming one counts with it."""
    type = BigInteger()
    inherit_cache = True


@compiles(code_number, "postgresql")
def _code_number_postgresql(element, compiler, **kw):
    code = compiler.process(element.clauses, **kw)
    return f"CASE WHEN {code} ~ '^[0-9]{{1,18}}$' THEN CAST({code} AS BIGINT) END"


@compiles(code_number)
def _code_number_sqlite(element, compiler, **kw):
    code = compiler.process(element.clauses, **kw)
    return f"CASE WHEN {code} <> '' AND {code} NOT GLOB '*[^0-9]*' THEN CAST({code} AS INTEGER) END"


def _by_id(rows) -> list:
    """[(id, number)] as a list whose position is the id (0 where there is none)."""
    rows = list(rows)
    numbers = [0] * (max((row_id for row_id, _number in rows), default=0) + 1)
    for row_id, number in rows:
        numbers[row_id] = number or 0  # a 指定難病 without a category, say: no NULL in the array
    return numbers


def _lists():
    """The numbers by id that the dimensions read (db.session's, read once per request): a 指定難病's 疾患群 (category)
    and 告示番号, a 小慢 disease's 疾患群 (the number before its group's first hyphen) and the first id of its 小慢コード
    (several diseases share one), a 実施主体's 都道府県番号, an institution's code."""
    lists = db.session.info.get("nanbyo_stats_lists")
    if lists is None:
        nanbyo = db.session.execute(select(NanbyoDisease.id, NanbyoDisease.category_id,
                                           NanbyoDisease.notification_no)).all()
        shoman = db.session.execute(select(ShomanDisease.id, ShomanDisease.shoman_code, ShomanDisease.group_id)
                                    .order_by(ShomanDisease.id)).all()
        first_of_code = {}
        for disease_id, code, _group in shoman:
            first_of_code.setdefault(code, disease_id)
        lists = {
            "nanbyo_group": _by_id((i, category) for i, category, _n in nanbyo),
            "nanbyo_code": _by_id((i, n) for i, _category, n in nanbyo),
            "shoman_group": _by_id((i, int(group.split("-")[0])) for i, _code, group in shoman),
            "shoman_code": _by_id((i, first_of_code[code]) for i, code, _group in shoman),
            "prefecture": _by_id((i, int(n)) for i, n in db.session.execute(
                select(Municipality.id, Municipality.prefecture_no))),
            "institution": _by_id((i, int(code)) for i, code in db.session.execute(
                select(Institution.id, Institution.code))),
        }
        db.session.info["nanbyo_stats_lists"] = lists
    return lists


def _by_disease(nanbyo, shoman):
    lists = _lists()
    return case((Document.kind == NANBYO, lookup(lists[nanbyo], Document.nanbyo_disease_id)),
                else_=lookup(lists[shoman], Document.shoman_disease_id))


def _disease_code():
    """The 告示番号 of a 指定難病; the first id of a 小慢 disease's 小慢コード (named as its code)."""
    return _by_disease("nanbyo_code", "shoman_code")


def _disease_group():
    return _by_disease("nanbyo_group", "shoman_group")


def _prefecture():
    return lookup(_lists()["prefecture"], Document.municipality_id)


def _institution_code():
    """A registered institution's code, else the code a paper form gives (as numbers)."""
    return func.coalesce(func.nullif(lookup(_lists()["institution"], Document.institution_id), 0),
                         code_number(Document.paper_institution_code))


@dataclass(frozen=True)
class Dimension:
    key: str
    label: str
    expressions: tuple  # the GROUP BY's columns (callables: SQL built per query, of the document's own columns)


DIMENSIONS = {d.key: d for d in [
    Dimension("kind", "種類", (lambda: Document.kind,)),
    Dimension("disease_group", "疾患群", (lambda: Document.kind, _disease_group)),
    Dimension("disease", "疾病（告示番号／小慢コード）", (lambda: Document.kind, _disease_code)),
    Dimension("municipality", "実施主体", (lambda: Document.municipality_id,)),
    Dimension("prefecture", "都道府県", (_prefecture,)),
    Dimension("institution", "医療機関", (_institution_code,)),
    Dimension("sex", "性別", (lambda: Document.patient_sex,)),
    Dimension("age_band", "年齢階級（作成年月日）", (_age_band,)),
    Dimension("application_kind", "申請区分", (lambda: Document.application_kind,)),
    Dimension("status", "状態", (lambda: Document.status,)),
    Dimension("review_result", "審査結果", (lambda: Document.review_result,)),
    Dimension("month", "月（作成年月日）", (_year, _month)),
    Dimension("quarter", "四半期（年度）", (_fiscal_year, _fiscal_quarter)),
    Dimension("fiscal_year", "年度", (_fiscal_year,)),
]}


class StatsProblem(ValueError):
    """A request the statistics cannot answer; the message is for the user (Japanese)."""


@dataclass
class Request:
    by: list
    fiscal_year: int | None = None
    written_from: date | None = None
    written_until: date | None = None
    kind: str = ""
    application_kind: str = ""
    status: str = ""
    review_result: str = ""
    municipality_id: int | None = None
    research: bool = False  # 研究利用: only documents with 研究利用同意 = 同意あり
    mask: bool = False


@dataclass
class Table:
    headings: list
    rows: list = field(default_factory=list)  # [labels..., documents, patients] (masked cells as MASKED)
    masked: bool = False
    total_documents: int = 0  # of the rows shown (masked rows left out)


def check(request: Request):
    if not request.by:
        raise StatsProblem("集計項目を1つ以上選んでください。")
    if len(request.by) > MAX_DIMENSIONS:
        raise StatsProblem(f"集計項目は{MAX_DIMENSIONS}つまでです。")
    unknown = [key for key in request.by if key not in DIMENSIONS]
    if unknown:
        raise StatsProblem(f"集計項目「{'・'.join(unknown)}」はありません。")
    if len(set(request.by)) != len(request.by):
        raise StatsProblem("同じ集計項目を2回選んでいます。")
    if request.written_from and request.written_until and request.written_from > request.written_until:
        raise StatsProblem("期間の開始は終了以前の日付にしてください。")


def _criteria(user, request: Request) -> list:
    criteria = [access.row_filter(user, Document, "read") if user is not None else true()]
    if request.fiscal_year:
        criteria += [Document.written_on >= date(request.fiscal_year, 4, 1),
                     Document.written_on < date(request.fiscal_year + 1, 4, 1)]
    if request.written_from:
        criteria.append(Document.written_on >= request.written_from)
    if request.written_until:
        criteria.append(Document.written_on <= request.written_until)
    for key in ("kind", "application_kind", "status", "review_result"):
        if getattr(request, key):
            criteria.append(getattr(Document, key) == getattr(request, key))
    if request.municipality_id:
        criteria.append(Document.municipality_id == request.municipality_id)
    if request.research:
        criteria.append(Document.research_consent.is_(True))
    return criteria


def masked_for(user, request: Request) -> bool:
    """A municipality's outputs are always masked; the operator's (and the server's CLI) when asked."""
    return request.mask or (user is not None and user.role not in OPERATOR_ROLES)


def statement(user, request: Request):
    """The GROUP BY of `request` within `user`'s scope: the dimensions' columns, documents, patients. Each document
    is numbered among its patient's documents of the same group (a window in patient order, which the covering index
    ix_document_statistics gives on PostgreSQL); the first of each counts a patient."""
    check(request)
    dimensions = [DIMENSIONS[key] for key in request.by]
    keys = [expression().label(f"d{n}_{m}") for n, d in enumerate(dimensions)
            for m, expression in enumerate(d.expressions)]
    # The groups computed once (a subquery) and numbered by the names it gives them.
    groups = select(*keys, Document.patient_key.label("patient")).where(and_(*_criteria(user, request))).subquery()
    named = [groups.c[key.name] for key in keys]
    nth = func.row_number().over(partition_by=[groups.c.patient, *named]).label("nth")
    rows = select(*named, groups.c.patient, nth).subquery()
    columns = [rows.c[key.name] for key in keys]
    first = and_(rows.c.nth == 1, rows.c.patient.is_not(None))
    return (select(*columns, func.count().label("documents"),
                   func.count(case((first, 1))).label("patients")).group_by(*columns).order_by(*columns))


def count(user, request: Request) -> Table:
    """The table of `request` within `user`'s scope (None: the server's command line, everything)."""
    query = statement(user, request)
    dimensions = [DIMENSIONS[key] for key in request.by]
    if db.session.get_bind().dialect.name == "postgresql":
        # This transaction only: the sorts and groups of a million documents in memory, not spilled to disk; and
        # the index read and sorted by parallel workers, merged in patient order (Gather Merge) for the count, which
        # the default cost of passing a row between processes never chooses for a million rows.
        db.session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        db.session.execute(text(f"SET LOCAL parallel_tuple_cost = {PARALLEL_TUPLE_COST}"))
    masked = masked_for(user, request)
    labels = _Labels()
    table = Table(headings=[d.label for d in dimensions] + ["書類数", "患者数"], masked=masked)
    spans, position = [], 0  # (dimension key, its columns' slice of a row)
    for dimension in dimensions:
        spans.append((dimension.key, slice(position, position + len(dimension.expressions))))
        position += len(dimension.expressions)
    # Plain rows from the connection: the session's ORM result adds a call per row and 68,000 rows are a lot of them.
    for row in db.session.connection().execute(query):
        documents, patients = row[-2:]
        values = [labels.text(key, row[span]) for key, span in spans]
        small = masked and patients < SMALL_CELL
        table.total_documents += 0 if small else documents  # a total would give the masked rows away
        table.rows.append(values + ([MASKED, MASKED] if small else [documents, patients]))
    return table


class _Labels:
    """What people read for a group's values; the masters and organisations are read once, when first needed."""

    def __init__(self):
        self.loaded = {}
        self.said = {}  # (key, values) -> text: a table of 68,000 rows names a few hundred diseases and places

    def _load(self, name, loader):
        if name not in self.loaded:
            self.loaded[name] = loader()
        return self.loaded[name]

    def text(self, key, values) -> str:
        said = self.said.get((key, values))
        if said is None:
            said = self.said[(key, values)] = self._text(key, values)
        return said

    def _text(self, key, values) -> str:
        first = values[0]
        if key == "kind":
            return KIND_SHORT_LABELS.get(first, first)
        if key == "application_kind":
            return APPLICATION_KIND_LABELS.get(first, first)
        if key == "status":
            return STATUS_LABELS.get(first, first)
        if key == "review_result":
            return REVIEW_RESULT_LABELS.get(first, "未審査") if first else "未審査"
        if key == "sex":
            return SEX_LABELS.get(first, UNKNOWN)
        if key == "age_band":
            return UNKNOWN if first is None or first < 0 else (f"{first}歳以上" if first == AGE_BANDS[-1][0]
                                                               else f"{first}〜{first + 9}歳")
        if key == "month":
            return f"{values[0]:04d}-{values[1]:02d}" if values[0] else UNKNOWN
        if key == "quarter":
            if not values[0]:
                return UNKNOWN
            months = {1: "4〜6月", 2: "7〜9月", 3: "10〜12月", 4: "1〜3月"}[values[1]]
            return f"{values[0]}年度 第{values[1]}四半期（{months}）"
        if key == "fiscal_year":
            return f"{first}年度" if first else UNKNOWN
        if key == "municipality":
            names = self._load("municipality", lambda: dict(db.session.execute(
                select(Municipality.id, Municipality.name)).all()))
            return names.get(first, UNKNOWN)
        if key == "prefecture":
            names = self._load("prefecture", lambda: dict(db.session.execute(
                select(Municipality.prefecture_no, Municipality.name).where(Municipality.kind == "prefecture")).all()))
            return names.get(f"{first:02d}", f"{first:02d}") if first else UNKNOWN
        if key == "institution":
            if not first:
                return UNKNOWN
            code = f"{first:010d}"  # 医療機関コード: 10 digits
            names = self._load("institution", lambda: dict(db.session.execute(
                select(Institution.code, Institution.name)).all()))
            if code not in names:
                names |= self._paper_institutions()
            return f"{code} {names.get(code, '')}".strip()
        kind, number = values
        if not number:
            return f"{KIND_SHORT_LABELS.get(kind, kind)} {UNKNOWN}"
        code = str(number)
        if key == "disease" and kind == SHOMAN:
            code = self._load("shoman_codes", lambda: dict(db.session.execute(
                select(ShomanDisease.id, ShomanDisease.shoman_code)).all()))[number]
        if key == "disease":
            names = self._load("disease", self._disease_names)
            return f"{KIND_SHORT_LABELS[kind]} {code} {names.get((kind, code), '')}".strip()
        names = self._load("disease_group", self._group_names)
        return f"{KIND_SHORT_LABELS[kind]} {names.get((kind, code), code)}"

    @staticmethod
    def _paper_institutions():
        """The names paper forms give institutions that are not registered (read once, when one is met)."""
        return dict(db.session.execute(select(Document.paper_institution_code, func.max(Document.paper_institution_name))
                                       .where(Document.paper_institution_code != "")
                                       .group_by(Document.paper_institution_code)).all())

    @staticmethod
    def _disease_names():
        names = {(NANBYO, str(n)): name for n, name in db.session.execute(
            select(NanbyoDisease.notification_no, NanbyoDisease.name_ja).where(NanbyoDisease.is_subtype.is_(False)))}
        names |= {(SHOMAN, code): name for code, name in db.session.execute(
            select(ShomanDisease.shoman_code, ShomanDisease.name_ja))}
        return names

    @staticmethod
    def _group_names():
        names = {(NANBYO, str(i)): name for i, name in db.session.execute(
            select(NanbyoCategory.id, NanbyoCategory.name_ja))}
        names |= {(SHOMAN, g): f"{g} {name}" for g, name in db.session.execute(
            select(ShomanGroup.group_id, ShomanGroup.name_ja).where(~ShomanGroup.group_id.contains("-")))}
        return names


def fiscal_years(user) -> list[int]:
    """The 年度 from the oldest to the newest 作成年月日 in the user's scope, newest first (the screen's choices):
    two index reads, not a scan."""
    scope = access.row_filter(user, Document, "read")
    first, last = db.session.execute(select(func.min(Document.written_on), func.max(Document.written_on))
                                     .where(scope)).one()
    if first is None:
        return []
    return list(range(fiscal_year(last), fiscal_year(first) - 1, -1))
