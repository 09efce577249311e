"""統計情報 (issue 14): counts of documents and distinct patients by the dimensions asked, within each role's scope;
年度 boundaries; small cells masked; research outputs; downloads with formulas neutralised; the CLI."""
import csv
import io
import json
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, text

from models.documents import Document
from models.masters import NanbyoCategory, ShomanGroup
from nanbyo import database, documents
from nanbyo.extensions import db
from nanbyo.stats import counts
from nanbyo.stats.counts import MASKED, Request
from tests.helpers import (OSAKA, TOKYO, gen_document, gen_institution, gen_municipality, gen_patient, gen_user,
                           log_entries, login)


@pytest.fixture
def w(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    hospital, osaka_hospital = gen_institution(tokyo), gen_institution(osaka)
    doctor = gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"))
    osaka_doctor = gen_user("designated_doctor", institution=osaka_hospital, designations=("nanbyo", "shoman"))
    return {"tokyo": tokyo, "osaka": osaka, "hospital": hospital, "doctor": doctor, "osaka_doctor": osaka_doctor,
            "clerk": gen_user("municipality_user", municipality=tokyo),
            "operator": gen_user("operator_admin")}


def dated(doc, day):
    """The document as written on `day` (its age follows)."""
    database.begin_write()
    doc = db.session.get(Document, doc.id)
    doc.written_on = day
    documents.set_statistics(doc, documents.patient_of(doc))
    db.session.commit()
    return doc


def table_of(user, **asked):
    table = counts.count(user, Request(**asked))
    return {tuple(row[:-2]): tuple(row[-2:]) for row in table.rows}


def test_documents_and_distinct_patients_by_kind_and_sex(app, w):
    same = gen_patient(sex="1")
    gen_document(w["doctor"], patient=same, status="received")
    gen_document(w["doctor"], patient=same, status="received")  # the same patient again
    gen_document(w["doctor"], patient=gen_patient(sex="2"), status="received")
    gen_document(w["doctor"], kind="shoman", patient=gen_patient(sex="2"), status="received")
    assert table_of(w["operator"], by=["kind", "sex"]) == {
        ("小慢 意見書", "女"): (1, 1), ("難病 臨個票", "女"): (1, 1), ("難病 臨個票", "男"): (2, 1)}
    assert table_of(w["operator"], by=["kind"]) == {("小慢 意見書",): (1, 1), ("難病 臨個票",): (3, 2)}


def test_a_municipality_counts_what_it_received_and_the_operator_everything(app, w):
    for status in ("draft", "finalized", "received", "completed"):
        gen_document(w["doctor"], status=status)
    gen_document(w["osaka_doctor"], status="received")
    assert table_of(w["operator"], by=["status"]) == {("作成中",): (1, 1), ("確定",): (1, 1), ("受付",): (2, 2),
                                                     ("登録完了",): (1, 1)}
    clerk = table_of(w["clerk"], by=["municipality", "status"])
    assert set(clerk) == {(w["tokyo"].name, "受付"), (w["tokyo"].name, "登録完了")}
    operator = table_of(w["operator"], by=["municipality"], status="received")
    assert operator == {(w["tokyo"].name,): (1, 1), (w["osaka"].name,): (1, 1)}
    assert table_of(w["operator"], by=["prefecture"], municipality_id=w["osaka"].id, status="received") == {
        ("大阪府",): (1, 1)}


def test_fiscal_years_turn_on_the_first_of_april(app, w):
    last_day, first_day = date(2026, 3, 31), date(2026, 4, 1)
    dated(gen_document(w["doctor"]), last_day)
    dated(gen_document(w["doctor"]), first_day)
    dated(gen_document(w["doctor"]), date(2027, 3, 31))
    assert table_of(w["operator"], by=["fiscal_year"]) == {("2025年度",): (1, 1), ("2026年度",): (2, 2)}
    assert table_of(w["operator"], by=["quarter"]) == {("2025年度 第4四半期（1〜3月）",): (1, 1),
                                                      ("2026年度 第1四半期（4〜6月）",): (1, 1),
                                                      ("2026年度 第4四半期（1〜3月）",): (1, 1)}
    assert table_of(w["operator"], by=["month"], fiscal_year=2026) == {("2026-04",): (1, 1), ("2027-03",): (1, 1)}
    assert table_of(w["operator"], by=["kind"], written_from=first_day, written_until=first_day) == {
        ("難病 臨個票",): (1, 1)}
    assert counts.fiscal_years(w["operator"]) == [2026, 2025]


def test_age_bands_on_the_day_written_follow_a_changed_date(app, w):
    doc = gen_document(w["doctor"], patient=gen_patient(birth_date="2000-06-01"))
    doc = dated(doc, date(2020, 5, 31))
    assert (doc.patient_sex, doc.patient_age) == ("2", 19)
    assert table_of(w["operator"], by=["age_band"]) == {("10〜19歳",): (1, 1)}
    dated(doc, date(2020, 6, 1))
    assert table_of(w["operator"], by=["age_band"]) == {("20〜29歳",): (1, 1)}


def test_small_cells_are_masked_for_a_municipality_always_and_for_the_operator_when_asked(app, w):
    for _ in range(10):
        gen_document(w["doctor"], status="received")
    gen_document(w["doctor"], kind="shoman", status="received")
    operator = table_of(w["operator"], by=["kind"])
    assert operator == {("小慢 意見書",): (1, 1), ("難病 臨個票",): (10, 10)}
    assert table_of(w["operator"], by=["kind"], mask=True) == {("小慢 意見書",): (MASKED, MASKED),
                                                              ("難病 臨個票",): (10, 10)}
    assert table_of(w["clerk"], by=["kind"]) == {("小慢 意見書",): (MASKED, MASKED), ("難病 臨個票",): (10, 10)}
    assert counts.count(w["clerk"], Request(by=["kind"])).total_documents == 10  # no total gives the 1 away
    assert counts.count(w["operator"], Request(by=["kind"])).total_documents == 11


def test_research_outputs_count_consenting_documents_only(app, w):
    agreed, declined = gen_document(w["doctor"], status="received"), gen_document(w["doctor"], status="received")
    gen_document(w["doctor"], status="received")  # not asked yet
    database.begin_write()
    db.session.get(Document, agreed.id).research_consent = True
    db.session.get(Document, declined.id).research_consent = False
    db.session.commit()
    assert table_of(w["operator"], by=["kind"], research=True) == {("難病 臨個票",): (1, 1)}


def test_diseases_and_groups_are_named_from_the_masters(app, w):
    gen_document(w["doctor"], status="received")
    gen_document(w["doctor"], kind="shoman", status="received")
    rows = table_of(w["operator"], by=["disease"])
    assert any(key[0].startswith("難病 臨個票 1 ") for key in rows), rows
    assert any(key[0].startswith("小慢 意見書 01_01_001") for key in rows), rows
    groups = table_of(w["operator"], by=["disease_group"])
    shoman = db.session.get(Document, db.session.execute(select(Document.id).where(Document.kind == "shoman"))
                            .scalar()).shoman_disease
    top = shoman.group_id.split("-")[0]
    name = db.session.execute(select(ShomanGroup.name_ja).where(ShomanGroup.group_id == top)).scalar_one()
    assert (f"小慢 意見書 {top} {name}",) in groups, groups
    nanbyo = db.session.execute(select(Document).where(Document.kind == "nanbyo")).scalar().nanbyo_disease
    category = db.session.get(NanbyoCategory, nanbyo.category_id)
    assert (f"難病 臨個票 {category.name_ja}",) in groups and len(groups) == 2, groups


def test_paper_documents_count_under_the_institution_the_paper_names(app, w):
    doc = gen_document(w["doctor"], status="received")
    database.begin_write()
    doc = db.session.get(Document, doc.id)
    doc.author, doc.institution = None, None
    doc.paper_doctor_number, doc.paper_doctor_name = "13-N-0999", "紙野 一郎"
    doc.paper_institution_code, doc.paper_institution_name = "1310000999", "紙の診療所"
    db.session.commit()
    gen_document(w["doctor"], status="received")
    assert table_of(w["operator"], by=["institution"]) == {("1310000999 紙の診療所",): (1, 1),
                                                          (f"{w['hospital'].code} {w['hospital'].name}",): (1, 1)}


def test_a_request_that_cannot_be_answered_is_refused_in_japanese(app, w):
    for asked, message in [({"by": []}, "1つ以上"), ({"by": ["kind", "sex", "status", "month"]}, "3つまで"),
                           ({"by": ["nope"]}, "ありません"), ({"by": ["kind", "kind"]}, "2回"),
                           ({"by": ["kind"], "written_from": date(2026, 5, 1), "written_until": date(2026, 4, 1)},
                            "開始は終了以前")]:
        with pytest.raises(counts.StatsProblem, match=message):
            counts.count(w["operator"], Request(**asked))


# --- the screen ---------------------------------------------------------------------------------------------------

def test_the_screen_shows_a_table_and_a_chart_and_logs_what_was_asked(app, client, w):
    gen_document(w["doctor"], status="received")
    login(client, w["operator"])
    page = client.get("/admin/stats/?by1=kind&by2=&by3=&fiscal_year=&kind=")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="stats-table"' in text and "難病 臨個票" in text
    assert 'id="stats-chart"' in text and "vendor/chartjs/chart.min.js" in text
    entry = log_entries("stats_view")[-1]
    assert entry.data == {"by": ["kind"], "research": False, "masked": False}
    bad = client.get("/admin/stats/?by1=kind&written_from=2026-13-01")
    assert bad.status_code == 400 and "正しい日付ではありません" in bad.get_data(as_text=True)
    assert client.get("/admin/stats/").status_code == 200  # the form alone


def test_a_table_of_masked_rows_alone_has_no_chart(app, client, w):
    gen_document(w["doctor"], status="received")  # one patient: masked for the municipality
    clerk = gen_user("municipality_admin", municipality=w["tokyo"])
    login(client, clerk)
    text = client.get("/admin/stats/?by1=kind").get_data(as_text=True)
    assert 'id="stats-table"' in text and "10未満" in text
    assert 'id="stats-chart"' not in text


def test_downloads_neutralise_formulas_in_every_format(app, client, w):
    gen_document(w["doctor"], status="received")
    database.begin_write()
    w["tokyo"].name = "=HYPERLINK(\"http://x\")"  # a name no master has: the export must still not run it
    db.session.commit()
    login(client, w["operator"])
    utf8 = client.get("/admin/stats/?by1=municipality&format=csv")
    assert utf8.data.startswith(b"\xef\xbb\xbf") and utf8.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(utf8.data.decode("utf-8-sig"))))
    assert rows[0] == ["実施主体", "書類数", "患者数"] and rows[1][0] == "'=HYPERLINK(\"http://x\")"
    cp932 = client.get("/admin/stats/?by1=municipality&format=csv_cp932")
    assert list(csv.reader(io.StringIO(cp932.data.decode("cp932"))))[1][0].startswith("'=")
    book = load_workbook(io.BytesIO(client.get("/admin/stats/?by1=municipality&format=xlsx").data))
    assert book.active.cell(2, 1).value.startswith("'=")
    assert [e.data["format"] for e in log_entries("stats_export")] == ["csv", "csv_cp932", "xlsx"]


