"""A user data file import writes in bulk: the statements of a preview and a confirm do not grow with the rows, the
log entries go in with one read of the chain's tail (audit.record_many), and the whole import is one unit of work —
all accounts and entries, or none — also while other workers write."""
import datetime
import io
from contextlib import contextmanager
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from sqlalchemy import event, func, select

from models.accounts import Designation, ImportBatch, Membership, User
from models.audit import OperationLog
from nanbyo import audit, bulk, database, userfile
from nanbyo.extensions import db
from tests.helpers import OSAKA, PASSWORD, csrf_token, gen_institution, gen_municipality, gen_user, login
from tests.served import Browser, Gunicorn
from tests.userfile_helpers import counts, csv_bytes, doctor_elsewhere, doctor_row, xlsx_bytes

# Per-request statements besides the import's own may differ by a few (a session touched or not); what must not
# happen is one more per row.
PER_REQUEST_SLACK = 3


@contextmanager
def statements():
    """Every statement sent to the database meanwhile (an executemany counts once, as it is one round trip). The
    COPYs of nanbyo.bulk on PostgreSQL go past SQLAlchemy's events: they are counted where they are made."""
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    real_insert_rows = bulk.insert_rows

    def insert_rows(connection, table, rows):
        if rows and connection.dialect.name == "postgresql":
            seen.append(f"COPY {table.name}")
        return real_insert_rows(connection, table, rows)

    event.listen(db.engine, "before_cursor_execute", count)
    bulk.insert_rows = insert_rows
    try:
        yield seen
    finally:
        bulk.insert_rows = real_insert_rows
        event.remove(db.engine, "before_cursor_execute", count)


def rows(first, n, **overrides):
    return [doctor_row(i, **overrides) for i in range(first, first + n)]


def preview(client, token, data, filename="users.csv"):
    r = client.post("/admin/user-import/preview", data={"csrf_token": token, "file": (io.BytesIO(data), filename)},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]
    return r


def confirm(client, token, **fields):
    return client.post("/admin/user-import/confirm", data={"csrf_token": token, **fields})


@pytest.fixture
def clerk(client, tokyo):
    clerk = gen_user("municipality_admin", municipality=tokyo)
    login(client, clerk)
    return clerk


@pytest.fixture
def token(client, clerk):
    return csrf_token(client, "/admin/user-import/")


def log_count():
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(OperationLog)).scalar()


def assert_chain_intact():
    db.session.expire_all()
    problems, last_seq, _ = audit.verify()
    assert problems == []
    assert last_seq == log_count()


# --- statements -------------------------------------------------------------------------------------------------------

def test_preview_and_confirm_statements_do_not_grow_with_the_rows(client, hospital, token):
    measured = {}
    for n, first in ((10, 1), (200, 1001)):
        with statements() as at_preview:
            preview(client, token, csv_bytes(rows(first, n)))
        with statements() as at_confirm:
            r = confirm(client, token)
        assert r.status_code == 302 and "/batch/" in r.location
        measured[n] = (len(at_preview), len(at_confirm))
    assert db.session.execute(select(func.count()).select_from(User).filter_by(role="designated_doctor")
                              ).scalar() == 210
    (preview_10, confirm_10), (preview_200, confirm_200) = measured[10], measured[200]
    assert preview_200 <= preview_10 + PER_REQUEST_SLACK, measured
    assert confirm_200 <= confirm_10 + PER_REQUEST_SLACK, measured
    assert confirm_200 < 30, measured  # a small constant: it was ~7 a row (issue 11)


def test_planning_doctors_who_already_have_ids_does_not_cost_a_statement_per_row(client, tokyo, hospital, token):
    """The same file again: every row is an existing doctor, found (with what the preview shows of them) in bulk."""
    measured = {}
    for n, first in ((10, 1), (200, 1001)):
        data = csv_bytes(rows(first, n))
        preview(client, token, data)
        assert confirm(client, token).status_code == 302
        with statements() as again:
            page = preview(client, token, data).get_data(as_text=True)
        assert page.count("既に登録済みです") == n
        measured[n] = len(again)
    assert measured[200] <= measured[10] + PER_REQUEST_SLACK, measured


