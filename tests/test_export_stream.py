"""Streamed exports (issue 11): one SELECT of the exported columns, read from one snapshot and written as it is read.

The same cells as the ORM-object export before (headings, labels, formula neutralising), every row however many,
scoped as the list is, filtered, searched and sorted as the list is, and logged before the first byte."""
import csv
import io
from datetime import timedelta

import pytest
from flask_login import login_user
from openpyxl import load_workbook
from sqlalchemy import func, insert, select

from models._types import today_jst
from models.audit import OperationLog
from models.documents import Document
from models.masters import NanbyoDisease
from nanbyo import exports
from nanbyo.document_codes import (APPLICATION_KIND_LABELS, CONSENT_LABELS, KIND_SHORT_LABELS, REVIEW_RESULT_LABELS,
                                   STATUS_LABELS)
from nanbyo.extensions import db
from nanbyo.roles import ROLE_LABELS, STATUS_LABELS as ACCOUNT_STATUS_LABELS
from tests.helpers import (OSAKA, TOKYO, gen_document, gen_institution, gen_municipality, gen_patient, gen_user,
                           log_entries, login)
from views.base import ScopedModelView
from views.documents import _disease_label

HYPERLINK = '=HYPERLINK("http://x","y")'


# --- helpers -----------------------------------------------------------------------------------------------------

def view_of(app, endpoint):
    return next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == endpoint)


def get_export(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def csv_rows(response):
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))