@pytest.mark.parametrize("role, status", [("operator_admin", 200), ("municipality_admin", 200),
                                          ("municipality_user", 200), ("operator_user", 403),
                                          ("designated_doctor", 403), ("institution_staff", 403),
                                          ("manager", 403), ("anonymous", 302)])
def test_who_may_see_statistics(app, client, w, role, status):
    if role == "manager":
        user = gen_user("designated_doctor", institution=w["hospital"], manager=True)
    elif role != "anonymous":
        user = gen_user(role, municipality=w["tokyo"] if role.startswith("municipality") else None,
                        institution=w["hospital"] if role in ("designated_doctor", "institution_staff") else None)
    if role != "anonymous":
        login(client, user)
    for path in ("/admin/stats/", "/admin/stats/?by1=kind", "/admin/stats/?by1=kind&format=csv"):
        assert client.get(path).status_code == status, (role, path)


def test_a_municipality_never_downloads_unmasked_or_another_municipalitys_rows(app, client, w):
    gen_document(w["osaka_doctor"], status="received")
    for _ in range(3):
        gen_document(w["doctor"], status="received")
    login(client, w["clerk"])
    response = client.get(f"/admin/stats/?by1=municipality&mask=&municipality={w['osaka'].id}&format=csv")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[1:] == [[w["tokyo"].name, MASKED, MASKED]]


