"""The lists' queries at scale: a page's ids first (views/base.py get_list), then its rows; screens in a fixed number
of statements; and on PostgreSQL every scoped list walks an index.

A page must hold exactly the rows a plain ORDER BY <sort>, <primary key> LIMIT/OFFSET over the scoped, filtered and
searched table gives (Flask-Admin's own query, with the primary key breaking ties so that pages never overlap).
"""
import re
from datetime import timedelta

import pytest
from flask_admin.contrib.sqla import ModelView
from flask_login import login_user
from sqlalchemy import Unicode, cast, event, or_, select, text

from models._types import today_jst
from models.accounts import User
from models.audit import OperationLog
from models.documents import Document
from nanbyo import access, audit, documents
from nanbyo.extensions import db
from tests.helpers import (OSAKA, TOKYO, gen_document, gen_institution, gen_municipality, gen_user, log_entries,
                           login, logout)

PAGE = 5
STATUSES = ("draft", "finalized", "received", "reviewed", "completed")


def admin_view(app, endpoint):
    return next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == endpoint)


def filter_arg(view, name, kind):
    """The URL argument of a list filter: Flask-Admin names it flt<n>_<index of the filter>."""
    index = next(i for i, f in enumerate(view._filters) if str(f.name) == name and type(f).__name__ == kind)
    return f"flt0_{index}"


def sort_arg(view, column):
    return str([name for name, _label in view._list_columns].index(column))


def listed(app, view, user, page_size=PAGE, **args):
    """The ids get_list shows, with the arguments the list URL carries (as index_view passes them)."""
    with app.test_request_context("/", query_string=args):
        login_user(user)
        view_args = view._get_list_extra_args()
        sort = view._get_column_by_idx(view_args.sort)
        _count, rows = view.get_list(view_args.page, sort[0] if sort else None, view_args.sort_desc,
                                     view_args.search, view_args.filters, page_size=page_size)
        return [row.id for row in rows]


def stock_listed(app, view, user, page_size=PAGE, **args):
    """The same page through Flask-Admin's own get_list (one query with the eager joins, OFFSET over it)."""
    with app.test_request_context("/", query_string=args):
        login_user(user)
        view_args = view._get_list_extra_args()
        sort = view._get_column_by_idx(view_args.sort)
        _count, rows = ModelView.get_list(view, view_args.page, sort[0] if sort else None, view_args.sort_desc,
                                          view_args.search, view_args.filters, page_size=page_size)
        return [row.id for row in rows]


def plain_pages(statement):
    """Every page of a plain ORDER BY ... LIMIT/OFFSET query, until an empty one."""
    pages, page = [], 0
    while True:
        ids = db.session.execute(statement.limit(PAGE).offset(page * PAGE)).scalars().all()
        if not ids:
            return pages
        pages.append(ids)
        page += 1


def assert_same_pages(app, view, user, statement, min_pages=2, **args):
    expected = plain_pages(statement)
    assert len(expected) >= min_pages, "the case must span pages"
    for page, ids in enumerate(expected + [[]]):
        assert listed(app, view, user, page=page, **args) == ids, (page, args)
    shown = [i for ids in expected for i in ids]
    assert len(shown) == len(set(shown)), "no row on two pages"


# --- data ----------------------------------------------------------------------------------------------------------

@pytest.fixture
def world(app):
    """Two municipalities; a hospital in Tokyo (two doctors, one its 責任者, and a staff member who drafts), a clinic
    in Osaka; 24 documents over five statuses and both kinds, with 作成年月日 that tie."""
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    hospital, clinic = gen_institution(tokyo), gen_institution(osaka)
    both = ("nanbyo", "shoman")
    manager = gen_user("designated_doctor", institution=hospital, manager=True, designations=both)
    doctor = gen_user("designated_doctor", institution=hospital, designations=both)
    staff = gen_user("institution_staff", institution=hospital)
    osaka_doctor = gen_user("designated_doctor", institution=clinic, designations=both)
    today = today_jst()
    docs = []
    for i in range(24):
        author = (manager, doctor, osaka_doctor)[i % 3]
        status = STATUSES[i % 5]
        drafter = staff if author is doctor else None  # the staff member drafts the doctor's documents
        doc = gen_document(author, status=status, kind="shoman" if i % 4 == 0 else "nanbyo", created_by=drafter)
        doc.written_on = today - timedelta(days=i % 4)  # six documents a day: ties that only No. breaks
        docs.append(doc)
    db.session.commit()
    return {"docs": docs, "tokyo": tokyo, "osaka": osaka, "manager": manager, "doctor": doctor, "staff": staff,
            "osaka_doctor": osaka_doctor, "clerk": gen_user("municipality_user", municipality=tokyo),
            "operator": gen_user("operator_admin"), "today": today}


