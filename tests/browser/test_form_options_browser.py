"""In Chromium, with the mouse: every option of every choice / multichoice / yesno item of every shipped form
definition is clicked on its label text, saved, and read back from the database; the finalized document's PDF holds
the chosen options' labels. At viewport widths 1280 and 1024, on the doctor's edit form of a draft and on the
municipality's correction form of a received document.

The bug this guards against: the option lists were drawn in a fixed-height .form-control box, so the 3rd and later
options overflowed it and lay under the next field; a click on them hit the next field instead, and the finding was
silently missing from the saved document and its PDF.

How: per form, the options are clicked column by column — in each round every item gets one option (the next one not
clicked yet), the form is saved once and the document checked, so a form takes as many saves as its longest option
list (+1 to finalize). A multichoice item gets all its options checked at once, then all but the first (unchecking
with the mouse too). An item with a `when` condition is only clicked in rounds where its condition holds (earlier items
are clicked first, and a condition item picks an option that makes the condition hold while a dependent item still
has options to click). Conditional items that are not choices (dates, texts) are typed in when they apply.
"""
import re
import shutil
import time

import pytest
from sqlalchemy import select
from wtforms import Form

from models.documents import Document
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import formdefs
from nanbyo.demo import sample_values
from nanbyo.extensions import db
from tests.browser.helpers import key_path, log_in
from tests.browser.test_documents_browser import _pdf_text
from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_user

pytestmark = pytest.mark.browser

PDFTOTEXT = shutil.which("pdftotext")
WIDTHS = (1280, 1024)
HEIGHT = 900
TIMEOUT_MS = 5000  # a click that cannot reach its label (something lies over it) fails after this
DEFINITIONS = sorted(formdefs.all_versions())  # every version shipped: the newest and the older ones drafts use
SCREENSHOT_FORMS = {("nanbyo-006", 2), ("nanbyo-002", 1), ("shoman-01_01_001", 1)}  # パーキンソン病, ALS, 小慢 ALL
CORRECTED_FORMS = (("nanbyo-006", 2), ("shoman-01_01_001", 1))  # the municipality's correction form: 難病 and 小慢
CODED = formdefs.CODED_TYPES


# --- what to click -------------------------------------------------------------------------------------------------

def _options(defn, item):
    """[(posted value, label text)] of an item's options, in the order the entry form shows them."""
    name = formdefs.field_name(item)
    field = type("F", (Form,), {name: formdefs.form_fields(defn)[name]})()[name]
    return [(option.data, option.label.text) for option in field]


def _holds(when, chosen):
    current = chosen.get(when["item"])
    if isinstance(current, list):
        return any(code in when["in"] for code in current)
    return current not in (None, "") and current in when["in"]


def _applies(item, chosen):
    return item.when is None or _holds(item.when, chosen)


def _dependents(defn):
    return {item.id: [d for d in defn.items if d.when and d.when["item"] == item.id] for item in defn.items}


def _rounds(defn, correcting):
    """Rounds of clicks, {item id: value} (a list for multichoice) of the items that apply, until every option of
    every item has been clicked in a round where its item applies. On the correction form a required item is never
    emptied (a received document must keep passing the finalize checks)."""
    coded = [i for i in defn.items if i.type in CODED]
    allowed = {i.id: [v for v, _ in _options(defn, i) if not (correcting and i.required and v == "")] for i in coded}
    pending = {i.id: ["all", "all but first"] if i.type == "multichoice" else list(allowed[i.id]) for i in coded}
    dependents = _dependents(defn)
    rounds = []
    while any(pending.values()):
        assert len(rounds) < 40, f"{defn.code}: the options cannot all be reached: {pending}"
        chosen, progress = {}, False
        for item in coded:
            if not _applies(item, chosen):
                continue
            waiting = [d for d in dependents[item.id] if d.type in CODED and pending[d.id]]
            wanted = {code for d in waiting for code in d.when["in"]}
            if item.type == "multichoice":
                codes = allowed[item.id]
                state = pending[item.id][0] if pending[item.id] else "all"
                value = codes[1:] if state == "all but first" and len(codes) > 1 else list(codes)
                if wanted and not wanted & set(value):
                    state, value = "all", list(codes)
            else:
                todo = [v for v in allowed[item.id] if v in pending[item.id]]
                if wanted:
                    value = ([v for v in todo if v in wanted] or [v for v in allowed[item.id] if v in wanted])[0]
                else:
                    value = (todo or [v for v in allowed[item.id] if v])[0]
                state = value
            if state in pending[item.id]:
                pending[item.id].remove(state)
                progress = True
            chosen[item.id] = value
        assert progress, f"{defn.code}: no progress: {pending}"
        rounds.append(chosen)
    return rounds