def xlsx_rows(body):
    """Every sheet's rows (values), the heading of each sheet included."""
    book = load_workbook(io.BytesIO(body))
    return [[["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
            for sheet in book.worksheets]


def old_csv(headers, rows):
    """The CSV the export wrote before issue 11 (nanbyo.exports.render of ORM values), as a reference."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([exports.cell_text(h) for h in headers])
    for row in rows:
        writer.writerow([exports.cell_text(v) for v in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def attribute(model, name):
    value = model
    for part in name.split("."):
        value = getattr(value, part, None) if value is not None else None
    return value


def old_document_values(doc, names):
    """DocumentView.get_export_value as it was before issue 11."""
    labels = {"kind": KIND_SHORT_LABELS, "application_kind": APPLICATION_KIND_LABELS, "status": STATUS_LABELS,
              "review_result": REVIEW_RESULT_LABELS}
    values = []
    for name in names:
        if name == "disease_label":
            values.append(_disease_label(doc))
        elif name in labels:
            values.append(labels[name].get(getattr(doc, name), ""))
        elif name == "research_consent":
            values.append(CONSENT_LABELS["" if doc.research_consent is None else str(int(doc.research_consent))])
        else:
            values.append(attribute(doc, name))
    return values


def old_user_values(user, names):
    """UserView.get_export_value as it was before issue 11."""
    special = {"role": ROLE_LABELS.get(user.role, user.role), "status": ACCOUNT_STATUS_LABELS.get(user.status),
               "role_code": user.role, "status_code": user.status,
               "designation_codes": ",".join(d.kind for d in user.designations)}
    return [special[name] if name in special else attribute(user, name) for name in names]


def bulk_documents(count, *, author, institution, municipality, status="received", start=0):
    """`count` documents in one INSERT (no patient block: exports never read it)."""
    disease = db.session.execute(select(NanbyoDisease).order_by(NanbyoDisease.notification_no).limit(1)).scalar_one()
    rows = [dict(kind="nanbyo", application_kind="new", form_code="bulk", form_version=1,
                 nanbyo_disease_id=disease.id, patient_cipher=b"", patient_index="", author_id=author.id,
                 created_by_id=author.id, institution_id=institution.id, municipality_id=municipality.id,
                 status=status, written_on=today_jst(), items={}, version_id=1, reception_no=f"R-{start + i}")
            for i in range(count)]
    db.session.execute(insert(Document), rows)
    db.session.commit()


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    tokyo_inst, osaka_inst = gen_institution(tokyo), gen_institution(osaka)
    return {
        "tokyo": tokyo, "osaka": osaka, "tokyo_inst": tokyo_inst, "osaka_inst": osaka_inst,
        "operator": gen_user("operator_admin"),
        "tokyo_clerk": gen_user("municipality_user", municipality=tokyo),
        "tokyo_doctor": gen_user("designated_doctor", institution=tokyo_inst, designations=("nanbyo", "shoman")),
        "osaka_doctor": gen_user("designated_doctor", institution=osaka_inst, issuer=osaka),
    }


# --- the same content as before ----------------------------------------------------------------------------------

def test_documents_csv_and_xlsx_equal_the_old_export(app, client, world):
    doctor = world["tokyo_doctor"]
    docs = [gen_document(doctor), gen_document(doctor, status="finalized"),
            gen_document(doctor, status="received"), gen_document(doctor, status="reviewed"),
            gen_document(doctor, kind="shoman", status="received", application_kind="renewal")]
    docs[3].research_consent, docs[2].research_consent = True, False
    docs[3].reception_no = "=1+1"  # formula characters in a municipality's field are neutralised too
    db.session.commit()
    view = view_of(app, "document")
    names = [name for name, _label in view._export_columns]
    headers = [str(label) for _name, label in view._export_columns]
    ordered = sorted(docs, key=lambda d: (d.written_on, d.id), reverse=True)  # the list's order
    expected = [old_document_values(d, names) for d in ordered]

    login(client, world["operator"])
    body = get_export(client, "/admin/document/export/csv/").data
    assert body == old_csv(headers, expected)
    assert "告示番号" in body.decode("utf-8-sig") and "'=1+1" in body.decode("utf-8-sig")
    sheets = xlsx_rows(get_export(client, "/admin/document/export/xlsx/").data)
    assert sheets == [[headers] + [[exports.cell_text(v) for v in row] for row in expected]]
    cp932 = get_export(client, "/admin/document/export/csv_cp932/").data
    assert cp932 == old_csv(headers, expected)[3:].decode("utf-8").encode("cp932")


def test_documents_export_carries_no_patient_data(client, world):
    patient = gen_patient(family_name="輸出禁止", given_kana="ユシュツ")
    gen_document(world["tokyo_doctor"], patient=patient)
    login(client, world["operator"])
    for fmt in ("csv", "xlsx"):
        response = get_export(client, f"/admin/document/export/{fmt}/")
        text = response.data.decode("utf-8-sig") if fmt == "csv" else str(xlsx_rows(response.data))
        assert "輸出禁止" not in text and "ユシュツ" not in text and "患者" not in text
        assert patient["birth_date"] not in text and patient["address"] not in text


def test_users_csv_equals_the_old_export(app, client, world):
    doctor = gen_user("designated_doctor", "stream-doctor", institution=world["tokyo_inst"],
                      designations=("shoman", "nanbyo"))
    doctor.status = "locked"
    db.session.commit()
    view = view_of(app, "user")
    names = [name for name, _label in view._export_columns]
    headers = [str(label) for _name, label in view._export_columns]
    users = sorted([world["operator"], world["tokyo_clerk"], world["tokyo_doctor"], world["osaka_doctor"], doctor],
                   key=lambda u: u.login_id)
    login(client, world["operator"])
    assert get_export(client, "/admin/user/export/csv/").data == old_csv(headers, [old_user_values(u, names)
                                                                                  for u in users])


# --- every row ---------------------------------------------------------------------------------------------------

def test_every_row_is_exported_past_the_old_limit(app, client, world, monkeypatch):
    """Flask-Admin's export stopped at export_max_rows without a word; now every row comes, in chunks, and an xlsx
    sheet that is full goes on in the next one."""
    app.config["NANBYO_EXPORT_INLINE_ROWS"] = 5000
    monkeypatch.setattr(view_of(app, "document"), "export_max_rows", 1000)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 700)
    monkeypatch.setattr(exports, "XLSX_SHEET_ROWS", 1001)
    bulk_documents(2600, author=world["tokyo_doctor"], institution=world["tokyo_inst"],
                   municipality=world["tokyo"])
    all_ids = set(db.session.execute(select(Document.id)).scalars())
    assert len(all_ids) == 2600

    login(client, world["operator"])
    rows = csv_rows(get_export(client, "/admin/document/export/csv/"))
    assert len(rows) == 2601 and {int(r[0]) for r in rows[1:]} == all_ids
    assert [int(r[0]) for r in rows[1:]] == sorted(all_ids, reverse=True)  # the list's order, id breaking ties
    entry = log_entries("export")[-1]
    assert entry.data == {"format": "csv", "rows": 2600}

    sheets = xlsx_rows(get_export(client, "/admin/document/export/xlsx/").data)
    assert [len(sheet) for sheet in sheets] == [1001, 1001, 601]  # 1,000 + 1,000 + 600 rows under the heading
    assert all(sheet[0] == rows[0] for sheet in sheets)
    assert [int(r[0]) for sheet in sheets for r in sheet[1:]] == [int(r[0]) for r in rows[1:]]
    book = load_workbook(io.BytesIO(get_export(client, "/admin/document/export/xlsx/").data), read_only=True)
    assert [sheet.max_row for sheet in book.worksheets] == [1001, 1001, 601]  # the size the file states


# --- scope, filters, search, sort ---------------------------------------------------------------------------------

def test_export_is_scoped_as_the_list(app, world):
    bulk_documents(30, author=world["tokyo_doctor"], institution=world["tokyo_inst"], municipality=world["tokyo"])
    bulk_documents(20, author=world["tokyo_doctor"], institution=world["tokyo_inst"], municipality=world["tokyo"],
                   status="draft", start=100)
    bulk_documents(40, author=world["osaka_doctor"], institution=world["osaka_inst"], municipality=world["osaka"],
                   start=200)
    tokyo_received = set(db.session.execute(select(Document.id).where(
        Document.municipality_id == world["tokyo"].id, Document.status == "received")).scalars())
    tokyo_doctors = set(db.session.execute(select(Document.id).where(
        Document.author_id == world["tokyo_doctor"].id)).scalars())
    every = set(db.session.execute(select(Document.id)).scalars())
    for user, expected in ((world["tokyo_clerk"], tokyo_received), (world["tokyo_doctor"], tokyo_doctors),
                           (world["osaka_doctor"], every - tokyo_doctors), (world["operator"], every)):
        client = app.test_client()
        login(client, user)
        for fmt in ("csv", "xlsx"):
            response = get_export(client, f"/admin/document/export/{fmt}/")
            rows = csv_rows(response)[1:] if fmt == "csv" else xlsx_rows(response.data)[0][1:]
            assert {int(r[0]) for r in rows} == expected, (user.role, fmt)
    assert len(tokyo_received) == 30 and len(tokyo_doctors) == 50


def test_filters_search_and_sort_are_the_lists(app, client, world):
    bulk_documents(5, author=world["tokyo_doctor"], institution=world["tokyo_inst"], municipality=world["tokyo"])
    bulk_documents(3, author=world["tokyo_doctor"], institution=world["tokyo_inst"], municipality=world["tokyo"],
                   status="draft", start=10)
    view = view_of(app, "document")
    status_filter = next(i for i, f in enumerate(view._filters)
                         if f.name == "状態" and type(f).__name__ == "FilterEqual")
    login(client, world["operator"])
    rows = csv_rows(get_export(client, f"/admin/document/export/csv/?flt0_{status_filter}=draft"))[1:]
    assert len(rows) == 3 and {r[4] for r in rows} == {"作成中"}
    entry = log_entries("export")[-1]
    assert entry.data == {"format": "csv", "rows": 3, "query": {f"flt0_{status_filter}": "draft"}}
    # Sorted by 状態 ascending (its column's index in the list), as the list would be.
    sort = [name for name, _label in view._list_columns].index("status")
    rows = csv_rows(get_export(client, f"/admin/document/export/csv/?sort={sort}"))[1:]
    assert [r[4] for r in rows] == ["作成中"] * 3 + ["受付"] * 5
    rows = csv_rows(get_export(client, f"/admin/document/export/csv/?sort={sort}&desc=1"))[1:]
    assert [r[4] for r in rows] == ["受付"] * 5 + ["作成中"] * 3

    gen_institution(world["tokyo"], code="1310000017", name="検索見本病院")
    gen_institution(world["tokyo"], code="1310000025", name=HYPERLINK)
    rows = csv_rows(get_export(client, "/admin/institution/export/csv/?search=検索見本"))[1:]
    assert [r[0] for r in rows] == ["1310000017"]
    rows = csv_rows(get_export(client, "/admin/institution/export/csv/?search=HYPERLINK"))[1:]
    assert [r[:2] for r in rows] == [["1310000025", "'" + HYPERLINK]]


def test_formulas_are_neutralised_in_every_format(client, world):
    gen_institution(world["tokyo"], code="1310000025", name=HYPERLINK)
    login(client, world["operator"])
    rows = csv_rows(get_export(client, "/admin/institution/export/csv/"))
    assert ["1310000025", "'" + HYPERLINK] in [r[:2] for r in rows]
    body = get_export(client, "/admin/institution/export/xlsx/").data
    book = load_workbook(io.BytesIO(body))
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert "'" + HYPERLINK in [c.value for c in cells]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []


# --- streaming and the log -------------------------------------------------------------------------------------------

def test_csv_streams_and_is_logged_before_the_first_byte(app, world):
    """The response is a generator read chunk by chunk; its log entry is committed before it is read; the count
    and the rows come from one snapshot, so a row added meanwhile is in neither."""
    bulk_documents(50, author=world["tokyo_doctor"], institution=world["tokyo_inst"], municipality=world["tokyo"])
    view = view_of(app, "document")
    with app.test_request_context("/admin/document/export/csv/"):
        login_user(world["operator"])
        response = view.export("csv")
    assert response.is_streamed
    assert [e.data for e in log_entries("export")] == [{"format": "csv", "rows": 50}]
    # A document written while the file is being sent is not in it (and not in the logged count).
    bulk_documents(1, author=world["tokyo_doctor"], institution=world["tokyo_inst"], municipality=world["tokyo"],
                   start=999)
    chunks = iter(response.response)
    first = next(chunks)
    assert first.startswith(b"\xef\xbb\xbf") and first.count(b"\r\n") == 1  # the heading, before any row
    body = first + b"".join(chunks)
    response.close()
    assert body.count(b"\r\n") == 51 and b"R-999" not in body
    assert db.session.execute(select(func.count()).select_from(Document)).scalar() == 51


def test_unknown_format_is_404_and_nothing_is_logged(client, world):
    login(client, world["operator"])
    assert client.get("/admin/document/export/pdf/").status_code == 404
    assert log_entries("export") == []


def test_every_list_view_exports(app, client, world):
    """Every scoped list resolves its export columns to SQL (a misnamed column would raise here)."""
    login(client, world["operator"])
    views = [v for v in app.extensions["admin"][0]._views if isinstance(v, ScopedModelView)]
    for view in views:
        rows = csv_rows(get_export(client, f"{view.url}/export/csv/"))
        assert rows[0] == [str(label) for _name, label in view._export_columns], view.endpoint
    assert {v.endpoint for v in views} >= {"document", "user", "membership", "institution", "municipality",
                                          "operation_log", "nanbyo_disease", "shoman_group", "shoman_disease"}
    assert db.session.execute(select(func.count()).select_from(OperationLog)
                              .where(OperationLog.action == "export")).scalar() == len(views)


def test_dates_and_times_keep_their_old_text(client, world):
    doc = gen_document(world["tokyo_doctor"], status="reviewed")
    login(client, world["operator"])
    row = csv_rows(get_export(client, "/admin/document/export/csv/"))[1]
    assert row[5] == doc.written_on.isoformat() and row[15] == doc.valid_from.isoformat()
    assert row[16] == (doc.valid_from + timedelta(days=365)).isoformat()
    log = csv_rows(get_export(client, "/admin/operation_log/export/csv/"))
    header = log[0]
    first = dict(zip(header, log[-1]))
    assert first["日時（ISO 8601）"].endswith("+09:00") and len(first["日時（JST）"]) == 19


# --- the writers -----------------------------------------------------------------------------------------------------

def test_cell_texts_is_cell_text_for_every_value():
    from datetime import date, datetime, timezone
    from tests.test_exports import DANGEROUS
    values = DANGEROUS + ["", "東京", "a=b", None, True, False, 0, -5, 3.5, date(2026, 4, 1),
                          datetime(2026, 3, 31, 15, 30, tzinfo=timezone.utc)]
    assert exports.cell_texts(values) == [exports.cell_text(v) for v in values]
    assert exports.cell_texts(["-5", -5]) == ["'-5", "'-5"]


def test_xml_text_survives_the_xlsx_writer():
    """Markup characters, a carriage return, spaces at the ends, and control characters XML cannot hold."""
    values = ["<b>&amp;</b>", "a\rb", " lead", "trail ", "x\x01y\x1fz", "改行\nあり", "'quoted"]
    body = exports.render("xlsx", ["見出し"], [[v] for v in values])
    assert [row[0] for row in xlsx_rows(body)[0][1:]] == ["<b>&amp;</b>", "a\rb", " lead", "trail ", "xyz",
                                                          "改行\nあり", "'quoted"]


def test_a_failed_xlsx_leaves_no_temporary_file(tmp_path, monkeypatch):
    import tempfile as tempfile_module
    monkeypatch.setattr(tempfile_module, "tempdir", str(tmp_path))

    def chunks():
        yield [["a", "b"]] * 10
        raise OSError("the database went away")
    with pytest.raises(OSError):
        exports.write_xlsx(io.BytesIO(), ["h", "i"], chunks(), sheet_rows=4)
    assert list(tmp_path.iterdir()) == []