def scoped(user, *criteria):
    return select(Document.id).where(access.row_filter(user, Document, "read"), *criteria)


# --- pages ---------------------------------------------------------------------------------------------------------

def test_documents_are_newest_first_by_written_on_then_no(app, world):
    view = admin_view(app, "document")
    operator = world["operator"]
    assert_same_pages(app, view, operator, scoped(operator).order_by(Document.written_on.desc(), Document.id.desc()))
    first = listed(app, view, operator, page_size=50)
    assert first[0] == max(d.id for d in world["docs"] if d.written_on == world["today"])


@pytest.mark.parametrize("who", ["operator", "clerk", "manager", "doctor", "staff", "osaka_doctor"])
@pytest.mark.parametrize("column, desc", [("written_on", False), ("written_on", True), ("id", False),
                                          ("id", True), ("status", False), ("status", True)])
def test_document_pages_are_the_plain_query_pages_for_every_sort_and_scope(app, world, who, column, desc):
    view, user = admin_view(app, "document"), world[who]
    key = getattr(Document, column)
    order = [key.desc(), Document.id.desc()] if desc else [key, Document.id]
    args = {"sort": sort_arg(view, column), **({"desc": "1"} if desc else {})}
    assert_same_pages(app, view, user, scoped(user).order_by(*order), **args)


@pytest.mark.parametrize("who", ["operator", "clerk", "manager", "doctor", "staff"])
def test_document_pages_under_filters(app, world, who):
    view, user, today = admin_view(app, "document"), world[who], world["today"]
    newest = (Document.written_on.desc(), Document.id.desc())
    cases = [
        ({filter_arg(view, "種類", "FilterEqual"): "nanbyo"}, [Document.kind == "nanbyo"]),
        ({filter_arg(view, "作成年月日", "DateBetweenFilter"):
          f"{today - timedelta(days=2):%Y-%m-%d} to {today - timedelta(days=1):%Y-%m-%d}"},
         [Document.written_on.between(today - timedelta(days=2), today - timedelta(days=1))]),
        ({filter_arg(view, "作成年月日", "DateSmallerFilter"): f"{today:%Y-%m-%d}"}, [Document.written_on < today]),
    ]
    for args, criteria in cases:
        assert_same_pages(app, view, user, scoped(user, *criteria).order_by(*newest), min_pages=1, **args)
    # 状態 of one status, sorted by No.: as Flask-Admin's own query gives it.
    status = {"clerk": "completed", "manager": "draft", "staff": "draft"}.get(who, "finalized")
    args = {filter_arg(view, "状態", "FilterEqual"): status, "sort": sort_arg(view, "id")}
    expected = db.session.execute(scoped(user, Document.status == status).order_by(Document.id)).scalars().all()
    assert expected and listed(app, view, user, page_size=50, **args) == expected
    assert stock_listed(app, view, user, page_size=50, **args) == expected