def _final_round(defn):
    """Values to finalize with: every option of a multichoice, else the last option — or one that makes a dependent
    item apply, so that it gets a value on paper too."""
    dependents = _dependents(defn)
    chosen = {}
    for item in defn.items:
        if item.type not in CODED or not _applies(item, chosen):
            continue
        codes = [c for c, _ in item.codes]
        if item.type == "multichoice":
            chosen[item.id] = codes
        else:
            wanted = {code for d in dependents[item.id] for code in d.when["in"]}
            chosen[item.id] = next((c for c in codes if c in wanted), codes[-1])
    return chosen


def _typed(item):
    """A valid value for a conditional item that is not a choice (typed in when its condition holds)."""
    match item.type:
        case "integer" | "decimal":
            return str(item.min if item.min is not None else 1)
        case "date":
            return "2024-04-01"
        case "yearmonth":
            return "2024-04"
        case _:
            return "見本の記載"


# --- clicking ------------------------------------------------------------------------------------------------------

def _click_options(form, defn, item, value, state):
    """Click the item's option(s) on their label text with the mouse; a <select> gets its option chosen."""
    name = formdefs.field_name(item)
    if state["kind"].get(name) == "select":  # a native drop-down, whose option list is the browser's own
        select_box = form.locator(f"select[name='{name}']")
        if state["first"]:  # the mouse reaches it (nothing lies over it)
            select_box.click(trial=True, timeout=TIMEOUT_MS)
        select_box.select_option(value=value)
        return
    wanted = set(value) if item.type == "multichoice" else {value}
    for code, text in _options(defn, item):
        if item.type == "multichoice":
            if (code in state["chosen"].get(name, ())) == (code in wanted):
                continue
        elif code != value:
            continue
        # The option's own <label for="item_x-N">, found by its exact text (WTForms names option ids <name>-N);
        # a click that some other element would receive fails (after TIMEOUT_MS) instead of landing there.
        label = form.locator(f"label[for^='{name}-']").filter(has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))
        label.click(timeout=TIMEOUT_MS)


def _fill_round(page, defn, chosen, stored, first=False):
    """Click one round on the open form; returns the raw values the form posts (stored values where untouched)."""
    form = page.locator("#document-form")
    posted = dict(stored)
    state = _state(page) | {"first": first}
    for item in defn.items:
        if not _applies(item, chosen):
            continue  # the server drops its value; a page may hide it
        name = formdefs.field_name(item)
        if item.type in CODED:
            _click_options(form, defn, item, chosen[item.id], state)
            posted[item.id] = chosen[item.id]
        elif item.when:
            form.locator(f"[name='{name}']").fill(_typed(item))
            posted[item.id] = _typed(item)
    shown = _state(page)["chosen"]
    for item in defn.items:  # every option as clicked (a click that landed elsewhere shows here)
        if item.type in CODED and _applies(item, chosen):
            value = chosen[item.id]
            expected = [c for c, _ in item.codes if c in value] if isinstance(value, list) else [value]
            assert shown.get(formdefs.field_name(item), []) == expected, (item.id, value)
    return posted


def _state(page):
    """The open form's choices: {"kind": {name: "select" | "radio" | "checkbox"}, "chosen": {name: [values]}}
    (the checked options of radio buttons and check boxes, the selected option of a select)."""
    return page.evaluate("""() => {
        const kind = {}, chosen = {};
        for (const e of document.querySelectorAll('#document-form select, #document-form input')) {
            if (e.tagName === 'SELECT') {
                kind[e.name] = 'select';
                chosen[e.name] = [...e.selectedOptions].map(o => o.value);
            } else if (e.type === 'radio' || e.type === 'checkbox') {
                kind[e.name] = e.type;
                chosen[e.name] = chosen[e.name] || [];
                if (e.checked) chosen[e.name].push(e.value);
            }
        }
        return {kind, chosen};
    }""")