def test_moving_many_primary_institutions_costs_no_statement_per_row(client, tokyo, hospital, token):
    clinic = gen_institution(tokyo, code="1310000025", name="東京見本クリニック")
    measured = {}
    for n, first in ((2, 1), (20, 101)):
        doctors = [doctor_elsewhere(tokyo, clinic, number=f"13-N-{i:04d}") for i in range(first, first + n)]
        preview(client, token, csv_bytes(rows(first, n)))
        ticked = [str(i + 2) for i in range(n)]  # data rows start at row 2
        with statements() as seen:
            r = confirm(client, token, change_primary=ticked)
        assert r.status_code == 302, r.get_data(as_text=True)[:2000]
        db.session.expire_all()
        assert all(db.session.get(User, d.id).primary_membership.institution_id == hospital.id for d in doctors)
        measured[n] = len(seen)
    assert measured[20] <= measured[2] + PER_REQUEST_SLACK, measured
    updates = db.session.execute(select(OperationLog).filter_by(action="update")).scalars().all()
    assert len(updates) == 22 and all(e.data["primary_to"] == "1310000017" for e in updates)
    assert_chain_intact()


def test_login_ids_are_found_with_one_query_and_skip_those_taken(app, monkeypatch):
    taken = gen_user("designated_doctor", login_id="d00000001")
    draws = iter([1, 1, 2, 3] + list(range(4, 2000)))  # the first draw repeats, and is taken anyway
    monkeypatch.setattr(userfile.secrets, "randbelow", lambda _: next(draws))
    with statements() as seen:
        ids = userfile.new_login_ids(3)
    assert ids == ["d00000002", "d00000003", "d00000004"] and taken.login_id not in ids
    assert len(seen) == 2, "one look-up, and one more for the ID that was taken"
    with statements() as seen:
        assert len(set(userfile.new_login_ids(1500))) == 1500
    # PostgreSQL: one = ANY(array); SQLite: an IN list per thousand candidates.
    assert len(seen) == (1 if db.engine.dialect.name == "postgresql" else 2)


# --- the log ----------------------------------------------------------------------------------------------------------

def test_a_bulk_import_logs_each_account_in_one_verifiable_chain(client, clerk, hospital, token):
    gen_user("designated_doctor", institution=hospital)  # entries before the import: the chain goes on from them
    client.get("/admin/")
    before = log_count()
    preview(client, token, xlsx_bytes(rows(1, 300)), filename="users.xlsx")
    assert confirm(client, token).status_code == 302
    batch = db.session.execute(select(ImportBatch)).scalar_one()
    entries = db.session.execute(select(OperationLog).where(OperationLog.seq > before)
                                 .order_by(OperationLog.seq)).scalars().all()
    assert [e.action for e in entries] == ["create"] * 300 + ["import_users"]
    assert [int(e.target_id) for e in entries[:-1]] == [u.id for u in batch.users]
    assert all(e.data == {"import_batch": batch.id, "role": "designated_doctor"} for e in entries[:-1])
    assert {(e.actor_id, e.actor_login, e.actor_role) for e in entries} == {
        (clerk.id, clerk.login_id, "municipality_admin")}
    assert entries[-1].data["created"] == 300 and entries[-1].target_id == str(batch.id)
    assert [e.seq for e in entries] == list(range(before + 1, before + 302))
    assert_chain_intact()


