"""On PostgreSQL an export whose every column has an SQL form is written by COPY (nanbyo.exports.cell_sql): the file
must be the one Python writes from the same rows, byte for byte, in every format."""
import io
from dataclasses import replace

import pytest
from flask_login import login_user
from hypothesis import HealthCheck, given, settings, strategies as st
from openpyxl import load_workbook
from sqlalchemy import delete

from models.institutions import Institution
from nanbyo import exports
from nanbyo.extensions import db
from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_user
from tests.test_exports import DANGEROUS

# Cells that make CSV quote, formula characters, spaces, control characters, what CP932 cannot hold.
AWKWARD = DANGEROUS + ['a,b', 'say "hi"', "two\nlines", "cr\ronly", "crlf\r\nend", " lead", "trail ", "tab\tin",
                       "\x01ctl", "髙﨑", "①②", "😀", "", "'quoted", "-5", "+81", "＝全角"]


def on_postgresql():
    return db.engine.dialect.name == "postgresql"


def source_of(app, endpoint, user, query=""):
    view = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == endpoint)
    with app.test_request_context(f"{view.url}/export/csv/{query}"):
        login_user(user)
        return view.export_source()


def both_files(source, fmt):
    """(COPY's file, Python's file) of one export."""
    files = []
    for path in (source, replace(source, copy_statement=None)):
        with exports.Snapshot(db.engine) as snapshot:
            if fmt == "xlsx":
                out = io.BytesIO()
                exports.write_xlsx(out, path.headers, exports.cell_chunks(path, snapshot))
                book = load_workbook(out)
                files.append([[list(row) for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets])
            else:
                files.append(b"".join(exports.csv_file(fmt, path, snapshot)))
    return files


@pytest.fixture
def operator(app):
    return gen_user("operator_admin")


def test_copy_serves_the_exports_whose_columns_all_have_an_sql_form(app, operator):
    for endpoint in ("document", "institution", "municipality", "membership", "nanbyo_disease"):
        assert source_of(app, endpoint, operator).copy_statement is not None, endpoint
    # Formats written only in Python (the log's data, the designations joined) keep those exports in Python.
    for endpoint in ("operation_log", "user"):
        assert source_of(app, endpoint, operator).copy_statement is None, endpoint
    with exports.Snapshot(db.engine) as snapshot:
        assert snapshot.copies(source_of(app, "document", operator)) == on_postgresql()


def test_copy_writes_the_file_python_writes(app, operator):
    if not on_postgresql():
        pytest.skip("COPY is PostgreSQL's")
    tokyo = gen_municipality(TOKYO)
    inst = gen_institution(tokyo)
    doctor = gen_user("designated_doctor", institution=inst, designations=("nanbyo", "shoman"))
    statuses = ["draft", "finalized", "received", "reviewed"]
    for i, text in enumerate(AWKWARD):
        doc = gen_document(doctor, status=statuses[i % 4], kind=("shoman", "nanbyo")[i % 2],
                           application_kind=("new", "renewal")[i % 2])
        doc.reception_no = text[:20]
        doc.research_consent = (None, True, False)[i % 3]
        gen_institution(tokyo, code=f"13{i:08d}", name=text or "空")
    db.session.commit()
    for endpoint, query in (("document", ""), ("institution", ""), ("document", "?sort=0&desc=1")):
        source = source_of(app, endpoint, operator, query)
        for fmt in ("csv", "csv_cp932", "xlsx"):
            copied, written = both_files(source, fmt)
            assert copied == written, (endpoint, fmt)
    # Scoped and filtered as the list: a clerk's export through COPY holds the clerk's rows only.
    clerk = gen_user("municipality_user", municipality=tokyo)
    copied, written = both_files(source_of(app, "document", clerk), "csv")
    assert copied == written and copied.count(b"\r\n") == 1 + sum(1 for i in range(len(AWKWARD)) if i % 4 >= 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
                      .filter(lambda name: name != "\\."),  # PostgreSQL quotes a lone \. (its end-of-data mark)
                      min_size=1, max_size=8))
def test_any_text_is_written_alike(app, operator, names):
    if not on_postgresql():
        pytest.skip("COPY is PostgreSQL's")
    tokyo = db.session.execute(db.select(Institution.municipality_id).limit(1)).scalar() or gen_municipality(TOKYO).id
    try:
        db.session.add_all(Institution(code=f"1399{i:06d}", name=name, municipality_id=tokyo,
                                        shoman_municipality_id=tokyo, address=name[::-1])
                           for i, name in enumerate(names))
        db.session.commit()
        source = source_of(app, "institution", operator)
        for fmt in ("csv", "csv_cp932"):
            copied, written = both_files(source, fmt)
            assert copied == written
    finally:
        db.session.rollback()
        db.session.execute(delete(Institution).where(Institution.code.like("1399%")))
        db.session.commit()