def _layout_problems(page, defn):
    """Whether the items' boxes (inputs, labels, option labels) overlap the next item's, or overflow the page."""
    names = [formdefs.field_name(i) for i in defn.items]
    boxes = page.evaluate("""names => names.map(n => {
        const els = [...document.querySelectorAll(`[name="${n}"], label[for="${n}"], label[for^="${n}-"]`)];
        const rs = els.map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
        if (!rs.length) return null;
        return {top: Math.min(...rs.map(r => r.top)) + scrollY, bottom: Math.max(...rs.map(r => r.bottom)) + scrollY,
                right: Math.max(...rs.map(r => r.right))};
    })""", names)
    width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    problems = [f"the page is wider than the window: {width}"] if width[0] > width[1] else []
    section_of = {i.id: n for n, s in enumerate(defn.sections) for i in s.items}
    for (a, box_a), (b, box_b) in zip(zip(defn.items, boxes), zip(defn.items[1:], boxes[1:])):
        if box_a is None or box_b is None or section_of[a.id] != section_of[b.id]:
            continue
        if box_a["bottom"] > box_b["top"] + 0.5:
            problems.append(f"{a.id} reaches {box_a['bottom'] - box_b['top']:.0f}px into {b.id}")
    return problems


# --- one document, one width ---------------------------------------------------------------------------------------

def _disease(defn):
    model, column = (NanbyoDisease, NanbyoDisease.notification_no) if defn.kind == "nanbyo" else \
        (ShomanDisease, ShomanDisease.shoman_code)
    query = select(model).order_by(column, model.id)
    if defn.diseases:
        return db.session.execute(query.where(column == defn.diseases[0])).scalars().first()
    return next(d for d in db.session.execute(query).scalars()
                if formdefs.definition_for(defn.kind, d).code == defn.code)


def _document(doctor, defn, status="draft"):
    doc = gen_document(doctor, kind=defn.kind, disease=_disease(defn), status=status, items=sample_values(defn))
    if doc.form_version != defn.version:  # an older version, as an old draft has it
        assert status == "draft"
        doc.form_code, doc.form_version, doc.items = defn.code, defn.version, sample_values(defn)
        db.session.commit()
    return doc


def _stored(doc_id):
    db.session.expire_all()
    return db.session.get(Document, doc_id)


def _check_saved(defn, doc, posted, chosen, where):
    expected, problems = formdefs.validate(defn, posted, finalize=False)
    assert problems == [], (where, problems)
    for item in defn.items:  # what was clicked, item by item
        if item.type in CODED and _applies(item, chosen):
            clicked = chosen[item.id]
            assert doc.items.get(item.id, [] if item.type == "multichoice" else "") == clicked, \
                (where, item.id, clicked, doc.items.get(item.id))
    assert doc.items == expected, where


def _check_pdf(page, base, defn, doc, tmp_path, where):
    response = page.request.get(f"{base}/admin/document/print/?id={doc.id}")
    assert response.ok and response.headers["content-type"] == "application/pdf", where
    if not PDFTOTEXT:
        return
    text = re.sub(r"\s", "", _pdf_text(response.body(), tmp_path, f"{where}.pdf"))
    for item in defn.items:
        value = doc.items.get(item.id)
        if item.type not in CODED or value in (None, "", []):
            continue
        labels = dict(item.codes)
        for code in value if isinstance(value, list) else [value]:
            assert re.sub(r"\s", "", labels[code]) in text, (where, item.id, labels[code])