def test_record_many_chains_after_record_and_record_goes_on_after_it(app):
    user = gen_user("designated_doctor", institution=gen_institution())
    audit.record("update", target=user, actor=user)
    database.begin_write()
    inserted = audit.record_many([dict(action="create", target=user, data={"n": i}) for i in range(5)], actor=user)
    db.session.commit()
    audit.record("update", target=user, actor=user)
    entries = db.session.execute(select(OperationLog).order_by(OperationLog.seq)).scalars().all()
    assert [e.action for e in entries][-7:] == ["update"] + ["create"] * 5 + ["update"]
    assert [r["seq"] for r in inserted] == [e.seq for e in entries[-6:-1]]
    assert [e.data for e in entries[-6:-1]] == [{"n": i} for i in range(5)]
    assert_chain_intact()


def test_record_many_refuses_to_write_outside_a_unit_of_work(app):
    user = gen_user("designated_doctor", institution=gen_institution())
    before = log_count()
    with pytest.raises(database.UnitOfWorkError):
        audit.record_many([dict(action="create", target=user)])
    assert log_count() == before


def test_record_many_keeps_passwords_out_of_the_log(app):
    user = gen_user("designated_doctor", institution=gen_institution())
    database.begin_write()
    audit.record_many([dict(action="update", target=user, data={"password": "secret-pw-123", "fields": ["x"]})],
                      actor=user)
    db.session.commit()
    entry = db.session.execute(select(OperationLog).order_by(OperationLog.seq.desc())).scalars().first()
    assert entry.data == {"fields": ["x"]}


# --- one unit of work -------------------------------------------------------------------------------------------------

class Broken(Exception):
    pass


def assert_only_a_failed_batch(before, entries_before):
    """What a confirmation that failed leaves: no account, membership, designation or institution; its batch, 失敗,
    with that one log entry."""
    after = counts()
    assert after[:4] == before[:4] and after[4] == before[4] + 1
    batch = db.session.execute(select(ImportBatch).order_by(ImportBatch.id.desc())).scalars().first()
    assert batch.status == "failed" and batch.created_count == 0
    entries = db.session.execute(select(OperationLog).filter_by(action="import_users_failed")).scalars().all()
    assert log_count() == entries_before + 1 and [e.target_id for e in entries] == [str(batch.id)]


def test_a_log_failure_in_the_middle_leaves_no_account_and_the_batch_says_failed(client, hospital, token, monkeypatch):
    preview(client, token, csv_bytes(rows(1, 200)))
    before, entries_before = counts(), log_count()
    real = audit._entry_values
    made = []

    def fail_at_the_100th(*args, **kwargs):
        made.append(1)
        if len(made) == 100:  # the accounts are in the database (not committed), half the entries built
            raise Broken
        return real(*args, **kwargs)

    monkeypatch.setattr(audit, "_entry_values", fail_at_the_100th)
    with pytest.raises(Broken):
        confirm(client, token)
    assert_only_a_failed_batch(before, entries_before)
    monkeypatch.setattr(audit, "_entry_values", real)
    # Nothing stayed locked or half-done: the same rows import afterwards.
    preview(client, token, csv_bytes(rows(1, 200)))
    assert confirm(client, token).status_code == 302
    assert counts()[0] == before[0] + 200
    assert_chain_intact()


def test_a_database_failure_in_the_middle_leaves_no_account_and_the_batch_says_failed(client, hospital, token,
                                                                                       monkeypatch):
    """The 150th account's login ID is taken by someone else: the insert fails in the middle of the batch."""
    other = gen_user("designated_doctor", institution=hospital)
    preview(client, token, csv_bytes(rows(1, 200)))
    before, entries_before = counts(), log_count()
    real = userfile.new_login_ids

    def one_taken(count):
        ids = real(count)
        ids[149] = other.login_id
        return ids

    monkeypatch.setattr(userfile, "new_login_ids", one_taken)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        confirm(client, token)
    assert_only_a_failed_batch(before, entries_before)
    assert db.session.execute(select(func.count()).select_from(Designation)
                              .filter(Designation.number.like("13-N-%"))).scalar() == 0
    assert db.session.execute(select(func.count()).select_from(Membership)
                              .filter_by(institution_id=hospital.id)).scalar() == 1  # `other`'s only
    assert_chain_intact()