def test_user_pages_with_search_filter_and_ties(app, world):
    """Twelve doctors share a name: sorted by 氏名, their login IDs order nothing, id does."""
    view = admin_view(app, "user")
    for _ in range(12):
        gen_user("designated_doctor", institution=gen_institution(world["tokyo"]), name="同名 医師")
    admin = gen_user("municipality_admin", municipality=world["tokyo"])
    term = "user"
    searched = or_(*(cast(getattr(User, c), Unicode).ilike(f"%{term}%") for c in ("login_id", "name", "name_kana",
                                                                                   "email")))
    for user in (world["operator"], admin):
        base = select(User.id).where(access.row_filter(user, User, "read"))
        assert_same_pages(app, view, user, base.where(searched).order_by(User.name, User.id),
                          search=term, sort=sort_arg(view, "name"))
        assert_same_pages(app, view, user, base.where(User.role == "designated_doctor").order_by(
            User.name.desc(), User.id.desc()), sort=sort_arg(view, "name"), desc="1",
            **{filter_arg(view, "ロール", "FilterEqual"): "designated_doctor"})
        # ログインID is unique: the order needs no tie-break, and Flask-Admin's own query pages alike.
        args = {"search": term, "page": "1"}
        assert listed(app, view, user, **args) == stock_listed(app, view, user, **args) != []


def test_operation_log_is_newest_first_by_time_and_filters_page_alike(app, world):
    view = admin_view(app, "operation_log")
    for i in range(14):
        audit.record("login" if i % 2 else "logout", actor=world["clerk"], data={"n": i})
    operator = world["operator"]
    base = select(OperationLog.id)
    assert_same_pages(app, view, operator, base.order_by(OperationLog.created_at.desc(), OperationLog.id.desc()))
    assert_same_pages(app, view, operator, base.where(OperationLog.action == "login").order_by(
        OperationLog.created_at.desc(), OperationLog.id.desc()),
        **{filter_arg(view, "操作", "FilterEqual"): "login"})
    assert_same_pages(app, view, operator, base.order_by(OperationLog.seq), sort=sort_arg(view, "seq"))
    assert set(view._sortable_columns) == {"seq", "created_at"}, "only what an index keeps in order sorts"


def test_list_page_logs_and_marks_the_rows_it_shows(app, client, world):
    view = admin_view(app, "document")
    login(client, world["doctor"])
    page = client.get("/admin/document/").get_data(as_text=True)
    shown = listed(app, view, world["doctor"], page_size=view.page_size)
    assert log_entries("document_list")[-1].data["ids"] == shown
    assert [int(i) for i in dict.fromkeys(re.findall(r"details/\?id=(\d+)", page))] == shown
    # ✎ and 🗑 only on the doctor's own drafts and finalized documents (writable_ids, from the same page of ids),
    # each with its own row's id (the buttons are rendered once per page).
    writable = {d.id for d in world["docs"] if d.author_id == world["doctor"].id and d.status in ("draft", "finalized")}
    assert {int(i) for i in re.findall(r"edit/\?id=(\d+)", page)} == writable
    assert {int(i) for i in re.findall(r'name="id" type="hidden" value="(\d+)"', page)} == writable
    assert "nanbyo-row-id" not in page


# --- statements per screen -----------------------------------------------------------------------------------------

@pytest.fixture
def statements(app):
    """The SQL statements sent while the block runs (every connection of the app's engine)."""
    sent = []

    def count(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)
    event.listen(db.engine, "before_cursor_execute", count)
    yield sent
    event.remove(db.engine, "before_cursor_execute", count)


def sent_by(client, statements, url):
    statements.clear()
    response = client.get(url)
    assert response.status_code == 200, url
    return len(statements)


def correct_five_times(doc):
    """Five corrections, each by another clerk: a per-row load of 訂正者 would show as five statements."""
    for n in range(5):
        clerk = gen_user("municipality_user", municipality=doc.municipality)
        documents.record_correction(doc, f"items.field{n}", f"項目{n}", "前", "後", clerk)
    db.session.commit()


# Session and user (and a doctor's memberships), the document with its related rows, the log entry (lock on
# PostgreSQL, tail, insert), then per screen: the correction history with its correctors and the permissions
# (details), a held form, the 提出先 choices and whether it may be finalized (edit, correct): never one per
# correction or relation.
SCREEN_STATEMENTS = 10