# --- the command line ---------------------------------------------------------------------------------------------

def test_the_command_line_writes_every_format(app, w, tmp_path):
    dated(gen_document(w["doctor"], status="received"), date(2026, 4, 1))
    dated(gen_document(w["doctor"], status="received"), date(2025, 4, 1))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["nanbyo", "stats", "--by", "kind,fiscal_year", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == [["難病 臨個票", "2025年度", 1, 1], ["難病 臨個票", "2026年度", 1, 1]]
    one_year = runner.invoke(args=["nanbyo", "stats", "--by", "kind", "--fiscal-year", "2026", "--format", "csv"])
    assert list(csv.reader(io.StringIO(one_year.output.lstrip("\ufeff"))))[1] == ["難病 臨個票", "1", "1"]
    out = tmp_path / "stats.xlsx"
    assert runner.invoke(args=["nanbyo", "stats", "--by", "kind", "--format", "xlsx", "--output", str(out)]
                         ).exit_code == 0
    assert load_workbook(out).active.cell(2, 3).value == 2  # a number a clerk can sum
    masked = runner.invoke(args=["nanbyo", "stats", "--by", "kind", "--mask", "--format", "json"])
    assert json.loads(masked.output)["rows"] == [["難病 臨個票", MASKED, MASKED]]
    bad = runner.invoke(args=["nanbyo", "stats", "--by", "nope"])
    assert bad.exit_code == 2 and "ありません" in bad.output
    assert db.session.execute(select(Document)).first() is not None


def test_stats_refresh_fills_the_columns_of_documents_written_before_them(app, w):
    doc = dated(gen_document(w["doctor"], patient=gen_patient(sex="1", birth_date="1980-01-15")), date(2026, 4, 1))
    version = doc.version_id
    database.begin_write()
    key = doc.patient_key
    assert key == documents.patient_key(doc.patient_index) and key > 0
    db.session.execute(Document.__table__.update().values(patient_sex="", patient_age=None, patient_key=None))
    db.session.commit()
    assert table_of(w["operator"], by=["sex"]) == {("不明",): (1, 0)}  # no key: not yet a patient
    result = app.test_cli_runner().invoke(args=["nanbyo", "stats-refresh"])
    assert result.exit_code == 0 and "1 件" in result.output
    db.session.expire_all()
    doc = db.session.get(Document, doc.id)
    assert (doc.patient_sex, doc.patient_age, doc.patient_key, doc.version_id) == ("1", 46, key, version)
    assert table_of(w["operator"], by=["sex", "age_band"]) == {("男", "40〜49歳"): (1, 1)}


def test_a_long_table_is_shown_in_part_and_downloaded_whole(app, client, w, monkeypatch):
    gen_document(w["doctor"], status="received")
    gen_document(w["doctor"], kind="shoman", status="received")
    monkeypatch.setattr("views.stats.SCREEN_ROWS", 1)
    login(client, w["operator"])
    page = client.get("/admin/stats/?by1=kind").get_data(as_text=True)
    assert page.count("<td class=\"text-right\">1</td>") == 2 and 'id="stats-cut"' in page  # one row: two counts
    rows = list(csv.reader(io.StringIO(client.get("/admin/stats/?by1=kind&format=csv").data.decode("utf-8-sig"))))
    assert len(rows) == 3


def test_the_log_screen_names_what_was_asked(app, client, w):
    from views.audit import data_items
    login(client, w["operator"])
    client.get("/admin/stats/?by1=kind&fiscal_year=2026&research=y&format=xlsx")
    entry = log_entries("stats_export")[-1]
    assert data_items(entry.data, entry.target_type) == [
        "集計項目: kind", "年度: 2026", "研究利用（同意ありのみ）: はい", "少数の秘匿: いいえ", "形式: Excel（xlsx）"]


@pytest.fixture
def many_documents(app, w):
    """30,000 more documents on PostgreSQL (copies of a few, varied): 12,000 patients, some with several documents
    of one group and some of several, some without a patient number; vacuumed and analyzed as autovacuum keeps a
    table."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    templates = [gen_document(w["doctor"], status="received"), gen_document(w["osaka_doctor"], status="completed"),
                 gen_document(w["doctor"], kind="shoman", status="received")]
    varied = ("patient_key", "patient_sex", "patient_age", "written_on", "uid", "access_key")
    fixed = [c.name for c in Document.__table__.columns if c.name not in ("id",) + varied]
    db.session.execute(text(
        f"INSERT INTO document ({', '.join(fixed)}, {', '.join(varied)}) "
        f"SELECT {', '.join('d.' + c for c in fixed)}, CASE WHEN g % 97 = 0 THEN NULL ELSE g % 12000 END, "
        f"(ARRAY['1', '2', ''])[1 + g % 3], g % 90, d.written_on - (g % 700), md5(g::text || d.id), NULL "
        f"FROM document d, generate_series(1, 10000) g WHERE d.id IN (:a, :b, :c)"),
        {"a": templates[0].id, "b": templates[1].id, "c": templates[2].id})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE document"))
    return w


def distinct_counts(by_sql, joins="", scope="true"):
    """The same table by COUNT(DISTINCT) over plain joins: another way to the same figures."""
    return {tuple(row[:-2]): tuple(row[-2:]) for row in db.session.execute(text(
        f"SELECT {by_sql}, count(*), count(DISTINCT d.patient_key) FROM document d {joins} WHERE {scope} "
        f"GROUP BY {by_sql}"))}


def test_whole_database_tables_read_the_statistics_index_in_patient_order_and_count_right(app, many_documents):
    w = many_documents
    cases = [(["disease_group", "sex"], "d.kind, coalesce(nd.category_id::text, split_part(sd.group_id, '-', 1)), "
              "d.patient_sex", "LEFT JOIN nanbyo_disease nd ON nd.id = d.nanbyo_disease_id "
              "LEFT JOIN shoman_disease sd ON sd.id = d.shoman_disease_id"),
             (["prefecture", "age_band"], "m.prefecture_no, (CASE WHEN d.patient_age >= 80 THEN 80 "
              "ELSE d.patient_age / 10 * 10 END)", "JOIN municipality m ON m.id = d.municipality_id"),
             (["institution", "fiscal_year"], "i.code, (extract(year FROM d.written_on) - "
              "CASE WHEN extract(month FROM d.written_on) < 4 THEN 1 ELSE 0 END)",
              "JOIN institution i ON i.id = d.institution_id")]
    for by, by_sql, joins in cases:
        statement = counts.statement(w["operator"], Request(by=by))
        compiled = statement.compile(dialect=db.engine.dialect)
        plan = "\n".join(db.session.connection().exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
                          .scalars())
        assert "Index Only Scan using ix_document_statistics" in plan, plan
        assert "Join" not in plan and "Seq Scan on document" not in plan, plan
        got = {tuple(row[:-2]): tuple(row[-2:]) for row in db.session.execute(statement)}
        expected = distinct_counts(by_sql, joins)
        assert sorted(got.values()) == sorted(expected.values()) and sum(n for n, _p in got.values()) == 30003


def test_a_parallel_plan_merges_the_workers_rows_in_patient_order_and_counts_right(app, many_documents):
    """count() lets PostgreSQL read the index in parallel workers; their rows meet again in patient order (Gather
    Merge) before a patient's documents are told apart. 30,000 documents are too few for the planner to choose
    workers by itself: made to here, in this transaction, as it does for a million."""
    w = many_documents
    for setting in ("min_parallel_index_scan_size = 0", "parallel_setup_cost = 0"):
        db.session.execute(text(f"SET LOCAL {setting}"))
    request = Request(by=["disease_group", "sex"])
    table = counts.count(w["operator"], request)  # sets its own parallel_tuple_cost, in the same transaction
    compiled = counts.statement(w["operator"], request).compile(dialect=db.engine.dialect)
    plan = "\n".join(db.session.connection().exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).scalars())
    assert "Gather Merge" in plan and "Parallel Index Only Scan using ix_document_statistics" in plan, plan
    expected = distinct_counts("d.kind, coalesce(nd.category_id::text, split_part(sd.group_id, '-', 1)), "
                               "d.patient_sex", "LEFT JOIN nanbyo_disease nd ON nd.id = d.nanbyo_disease_id "
                               "LEFT JOIN shoman_disease sd ON sd.id = d.shoman_disease_id")
    assert sorted(tuple(row[-2:]) for row in table.rows) == sorted(expected.values())
    assert table.total_documents == 30003