def test_a_refused_move_leaves_the_created_accounts_out_too(tokyo, hospital):
    """execute() planned before the lock: the doctor became 責任者 meanwhile, so nothing of the file is written."""
    clinic = gen_institution(tokyo, code="1310000025", name="東京見本クリニック")
    doctor = doctor_elsewhere(tokyo, clinic, number="13-N-0050")
    result = userfile.plan(tokyo, "u.csv", csv_bytes(rows(1, 60)))
    assert len(result.to_create) == 59 and result.change_primary_rows == {51}
    doctor.memberships[0].is_manager = True
    db.session.commit()
    before, entries_before = counts(), log_count()
    with pytest.raises(userfile.FileRefused, match="責任者を交代してください"):
        userfile.execute(result, filename="u.csv", data=b"x", change_primary_rows={51})
    assert counts() == before and log_count() == entries_before


# --- parallel workers -------------------------------------------------------------------------------------------------

PARALLEL_LOGINS = 12


def served_login(browser, user):
    token = browser.csrf("/login")
    r = browser.post("/login", {"login_id": user.login_id, "password": PASSWORD, "csrf_token": token},
                     files={"key_file": (f"{user.login_id}.key", user.key_file)})
    assert r.status == 302 and r.location.endswith("/admin/"), r.status
    return browser


def served_preview(browser, data):
    token = browser.csrf("/admin/user-import/")
    r = browser.post("/admin/user-import/preview", {"csrf_token": token}, files={"file": ("users.csv", data)})
    assert r.status == 200 and 'id="confirm-import"' in r.text, r.text[:2000]
    return lambda: browser.post("/admin/user-import/confirm", {"csrf_token": token})


def test_parallel_imports_and_logins_keep_the_chain_intact(app, tokyo, hospital):
    from tests.test_parallel_requests import in_parallel, login_call
    osaka = gen_municipality(OSAKA)
    osaka_hospital = gen_institution(osaka, code="2710000019", name="大阪見本病院")
    tokyo_clerk = gen_user("municipality_admin", municipality=tokyo)
    osaka_clerk = gen_user("municipality_admin", municipality=osaka)
    doctors = [gen_user("designated_doctor", institution=hospital) for _ in range(PARALLEL_LOGINS)]
    server = Gunicorn(app, workers=2)
    try:
        # Previewed one after the other, confirmed at the same moment as each other and as the logins.
        confirms = [
            served_preview(served_login(Browser(server.port), tokyo_clerk), csv_bytes(rows(1, 150))),
            served_preview(served_login(Browser(server.port), osaka_clerk), csv_bytes(rows(
                5001, 150, 医療機関コード="2710000019", 医療機関名="大阪見本病院"))),
        ]
        responses = in_parallel(confirms + [login_call(Browser(server.port), d) for d in doctors])
    finally:
        errors = server.errors()
        server.stop()
    assert [r.status for r in responses] == [302] * len(responses), errors
    db.session.expire_all()
    batches = db.session.execute(select(ImportBatch).order_by(ImportBatch.id)).scalars().all()
    assert sorted(b.institution_id for b in batches) == sorted([hospital.id, osaka_hospital.id])
    for batch in batches:
        assert batch.created_count == 150 == len(batch.users)
        created = db.session.execute(select(OperationLog).filter_by(action="create", target_type="user_account").where(
            OperationLog.target_id.in_([str(u.id) for u in batch.users]))).scalars().all()
        assert len(created) == 150 and all(e.data["import_batch"] == batch.id for e in created)
        seqs = sorted(e.seq for e in created)
        assert seqs == list(range(seqs[0], seqs[0] + 150)), "one import's entries are not interleaved"
    logins = db.session.execute(select(OperationLog).filter_by(action="login").where(
        OperationLog.actor_id.in_([d.id for d in doctors]))).scalars().all()
    assert len(logins) == PARALLEL_LOGINS
    assert len({u.login_id for b in batches for u in b.users}) == 300
    assert_chain_intact()