def test_document_screens_take_a_fixed_number_of_statements(app, client, statements):
    tokyo = gen_municipality(TOKYO)
    hospital = gen_institution(tokyo)
    doctor = gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"))
    drafter = gen_user("institution_staff", institution=hospital)
    plain = gen_document(doctor, status="received")
    corrected = gen_document(doctor, kind="shoman", status="received", created_by=drafter)
    correct_five_times(corrected)
    clerk = gen_user("municipality_user", municipality=tokyo)
    login(client, clerk)
    for screen in ("details", "correct", "review"):
        counts = {sent_by(client, statements, f"/admin/document/{screen}/?id={doc.id}") for doc in (plain, corrected)}
        assert len(counts) == 1 and counts.pop() <= SCREEN_STATEMENTS, (screen, counts)
    page = client.get(f"/admin/document/details/?id={corrected.id}").get_data(as_text=True)
    assert page.count("前") >= 5 and "項目4" in page

    drafts = [gen_document(doctor), gen_document(doctor, kind="shoman", created_by=drafter)]
    logout(client)
    login(client, doctor)
    for screen in ("details", "edit"):
        counts = {sent_by(client, statements, f"/admin/document/{screen}/?id={doc.id}") for doc in drafts}
        assert len(counts) == 1 and counts.pop() <= SCREEN_STATEMENTS, (screen, counts)


@pytest.mark.parametrize("who", ["clerk", "doctor", "operator"])
def test_list_page_takes_the_same_statements_for_1_and_30_rows(app, client, statements, who):
    tokyo = gen_municipality(TOKYO)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo), designations=("nanbyo", "shoman"))
    user = {"clerk": lambda: gen_user("municipality_user", municipality=tokyo), "doctor": lambda: doctor,
            "operator": lambda: gen_user("operator_admin")}[who]()
    gen_document(doctor, status="received")
    login(client, user)
    one = sent_by(client, statements, "/admin/document/")
    for i in range(29):
        gen_document(doctor, kind="shoman" if i % 2 else "nanbyo", status="completed" if i % 3 else "received")
    thirty = sent_by(client, statements, "/admin/document/")
    # Session and user (a doctor's memberships), the page's ids, its rows, the log entry (lock on PostgreSQL, tail,
    # insert), the rows with ✎/🗑: nothing per row.
    assert one == thirty <= 9, (one, thirty)


def test_user_list_loads_designations_for_the_page_at_once(app, client, statements):
    tokyo = gen_municipality(TOKYO)
    operator = gen_user("operator_admin")
    gen_user("designated_doctor", institution=gen_institution(tokyo))
    login(client, operator)
    one = sent_by(client, statements, "/admin/user/")
    for _ in range(15):
        gen_user("designated_doctor", institution=gen_institution(tokyo), designations=("nanbyo", "shoman"))
    assert sent_by(client, statements, "/admin/user/") == one


# --- PostgreSQL: the ids query of every scoped list is an index walk ----------------------------------------------

