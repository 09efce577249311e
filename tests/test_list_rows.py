"""A list page's rows rendered once per page (views/base.py PageRows and PageRowAction) are, byte for byte, the rows
Flask-Admin renders one by one (the view's `page_rows` false): the same cells, escaped alike, and on each row the
same actions with the same URLs, the list's return URL (url=) included; ✎ and 🗑 only on rows the user may change."""
import re
from types import SimpleNamespace

import pytest
from jinja2 import DictLoader, Environment, pass_context

from nanbyo import audit
from nanbyo.extensions import db
from tests.helpers import OSAKA, TOKYO, gen_document, gen_institution, gen_municipality, gen_patient, gen_user, login
from views.base import PageRows

HOSTILE = "<b>\"x\" & 'y'</b>"  # must reach the page escaped, whichever way the row is rendered

LISTS = {
    "operator": ["document", "institution", "user", "membership", "municipality", "operation_log", "nanbyo_disease",
                 "shoman_group", "shoman_disease"],
    "clerk": ["document", "institution", "user", "membership", "municipality"],
    "manager": ["document", "institution"],
    "doctor": ["document"],
    "staff": ["document"],
}
# A query string, so that the return URL the row actions carry is not the bare list's.
QUERY = {"document": "?page_size=20&sort=6&desc=1", "user": "?page_size=20&search=user"}


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    hospital, clinic = gen_institution(tokyo, name=f"病院{HOSTILE}"), gen_institution(osaka)
    both = ("nanbyo", "shoman")
    manager = gen_user("designated_doctor", institution=hospital, manager=True, designations=both)
    doctor = gen_user("designated_doctor", institution=hospital, designations=both, name=f"医師{HOSTILE}")
    staff = gen_user("institution_staff", institution=hospital)
    osaka_doctor = gen_user("designated_doctor", institution=clinic, designations=both)
    statuses = ("draft", "finalized", "received", "reviewed", "completed")
    author_place = {manager.id: tokyo.name, doctor.id: tokyo.name, osaka_doctor.id: osaka.name}
    for i in range(15):
        author = (manager, doctor, osaka_doctor)[i % 3]
        gen_document(author, status=statuses[i % 5], kind="shoman" if i % 4 == 0 else "nanbyo",
                     created_by=staff if author is doctor else None,
                     patient=gen_patient(family_name=HOSTILE, address=f"{author_place[author.id]}見本町1-1")
                     if i % 2 else None)
    clerk = gen_user("municipality_admin", municipality=tokyo)
    audit.record("login", actor=clerk, data={"note": HOSTILE})
    db.session.commit()
    return {"operator": gen_user("operator_admin"), "clerk": clerk, "manager": manager, "doctor": doctor,
            "staff": staff}


def admin_view(app, endpoint):
    return next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == endpoint)


def rows_of(page):
    """The list's table, the CSRF tokens of its delete forms blanked (each request signs its own)."""
    table = re.search(r'<table class="table table-striped table-bordered table-hover model-list">.*?</table>', page,
                      re.S)
    assert table, "no list table"
    return re.sub(r'(name="csrf_token" type="hidden" value=")[^"]*', r"\1", table.group(0))


@pytest.mark.parametrize("who", list(LISTS))
def test_rows_rendered_once_per_page_are_flask_admins_rows(app, client, world, monkeypatch, who):
    compiled = []
    compile_rows = PageRows._compile
    monkeypatch.setattr(PageRows, "_compile", lambda self, *a: compiled.append(compile_rows(self, *a)) or compiled[-1])
    login(client, world[who])
    for endpoint in LISTS[who]:
        url = f"/admin/{endpoint}/{QUERY.get(endpoint, '')}"
        fast = client.get(url).get_data(as_text=True)
        with monkeypatch.context() as m:
            m.setattr(admin_view(app, endpoint), "page_rows", False)
            reference = client.get(url).get_data(as_text=True)
        assert compiled and compiled[-1] is not False, f"{endpoint}: the rows were not rendered once per page"
        assert rows_of(fast) == rows_of(reference), endpoint
        assert "nanbyo-row-" not in fast and HOSTILE not in fast, endpoint
        assert fast.count("class=\"list-buttons-column\"") >= 1, f"{endpoint}: the case needs rows"
        compiled.clear()


def test_the_doctors_page_shows_rows_with_and_without_edit_and_delete(app, client, world):
    login(client, world["doctor"])
    rows = rows_of(client.get("/admin/document/" + QUERY["document"]).get_data(as_text=True)).split("<tr>")[2:]
    edits = [row for row in rows if "/admin/document/edit/?id=" in row]
    assert edits and len(edits) < len(rows)
    links = re.findall(r'href="(/admin/document/(?:details|edit)/[^"]*)"', "".join(rows))
    assert len(links) == len(rows) + len(edits)
    assert all(link.endswith("&amp;url=/admin/document/?sort%3D6%26desc%3D1%26page_size%3D20") for link in links), \
        "each action returns to the list as it was"
    assert all(("/admin/document/delete/" in row) == (row in edits) for row in rows)


# --- PageRows on its own: a row block that reads the row or the loop itself is rendered per row -------------------

ROW_BLOCKS = {
    "hooks only": "<td>{{ get_pk_value(row) }}</td>{% for c, _ in list_columns %}<td>{{ get_value(row, c) }}</td>"
                  "{% endfor %}",
    "reads the row": "<td>{{ row.name }}</td>{% for c, _ in list_columns %}<td>{{ get_value(row, c) }}</td>"
                     "{% endfor %}",
    "numbers the rows": "<td>{{ loop.index }}</td><td>{{ get_value(row, 'name') }}</td>",
    "another column": "<td>{{ get_value(row, 'note') }}</td><td>{{ get_value(row, 'name') }}</td>",
}


class StubView:
    page_rows, column_editable_list = True, ()

    def get_pk_value(self, row):
        return str(row.id)

    @pass_context
    def get_list_value(self, context, row, name):
        return getattr(row, name)


@pytest.mark.parametrize("block, once", [("hooks only", True), ("reads the row", False),
                                         ("numbers the rows", False), ("another column", False)])
def test_a_row_block_that_reads_the_row_itself_is_rendered_per_row(block, once, monkeypatch):
    env = Environment(autoescape=True, loader=DictLoader({
        "list.html": "{% for row in data %}<tr>{% block list_row scoped %}" + ROW_BLOCKS[block] +
                     "{% endblock %}</tr>{% endfor %}",
        "fast.html": "{% extends 'list.html' %}{% block list_row scoped %}{{ page_rows(row) }}{% endblock %}"}))
    view, compiled = StubView(), []
    compile_rows = PageRows._compile
    monkeypatch.setattr(PageRows, "_compile", lambda self, *a: compiled.append(compile_rows(self, *a)) or compiled[-1])
    rows = [SimpleNamespace(id=n, name=f"<{n}&>", note="x") for n in range(3)]
    page = {"data": rows, "list_columns": [("name", "名前")], "list_row_actions": [],
            "get_pk_value": view.get_pk_value, "get_value": view.get_list_value}
    fast = env.get_template("fast.html").render(page, page_rows=PageRows(view))
    assert fast == env.get_template("list.html").render(page)
    assert "&lt;2&amp;&gt;" in fast and (compiled[0] is not False) == once