# --- the xlsx reader reads what openpyxl read -------------------------------------------------------------------------

def openpyxl_table(data):
    """The table as the importer read it with openpyxl's read-only worksheet (before issue 11), for comparison."""
    from openpyxl.cell.read_only import EMPTY_CELL
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        sheet = book[userfile.SHEET_NAME]
        sheet.reset_dimensions()
        return userfile._collect(
            (number, [None if c is EMPTY_CELL else userfile.Formula(c.value) if c.data_type == "f" else c.value
                      for c in cells])
            for number, cells in enumerate(sheet.iter_rows(max_col=userfile.MAX_COLUMNS), start=1))
    finally:
        book.close()


def typed(table):
    """Rows without their trailing empty cells (openpyxl pads every row to the width read), values with types."""
    out = []
    for number, cells in table:
        cells = list(cells)
        while cells and cells[-1] is None:
            cells.pop()
        out.append((number, [(type(value).__name__, value) for value in cells]))
    return out


def assert_reads_as_openpyxl(data):
    ours = typed(userfile.read_table("u.xlsx", data))
    assert ours == typed(openpyxl_table(data))
    return ours


def every_kind_of_cell(ws):
    ws["M2"], ws["N2"] = 46113, 47938.0  # serial numbers without a date format
    ws["M3"], ws["N3"] = datetime.date(2026, 4, 1), datetime.datetime(2031, 3, 31, 12, 30)
    ws["M3"].number_format = "yyyy/mm/dd"
    ws["M4"], ws["N4"] = datetime.time(9, 30), datetime.timedelta(hours=30)
    ws["N4"].number_format = "[h]:mm:ss"
    ws["K4"] = True
    ws["L4"] = "#N/A"  # written as an error cell
    ws["C4"] = 1310000017
    ws["F4"] = CellRichText(["脳", TextBlock(InlineFont(b=True), "神経"), "内科"])
    ws["F5"] = '=HYPERLINK("http://x","y")'
    ws["B5"] = 3.5
    ws["A9"] = "離れた行"
    ws["CV9"], ws["CW9"] = "100列目", "101列目は読まない"


def test_cells_of_every_kind_are_read_as_openpyxl_read_them():
    table = assert_reads_as_openpyxl(xlsx_bytes(rows(1, 5), cell_hook=every_kind_of_cell))
    by_row = dict(table)
    assert by_row[3][12] == ("datetime", datetime.datetime(2026, 4, 1))
    assert by_row[4][13] == ("timedelta", datetime.timedelta(hours=30))
    assert by_row[4][5] == ("str", "脳神経内科") and by_row[5][5][0] == "Formula"
    assert by_row[9][-1] == ("str", "100列目") and len(by_row[9]) == userfile.MAX_COLUMNS


def test_the_1904_date_system_is_read_as_openpyxl_reads_it():
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    def mac(ws):
        ws.parent.epoch = CALENDAR_MAC_1904
        ws["M2"] = datetime.date(2026, 4, 1)
    table = assert_reads_as_openpyxl(xlsx_bytes(rows(1, 2), cell_hook=mac))
    assert dict(table)[2][12] == ("datetime", datetime.datetime(2026, 4, 1))


@pytest.mark.parametrize("name", ["userfile_lo_valid.xlsx", "userfile_lo_dates.xlsx", "userfile_lo_hokkaido.xlsx"])
def test_libreoffice_files_with_shared_strings_are_read_as_openpyxl_read_them(name):
    assert_reads_as_openpyxl((Path(__file__).parent / "data" / name).read_bytes())