@pytest.fixture
def many_documents(app, world):
    """50,000 more documents (copies of one, over two years and both municipalities), vacuumed and analyzed as
    autovacuum keeps a table: the 責任者 and the Osaka doctor write nearly all; the doctor one in 250 (200, spread
    over the table, as a doctor's among everyone's)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    template = world["docs"][0]
    authors = [world[k].id for k in ("manager", "osaka_doctor", "doctor")]
    fixed = [c.name for c in Document.__table__.columns
             if c.name not in ("id", "uid", "access_key", "written_on", "municipality_id", "author_id",
                               "created_by_id", "status", "institution_id")]
    db.session.execute(text(
        f"INSERT INTO document ({', '.join(fixed)}, uid, written_on, municipality_id, author_id, created_by_id, "
        f"status, institution_id) "
        f"SELECT {', '.join('d.' + c for c in fixed)}, md5(g::text), d.written_on - (g % 730), "
        f"CASE WHEN g % 3 = 0 THEN :osaka ELSE :tokyo END, "
        f"CASE WHEN g % 250 = 0 THEN :a2 ELSE (ARRAY[:a0, :a1])[1 + g % 2] END, "
        f"CASE WHEN g % 250 = 0 THEN :a2 ELSE (ARRAY[:a0, :a1])[1 + g % 2] END, (ARRAY['draft','finalized','received','reviewed','completed'])[1 + g % 5], "
        f"d.institution_id FROM document d, generate_series(1, 50000) g WHERE d.id = :template"),
        {"osaka": world["osaka"].id, "tokyo": world["tokyo"].id, "a0": authors[0], "a1": authors[1],
         "a2": authors[2], "template": template.id})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE document"))
    return world


def ids_plan(app, view, user, page=0, **args):
    with app.test_request_context("/", query_string=args):
        login_user(user)
        view_args = view._get_list_extra_args()
        sort = view._get_column_by_idx(view_args.sort)
        _count, query = view.page_query(sort[0] if sort else None, view_args.sort_desc, view_args.search,
                                        view_args.filters, rows=(page + 1) * view.page_size)
        statement = view._apply_pagination(query, page, view.page_size).statement
        sql = str(statement.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    return db.session.execute(text("EXPLAIN " + sql)).scalars().all()


def test_scoped_document_lists_walk_an_index_on_postgresql(app, many_documents):
    world, view, today = many_documents, admin_view(app, "document"), many_documents["today"]
    range_arg = {filter_arg(view, "作成年月日", "DateBetweenFilter"):
                 f"{today - timedelta(days=400):%Y-%m-%d} to {today - timedelta(days=370):%Y-%m-%d}"}
    cases = [(world["clerk"], 0, range_arg), (world["clerk"], 0, {}), (world["clerk"], 60, {}),
             (world["operator"], 0, {}), (world["operator"], 300, {}), (world["operator"], 0, range_arg),
             (world["operator"], 0, {"sort": sort_arg(view, "status"), "desc": "1"})]
    for user, page, args in cases:
        plan = "\n".join(ids_plan(app, view, user, page, **args))
        assert "Seq Scan on document" not in plan, (user.role, page, args, plan)
        assert "Index Scan" in plan or "Index Only Scan" in plan, (user.role, page, args, plan)
        assert " Sort " not in f" {plan} ", (user.role, args, plan)


LIST_WIDE = ("pk_document", "ix_document_written_on_id", "ix_document_status_id", "ix_document_kind")


def test_a_doctors_list_gathers_the_doctors_rows_on_postgresql(app, many_documents):
    """A doctor's 200 documents among 50,000: every sort and filter reads them through the author / drafter indexes
    and sorts them. The database must not walk a list-wide index in list order hoping to meet them (for a doctor
    whose documents are old, such a walk reads most of the table), nor AND them with a whole kind or status."""
    world, view, today = many_documents, admin_view(app, "document"), many_documents["today"]
    doctor = world["doctor"]
    cases = [{}, {"sort": sort_arg(view, "status"), "desc": "1"}, {"sort": sort_arg(view, "id")},
             {filter_arg(view, "種類", "FilterEqual"): "shoman"},
             {filter_arg(view, "状態", "FilterEqual"): "received"},
             {filter_arg(view, "申請区分", "FilterEqual"): "new"},
             {filter_arg(view, "作成年月日", "DateSmallerFilter"): f"{today - timedelta(days=30):%Y-%m-%d}"}]
    for args in cases:
        for page in (0, 3):
            plan = "\n".join(ids_plan(app, view, doctor, page, **args))
            assert "ix_document_author_id" in plan and "ix_document_created_by_id" in plan, (args, plan)
            assert not [name for name in LIST_WIDE if f" {name} " in plan], (args, plan)
            assert "BitmapAnd" not in plan, (args, plan)


def test_a_managers_list_walks_each_branch_on_postgresql(app, many_documents):
    """A 責任者's scope is the institutions' documents OR their own elsewhere: each branch's first rows along an index
    in list order, merged and sorted (not a walk of a list-wide index, not every row of the institutions gathered)."""
    world, view = many_documents, admin_view(app, "document")
    for page, args in ((0, {}), (60, {}), (0, {"sort": sort_arg(view, "status"), "desc": "1"}),
                       (0, {filter_arg(view, "状態", "FilterEqual"): "received"})):
        plan = "\n".join(ids_plan(app, view, world["manager"], page, **args))
        assert "Seq Scan on document" not in plan, (page, args, plan)
        assert "ix_document_institution_id_" in plan and plan.count("Limit") >= 4, (page, args, plan)
        assert not [name for name in ("pk_document", "ix_document_written_on_id", "ix_document_status_id")
                    if f" {name} " in plan], (page, args, plan)

