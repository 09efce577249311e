"""Searching the operation log (role, 接続元, 医療機関, 自治体 and the rest), and what entries hold: each logged action
once with its fields, no patient data or password, no forged entry or line from CR/LF, neutralised export cells."""
import csv
import io
import re
from collections import Counter

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from models.audit import OperationLog
from models.documents import Document
from nanbyo import audit
from nanbyo.extensions import db
from nanbyo.roles import ROLE_LABELS
from tests import test_documents
from tests.helpers import (OSAKA, PASSWORD, TOKYO, csrf_token, gen_institution, gen_municipality, gen_user, login,
                           logout)
from tests.test_audit import all_text_of_log
from tests.test_list_queries import admin_view, filter_arg, ids_plan, sort_arg


def record_from(app, user, address, tag):
    """An entry by `user` from `address`, its target_id `tag`, as a request of theirs would write it."""
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": address}):
        audit.record("update", actor=user, target_type="test", target_id=tag)


@pytest.fixture
def people(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    hospital_a, hospital_b = gen_institution(tokyo), gen_institution(osaka)
    users = {
        "operator": gen_user("operator_admin"),
        "doctor_a": gen_user("designated_doctor", institution=hospital_a),
        "staff_a": gen_user("institution_staff", institution=hospital_a),
        "doctor_b": gen_user("designated_doctor", institution=hospital_b),
        "clerk_tokyo": gen_user("municipality_user", municipality=tokyo),
        "clerk_osaka": gen_user("municipality_admin", municipality=osaka),
    }
    addresses = {"doctor_a": "198.51.100.1", "staff_a": "198.51.100.2", "doctor_b": "198.51.100.1",
                 "clerk_tokyo": "203.0.113.7", "clerk_osaka": "203.0.113.8", "operator": "192.0.2.1"}
    for name, user in users.items():
        record_from(app, user, addresses[name], f"tag-{name}")
    return {"users": users, "tokyo": tokyo, "osaka": osaka, "a": hospital_a, "b": hospital_b}


def tags_listed(client, **args):
    page = client.get("/admin/operation_log/", query_string=args)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    return {name for name in ("operator", "doctor_a", "staff_a", "doctor_b", "clerk_tokyo", "clerk_osaka")
            if re.search(rf"\btag-{name}\s*<", body)}


def test_every_filter_finds_exactly_its_entries(app, client, people):
    view = admin_view(app, "operation_log")
    login(client, people["users"]["operator"])

    def by(name, kind, value):
        return tags_listed(client, **{filter_arg(view, name, kind): value})

    assert by("ロール", "FilterEqual", "designated_doctor") == {"doctor_a", "doctor_b"}
    assert by("ロール", "FilterNotEqual", "designated_doctor") == {"operator", "staff_a", "clerk_tokyo", "clerk_osaka"}
    assert by("接続元", "FilterEqual", "198.51.100.1") == {"doctor_a", "doctor_b"}
    assert by("医療機関（医療機関コード）", "ActorFilter", people["a"].code) == {"doctor_a", "staff_a"}
    assert by("医療機関（医療機関コード）", "ActorFilter", f" {people['b'].code} ") == {"doctor_b"}
    assert by("医療機関（医療機関コード）", "ActorFilter", "0000000000") == set()
    assert by("自治体（自治体コード）", "ActorFilter", TOKYO) == {"clerk_tokyo"}
    assert by("自治体（自治体コード）", "ActorFilter", OSAKA) == {"clerk_osaka"}
    both = {filter_arg(view, "医療機関（医療機関コード）", "ActorFilter"): people["a"].code,
            filter_arg(view, "接続元", "FilterEqual").replace("flt0", "flt1"): "198.51.100.2"}
    assert tags_listed(client, **both) == {"staff_a"}


def test_a_filtered_export_holds_the_same_entries_with_labels(app, client, people):
    view = admin_view(app, "operation_log")
    login(client, people["users"]["operator"])
    arg = filter_arg(view, "医療機関（医療機関コード）", "ActorFilter")
    rows = list(csv.reader(io.StringIO(client.get(f"/admin/operation_log/export/csv/?{arg}={people['a'].code}")
                                       .data.decode("utf-8-sig"))))
    header = rows[0]
    entries = [dict(zip(header, row)) for row in rows[1:]]
    assert sorted(e["対象ID"] for e in entries) == ["tag-doctor_a", "tag-staff_a"]
    roles = {(ROLE_LABELS[code], code) for code in ("designated_doctor", "institution_staff")}
    assert {(e["ロール"], e["ロールコード"]) for e in entries} == roles
    assert {e["操作"] for e in entries} == {"更新"} and {e["操作コード"] for e in entries} == {"update"}
    # Asked from a page deep in the list, the export is still every entry the filter finds.
    deep = client.get(f"/admin/operation_log/export/csv/?{arg}={people['a'].code}&after=2000-01-01T00:00:00%2B00:00,1")
    assert len(list(csv.reader(io.StringIO(deep.data.decode("utf-8-sig"))))) == len(rows)


# --- PostgreSQL: every filter is an index walk in list order --------------------------------------------------------

@pytest.fixture
def big_log(app, people):
    """100,000 more entries (not chained: the plans only), vacuumed and analyzed: the operator and the clerks write
    nearly all of them; hospital A's users one in 5,000."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    users = people["users"]
    db.session.execute(text(
        "INSERT INTO operation_log (seq, created_at, actor_id, actor_login, actor_role, remote_addr, action, "
        "target_type, target_id, result, data, prev_hash, entry_hash) "
        "SELECT 1000 + g, now() - g * interval '1 minute', "
        "CASE WHEN g % 5000 = 0 THEN :a ELSE (ARRAY[:op, :c1, :c2])[1 + g % 3] END, 'x', "
        "(ARRAY['operator_admin','municipality_user','municipality_admin','designated_doctor'])[1 + g % 4], "
        "'10.0.' || (g % 200) || '.' || (g % 250), (ARRAY['login','logout','document_view','update'])[1 + g % 4], "
        "'document', g::text, CASE WHEN g % 50 = 0 THEN 'failure' ELSE 'success' END, '{}', md5(g::text) || "
        "md5(g::text), md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 100000) g"),
        {"a": users["doctor_a"].id, "op": users["operator"].id, "c1": users["clerk_tokyo"].id,
         "c2": users["clerk_osaka"].id})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE operation_log"))
    return people


def test_log_filters_walk_an_index_in_list_order_on_postgresql(app, big_log):
    view, operator = admin_view(app, "operation_log"), big_log["users"]["operator"]
    cases = [{}, {filter_arg(view, "ロール", "FilterEqual"): "municipality_user"},
             {filter_arg(view, "接続元", "FilterEqual"): "10.0.1.1"},
             {filter_arg(view, "操作", "FilterEqual"): "login"},
             {filter_arg(view, "結果", "FilterEqual"): "failure"},
             {filter_arg(view, "ログインID", "FilterEqual"): "x"},
             {filter_arg(view, "日時（JST）", "JSTDateTimeBetweenFilter"): "2026-01-01 00:00:00 to 2026-12-31 23:59:59"}]
    for args in cases:
        for page in (0, 40):
            plan = "\n".join(ids_plan(app, view, operator, page, **args))
            assert "Seq Scan on operation_log" not in plan, (args, plan)
            assert "Index" in plan and " Sort " not in f" {plan} ", (args, plan)
        # 次へ deep in the log: the index is entered at the cursor, not walked from the top (no OFFSET).
        plan = "\n".join(ids_plan(app, view, operator, 0, after="2020-06-01T00:00:00+00:00,500", **args))
        assert "Index Cond" in plan and "2020-06-01" in plan and " Sort " not in f" {plan} ", (args, plan)
        assert "Seq Scan on operation_log" not in plan, (args, plan)


def test_institution_and_municipality_filters_walk_each_users_entries_on_postgresql(app, big_log):
    """Hospital A has two users: each one's first page of entries along their index, merged; Tokyo one clerk: one
    walk of that clerk's entries. Never the whole log in list order, never every entry of theirs sorted."""
    view, operator = admin_view(app, "operation_log"), big_log["users"]["operator"]
    for name, code, walks in (("医療機関（医療機関コード）", big_log["a"].code, 2), ("自治体（自治体コード）", TOKYO, 1)):
        for page, after in ((0, None), (3, None), (0, "2020-06-01T00:00:00+00:00,500")):
            args = {filter_arg(view, name, "ActorFilter"): code} | ({"after": after} if after else {})
            plan = "\n".join(ids_plan(app, view, operator, page, **args))
            assert plan.count("ix_operation_log_actor_id_created_at_id") == walks, plan
            assert plan.count("Limit") == 1 + (walks if walks > 1 else 0), plan
            assert "Seq Scan on operation_log" not in plan and "Bitmap" not in plan, plan


# --- what entries hold ----------------------------------------------------------------------------------------------

PATIENT = {"family_name": "秘匿山", "given_name": "守子", "family_kana": "ヒトクヤマ", "given_kana": "マモルコ",
           "sex": "2", "birth_date": "2015-06-01", "postal_code": "1008111", "address": "東京都千代田区秘匿町9-9"}


def test_a_document_lifecycle_logs_each_action_once_and_no_patient_data(app, client, monkeypatch):
    tokyo = gen_municipality(TOKYO)
    hospital = gen_institution(tokyo)
    doctor = gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"))
    clerk = gen_user("municipality_user", municipality=tokyo)
    monkeypatch.setattr(test_documents, "gen_patient", lambda **changes: dict(PATIENT))
    test_documents.test_lifecycle_write_finalize_print_lookup_review(client, tokyo, hospital, doctor, clerk,
                                                                     "nanbyo")
    found = client.get("/admin/document/patient-search/",
                       query_string={"kana": "ヒトクヤマ マモルコ", "birth_date": PATIENT["birth_date"]})
    assert found.status_code == 200 and PATIENT["given_name"] in found.get_data(as_text=True)
    logout(client)

    doc = db.session.execute(select(Document)).scalar_one()
    db.session.expire_all()
    on_document = db.session.execute(select(OperationLog).where(OperationLog.target_type == "document",
                                                                OperationLog.target_id == str(doc.id))).scalars().all()
    counted = Counter((e.action, e.actor_id) for e in on_document)
    for action, actor in (("create", doctor), ("document_finalize", doctor), ("key_lookup", clerk),
                          ("document_receive", clerk), ("document_review", clerk)):
        assert counted[(action, actor.id)] == 1, (action, counted)
    prints = Counter(e.data.get("sheet") for e in on_document if e.action == "document_print")
    assert prints == {"document": 1, "key": 1}
    receive = next(e for e in on_document if e.action == "document_receive")
    assert (receive.actor_login, receive.actor_role, receive.result) == (clerk.login_id, "municipality_user",
                                                                         "success")
    searches = db.session.execute(select(OperationLog).filter_by(action="patient_search")).scalars().all()
    assert len(searches) == 1 and searches[0].actor_id == clerk.id

    log = all_text_of_log()
    identifying = [v for k, v in PATIENT.items() if k != "sex"]  # 性別 is a one-digit code
    for value in (*identifying, "ヒトクヤマ マモルコ", "20150601", "2015/06/01", PASSWORD):
        assert value not in log, value


def test_cr_lf_in_a_login_id_or_a_filter_forges_no_entry_and_no_export_line(app, client, people):
    forged_row = "99999,2026-01-01 00:00:00,admin,ログイン,成功"
    forged = f"nobody\r\n{forged_row}\r\nx"  # within the 64 characters a login ID may have
    count = db.session.execute(select(func.count()).select_from(OperationLog)).scalar()
    client.post("/login", data={"login_id": forged, "password": "wrong-password-1", "csrf_token": csrf_token(client)})
    db.session.expire_all()
    entries = db.session.execute(select(OperationLog).where(OperationLog.seq > count)).scalars().all()
    assert [e.action for e in entries] == ["login_failed"]

    view = admin_view(app, "operation_log")
    login(client, people["users"]["operator"])
    listed = client.get("/admin/operation_log/", query_string={filter_arg(view, "ログインID", "FilterEqual"): forged,
                                                               "search": forged})
    assert listed.status_code == 200
    body = client.get("/admin/operation_log/export/csv/").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    total = db.session.execute(select(func.count()).select_from(OperationLog)).scalar()
    assert len(rows) == 1 + total - 1  # the export's own entry is written before the file
    assert all(len(row) == len(rows[0]) and row[0].isdigit() for row in rows[1:])
    assert not any(row[0] == "99999" for row in rows)
    assert [cell for row in rows for cell in row if forged_row in cell]  # the typed text stays inside its cell


HOSTILE = ["=cmd|' /C calc'!A0", "+1+cmd", "-2+3", "@SUM(1)", "＝HYPERLINK(\"http://x\")", "\t=1"]


def test_log_export_neutralises_formulas(app, client, people):
    for value in HOSTILE:
        audit.record("login_failed", target_type="user_account", target_id=value, result="failure",
                     data={"login_id": value})
    login(client, people["users"]["operator"])
    rows = list(csv.reader(io.StringIO(client.get("/admin/operation_log/export/csv/").data.decode("utf-8-sig"))))
    target_ids = {row[rows[0].index("対象ID")] for row in rows[1:]}
    assert {"'" + value for value in HOSTILE} <= target_ids
    assert not [cell for row in rows for cell in row if cell and cell[0] in "=+-@＝\t"]
    book = load_workbook(io.BytesIO(client.get("/admin/operation_log/export/xlsx/").data))
    cells = [c for row in book.active.iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert {"'" + value for value in HOSTILE} <= set(cells)
    assert not [c for c in cells if c and c[0] in "=+-@＝\t"]
    assert not [c for row in book.active.iter_rows() for c in row if c.data_type == "f"]


def test_filters_read_only_the_log(app, client, people):
    """A search on the log screen writes nothing: no entry hides behind a view of the log."""
    login(client, people["users"]["operator"])
    count = db.session.execute(select(func.count()).select_from(OperationLog)).scalar()
    client.get("/admin/operation_log/", query_string={"search": "tag"})
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(OperationLog)).scalar() == count


# --- paging ---------------------------------------------------------------------------------------------------------

def test_next_pages_follow_the_last_row_and_meet_every_entry_once(app, client, people):
    """次へ carries the last row's (日時, id): pages never overlap or skip, even with entries of the same instant and
    entries added meanwhile, filtered or not, by 日時 or by 番号."""
    from datetime import datetime, timezone
    from unittest import mock
    same_instant = datetime(2026, 3, 1, 1, 2, 3, tzinfo=timezone.utc)
    with mock.patch.object(audit, "utcnow", lambda: same_instant):
        for i in range(45):
            audit.record("update", target_type="test", target_id=f"same-{i}")
    login(client, people["users"]["operator"])
    view = admin_view(app, "operation_log")
    newest_first = select(OperationLog.id).order_by(OperationLog.created_at.desc(), OperationLog.id.desc())
    role = {filter_arg(view, "ロール", "FilterNotEqual"): "operator_admin"}
    by_seq = {"sort": sort_arg(view, "seq")}
    for args, statement in (({}, newest_first), (role, newest_first.where(OperationLog.actor_role != "operator_admin")),
                            (by_seq, select(OperationLog.id).order_by(OperationLog.seq))):
        db.session.expire_all()
        expected = list(db.session.execute(statement).scalars())
        seen, url = [], "/admin/operation_log/?" + "&".join(f"{k}={v}" for k, v in ({"page_size": 20} | args).items())
        while url:
            body = client.get(url).get_data(as_text=True)
            seen += [int(i) for i in re.findall(r'/admin/operation_log/details/\?id=(\d+)&', body)]
            if len(seen) == 20 and args is not by_seq:  # a newer entry written meanwhile must not shift the pages
                audit.record("update", target_type="test", target_id="meanwhile")
            found = re.search(r'id="log-next" href="([^"#]+)"', body)
            url = found and found.group(1).replace("&amp;", "&")
            assert "page=" not in (url or ""), url
            # Sort links, the filter form and the page sizes start again from the newest; only 次へ goes on (an
            # export is the whole list as filtered, wherever it is asked from).
            onward = [href for href in re.findall(r'href="([^"]*after=[^"]*)"', body) if "/export/" not in href]
            assert len(onward) == (1 if url else 0), (args, onward)
        assert seen == expected, args