def test_hand_written_sheet_xml_is_read_as_openpyxl_reads_it():
    """Cells and rows without references, gaps, a row repeated or out of order, rich and phonetic text, shared
    strings: what other generators write."""
    from tests.test_user_import_hostile import SHEET, named, rezip, with_shared_strings

    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sst = (f'<sst {ns} count="1" uniqueCount="1"><si><r><t>見</t></r><r><rPr><b/></rPr><t xml:space="preserve">本 '
           '</t></r><rPh sb="0" eb="1"><t>ミ</t></rPh><phoneticPr fontId="1"/></si></sst>')
    extra = ('<row><c t="inlineStr"><is><t>参考</t><rPh sb="0" eb="2"><t>サンコウ</t></rPh></is></c><c/><c t="n"><v>'
             '</v></c><c t="b"><v>0</v></c><c t="str"><v>計算結果</v></c></row>'
             '<row r="8"><c r="C8" t="inlineStr"><is><t>八</t></is></c><c t="inlineStr"><is><t>次の列</t></is></c>'
             '</row><row r="6"><c r="A6" t="inlineStr"><is><t>戻った行</t></is></c></row>'
             '<row r="8"><c r="A8" t="inlineStr"><is><t>同じ行</t></is></c></row>'
             '<row r="12.0"><c r="A12" t="e"><v>#REF!</v></c><c r="b12" t="d"><v>2026-04-01T00:00:00</v></c></row>')
    data = with_shared_strings(xlsx_bytes([named(1), named(2)]), sst.encode())
    data = rezip(data, {SHEET: lambda b: b.replace(b"</sheetData>", extra.encode() + b"</sheetData>")})
    table = dict(assert_reads_as_openpyxl(data))
    assert table[2][6] == ("str", "見本 ")
    assert table[4][0] == ("str", "参考") and table[8][:4] == [("NoneType", None)] * 2 + [("str", "八"), ("str", "次の列")]
    assert 6 not in table and table[12][1] == ("datetime", datetime.datetime(2026, 4, 1))


def test_a_sheet_of_5000_rows_is_read_as_openpyxl_reads_it():
    from tests.test_user_import_hostile import fast_xlsx, many_rows
    assert len(assert_reads_as_openpyxl(fast_xlsx(many_rows(5000)))) == 5001


def test_bulk_rows_get_the_python_defaults_of_the_columns_they_leave_out(app):
    """nanbyo.bulk writes past the ORM (COPY on PostgreSQL): a column left out still gets its model default."""
    institution = gen_institution()
    database.begin_write()
    bulk.insert_rows(db.session.connection(), User.__table__, [
        dict(login_id=f"bulk{i}", name=f"一括 {i}", role="designated_doctor", password_hash="x") for i in range(3)])
    db.session.commit()
    users = db.session.execute(select(User).filter(User.login_id.like("bulk%")).order_by(User.login_id)).scalars().all()
    assert [(u.status, u.failed_logins, u.must_change_password, u.name_kana, u.email) for u in users] == [
        ("active", 0, True, "", None)] * 3
    assert all(u.created_at is not None and u.created_at.tzinfo is not None for u in users)
    with pytest.raises(ValueError):
        bulk.insert_rows(db.session.connection(), Membership.__table__, [
            dict(user_id=users[0].id, institution_id=institution.id), dict(user_id=users[1].id)])


def test_a_row_the_database_refuses_raises_integrity_error_on_both_databases(app):
    """COPY (PostgreSQL) goes past SQLAlchemy: its refusal is raised as SQLAlchemy raises an INSERT's."""
    from sqlalchemy.exc import IntegrityError
    database.begin_write()
    with pytest.raises(IntegrityError):
        bulk.insert_rows(db.session.connection(), Designation.__table__, [dict(user_id=None, kind="nanbyo")])
    db.session.rollback()