def _run(browser, base, tmp_path, user, defn, doc, width, purpose):
    """Every round on the form of `purpose` ("edit": the doctor's, "correct": the municipality's), then the
    finalizing round (the doctor's: save and finalize) and the PDF."""
    where = f"{defn.code}-v{defn.version}-{purpose}-{width}"
    context = browser.new_context(locale="ja-JP", viewport={"width": width, "height": HEIGHT})
    context.set_default_timeout(15000)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base + "/")
                  else route.abort())
    page = context.new_page()
    try:
        log_in(page, base, user, key_path(tmp_path, user))
        rounds = _rounds(defn, correcting=purpose == "correct")
        form_url = f"{base}/admin/document/{purpose}/?id={doc.id}"
        for n, chosen in enumerate([*rounds, _final_round(defn)]):
            last = n == len(rounds)
            if page.url != form_url:  # 保存 may lead back to the form or to the details
                page.goto(form_url)
            if n == 0:
                assert _layout_problems(page, defn) == [], where
            stored = dict(_stored(doc.id).items or {})
            posted = _fill_round(page, defn, chosen, stored, first=n == 0)
            if n == 0 and (defn.code, defn.version) in SCREENSHOT_FORMS:
                page.screenshot(path=str(tmp_path / f"{where}.png"), full_page=True)
                assert _layout_problems(page, defn) == [], where
            finalize = last and purpose == "edit"
            with page.expect_navigation():
                page.click("#save-and-finalize" if finalize else "#save-document")
            alerts = page.locator(".alert").all_inner_texts()
            assert page.locator(".alert-success").count() and not page.locator(".alert-danger").count(), \
                (where, n, alerts)
            doc = _stored(doc.id)
            _check_saved(defn, doc, posted, chosen, f"{where} round {n}")
            if finalize:
                assert doc.status == "finalized", (where, page.locator(".alert").all_inner_texts())
        _check_pdf(page, base, defn, doc, tmp_path, where)
        return len(rounds) + 1
    finally:
        context.close()


def _doctor():
    tokyo = gen_municipality(TOKYO)
    hospital = gen_institution(tokyo, name="東京選択肢病院")
    return gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"), name="見本 指定医")


# --- the tests -----------------------------------------------------------------------------------------------------

def test_the_plan_clicks_every_option_where_its_item_applies():
    for key in DEFINITIONS:
        defn = formdefs.all_versions()[key]
        for correcting in (False, True):
            clicked = {}
            for chosen in _rounds(defn, correcting):
                for item_id, value in chosen.items():
                    clicked.setdefault(item_id, set()).update(value if isinstance(value, list) else [value])
            for item in defn.items:
                if item.type in CODED:
                    options = {v for v, _ in _options(defn, item)}
                    if correcting and item.required:
                        options.discard("")
                    assert clicked.get(item.id) == options, (key, correcting, item.id)


@pytest.mark.parametrize("key", DEFINITIONS, ids=[f"{code}-v{version}" for code, version in DEFINITIONS])
def test_doctor_clicks_every_option_and_the_document_and_pdf_keep_it(app, live_server, browser, tmp_path, key):
    defn = formdefs.all_versions()[key]
    doctor = _doctor()
    started, saves = time.monotonic(), 0
    for width in WIDTHS:
        doc = _document(doctor, defn)
        saves += _run(browser, live_server, tmp_path, doctor, defn, doc, width, "edit")
    print(f"{key}: {saves} saves in {time.monotonic() - started:.1f}s")


@pytest.mark.parametrize("key", CORRECTED_FORMS, ids=[f"{code}-v{version}" for code, version in CORRECTED_FORMS])
def test_municipality_clicks_every_option_on_the_correction_form(app, live_server, browser, tmp_path, key):
    defn = formdefs.all_versions()[key]
    doctor = _doctor()
    clerk = gen_user("municipality_user", municipality=gen_municipality(TOKYO), name="東京都 審査担当")
    started, saves = time.monotonic(), 0
    for width in WIDTHS:
        doc = _document(doctor, defn, status="received")
        assert doc.municipality_id == clerk.municipality_id
        saves += _run(browser, live_server, tmp_path, clerk, defn, doc, width, "correct")
        doc = _stored(doc.id)
        assert doc.status == "received" and doc.corrections, "the corrections are on record"
    print(f"{key} (correction): {saves} saves in {time.monotonic() - started:.1f}s")