def test_bulk_rows_are_stored_as_an_insert_through_sqlalchemy_stores_them(app):
    """nanbyo.bulk works out each value itself (COPY's text, the SQLite driver's parameters): what it stores of every
    column type (JSON, JSON null, dates, UTC datetimes, NULL) is what SQLAlchemy's own INSERT stores."""
    from sqlalchemy import insert
    from models.documents import Document
    from tests.helpers import gen_document
    doctor = gen_user("designated_doctor", institution=gen_institution())
    source = gen_document(doctor)
    table = Document.__table__
    row = {column.name: getattr(source, column.key) for column in table.columns if column.name not in ("id", "uid")}
    row |= {"items": {"a": ["1", "2"], "b": "テキスト"}, "explained_on": None, "explained_at": None,
            "created_at": datetime.datetime(2026, 4, 1, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=9)))}
    database.begin_write()
    connection = db.session.connection()
    bulk.insert_rows(connection, table, [row | {"uid": "b" * 32}])
    connection.execute(insert(table), [row | {"uid": "s" * 32}])
    stored = {uid: raw for uid, *raw in connection.exec_driver_sql(
        "SELECT uid, " + ", ".join(name for name in row) + " FROM document WHERE uid IN (%s, %s)" % (
            ("?", "?") if connection.dialect.name == "sqlite" else ("%s", "%s")), ("b" * 32, "s" * 32))}
    db.session.rollback()
    assert stored["b" * 32] == stored["s" * 32]
    assert stored["b" * 32][list(row).index("items")] is not None


def test_record_many_inserts_the_changes_rows_first_and_chains_its_entries_meanwhile(app, monkeypatch):
    """first=(table, rows): the change's rows go in with one statement, the entries' hashes are chained while the
    database takes them (bulk.insert_rows' meanwhile, before it waits), and the entries follow: one intact chain."""
    user = gen_user("designated_doctor", institution=gen_institution())
    audit.record("update", target=user, actor=user)
    calls, real_insert = [], bulk.insert_rows

    def insert_rows(connection, table, rows, meanwhile=None):
        def noted():
            calls.append(("meanwhile", table.name))
            meanwhile()
        real_insert(connection, table, rows, noted if meanwhile else None)
        calls.append(("inserted", table.name, len(rows)))

    monkeypatch.setattr(bulk, "insert_rows", insert_rows)
    database.begin_write()
    ids = bulk.next_ids(db.session.connection(), User.__table__, 3)
    rows = [dict(id=id_, login_id=f"first{id_}", name="先", role="designated_doctor", password_hash="x") for id_ in ids]
    entries = audit.record_many([dict(action="create", target_type="user_account", target_id=str(id_)) for id_ in ids],
                                actor=user, first=(User.__table__, rows))
    db.session.commit()
    assert calls == [("meanwhile", "user_account"), ("inserted", "user_account", 3),
                     ("inserted", "operation_log", 3)]
    assert [r["target_id"] for r in entries] == [str(i) for i in ids] and all(r["entry_hash"] for r in entries)
    assert sorted(db.session.execute(select(User.id).where(User.login_id.like("first%"))).scalars()) == ids
    assert_chain_intact()


def test_ids_given_out_ahead_are_new_and_the_next_insert_gets_another(app):
    """bulk.next_ids: ids for rows inserted with them (the import's drafts, whose log entries name them first)."""
    hospital = gen_institution()
    gen_user("designated_doctor", institution=hospital)  # a membership there already
    users = [gen_user("designated_doctor") for _ in range(2)]
    database.begin_write()
    connection = db.session.connection()
    taken = set(db.session.execute(select(Membership.id)).scalars())
    ids = bulk.next_ids(connection, Membership.__table__, 4)
    assert len(set(ids)) == 4 and ids == sorted(ids) and not taken & set(ids)
    assert bulk.next_ids(connection, Membership.__table__, 0) == []
    bulk.insert_rows(connection, Membership.__table__, [dict(id=ids[0], user_id=users[0].id,
                                                              institution_id=hospital.id)])
    db.session.add(Membership(user_id=users[1].id, institution_id=hospital.id))
    db.session.flush()  # the ORM's next id is neither a taken one nor one given out
    assert len(set(db.session.execute(select(Membership.id)).scalars())) == len(taken) + 2
    db.session.rollback()
