"""In Chromium, the disease picker of the new-document form: a doctor searches the Select2 box (Flask-Admin's, with the
ajax source /admin/diseases/search) by name for a 臨個票 and by 小慢コード for a 意見書, picks with the mouse, fills the
rest and creates the draft; at 1280 and 1024 px, with a screenshot of the open dropdown. Without JavaScript the full
list still works."""
import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models.documents import Document
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo.extensions import db
from tests.browser.helpers import key_path, log_in
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user

pytestmark = pytest.mark.browser

WIDTHS = (1280, 1024)
# kind -> (what is typed, the result clicked, how the saved disease is checked)
SEARCHES = {
    "nanbyo": ("パーキン", "6 パーキンソン病", lambda doc: doc.nanbyo_disease.notification_no == 6),
    "shoman": ("0101", "01_01_003 T細胞急性リンパ性白血病",
               lambda doc: doc.shoman_disease.shoman_code == "01_01_003"),
}


@pytest.fixture
def world(app):
    tokyo = gen_municipality(TOKYO)
    hospital = gen_institution(tokyo, name="東京ピッカー病院")
    doctor = gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"))
    return {"tokyo": tokyo, "hospital": hospital, "doctor": doctor}


def _context(browser, live_server, width, **options):
    context = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900}, **options)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    return context


def _login(page, base, user, tmp_path):
    log_in(page, base, user, key_path(tmp_path, user))


def _searched(page, drop, typed):
    """Type into the open dropdown's search box and wait for the answer to exactly that (not an earlier list)."""
    search_box = drop.locator("input.select2-input")
    with page.expect_response(lambda r: urlparse(r.url).path == "/admin/diseases/search"
                              and parse_qs(urlparse(r.url).query).get("q") == [typed]) as answer:
        search_box.press_sequentially(typed, delay=30)
    assert answer.value.ok
    expect(search_box).not_to_have_class(re.compile(r"select2-active"))
    return search_box


def _fill_the_rest(page, world):
    form = page.locator("#new-document-form")
    form.locator("select[name=application_kind]").select_option(label="新規")
    form.locator("select[name=institution]").select_option(value=str(world["hospital"].id))
    # 提出先: the institution's 実施主体 is preselected.
    expect(form.locator("select[name=municipality]")).to_have_value(str(world["tokyo"].id))
    form.locator("label").get_by_text("説明済・同意", exact=True).click()
    expect(form.get_by_label("説明済・同意", exact=True)).to_be_checked()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", sorted(SEARCHES))
def test_doctor_searches_and_picks_the_disease(app, live_server, browser, tmp_path, world, kind, width):
    typed, wanted, saved_right = SEARCHES[kind]
    context = _context(browser, live_server, width)
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        _login(page, live_server, world["doctor"], tmp_path)
        page.goto(f"{live_server}/admin/document/new/?kind={kind}")
        box = page.locator("#s2id_disease-search")
        expect(box).to_be_visible()
        expect(box.locator(".select2-chosen")).to_have_text("告示番号・疾病コード・病名・カナで検索")
        # The <select> the form posts is out of sight; its label names the search box.
        expect(page.locator("select[name=disease]")).to_have_class(
            "form-control select2-offscreen disease-picker-source")
        box_width = box.bounding_box()["width"]
        assert box_width > page.locator("select[name=application_kind]").bounding_box()["width"] * 0.95

        page.locator("label[for=disease-search]").click()  # the field's label puts the keyboard in the box
        expect(box).to_have_class(re.compile(r"select2-container-active"))
        box.locator(".select2-choice").click()
        drop = page.locator(".select2-drop-active.disease-picker-drop")
        expect(drop).to_be_visible()
        # Opened with nothing typed: the first page of the list, in master order.
        first = "1 球脊髄性筋萎縮症" if kind == "nanbyo" else "01_01_001 前駆B細胞急性リンパ性白血病"
        expect(drop.locator(".select2-result-label").first).to_contain_text(first)
        _searched(page, drop, typed)
        result = drop.locator(".select2-result-label", has=page.locator(".disease-picker-text", has_text=wanted))
        expect(result).to_be_visible()
        expect(drop.locator(".select2-result-label").first).to_contain_text(wanted[:6])
        expect(drop.locator(".disease-picker-group").first).not_to_be_empty()
        page.screenshot(path=str(tmp_path / f"picker-{kind}-{width}.png"))
        dropdown = drop.bounding_box()
        assert dropdown["x"] >= 0 and dropdown["x"] + dropdown["width"] <= width
        result.click()  # with the mouse
        expect(drop).to_be_hidden()
        expect(box.locator(".select2-chosen")).to_have_text(wanted)
        page.screenshot(path=str(tmp_path / f"picked-{kind}-{width}.png"))

        _fill_the_rest(page, world)
        with page.expect_navigation():
            page.click("#create-draft")
        assert "/admin/document/edit/" in page.url, page.locator(".alert").all_inner_texts()
        db.session.expire_all()
        doc = db.session.execute(select(Document)).scalar_one()
        assert (doc.kind, doc.status, doc.author_id) == (kind, "draft", world["doctor"].id)
        assert saved_right(doc)
        assert not problems, problems  # no script error, no CSP refusal
    finally:
        context.close()


def test_japanese_messages_and_no_match(app, live_server, browser, tmp_path, world):
    context = _context(browser, live_server, 1280)
    page = context.new_page()
    try:
        _login(page, live_server, world["doctor"], tmp_path)
        page.goto(f"{live_server}/admin/document/new/?kind=nanbyo")
        page.locator("#s2id_disease-search .select2-choice").click()
        drop = page.locator(".select2-drop-active")
        search_box = _searched(page, drop, "存在しない病名")
        expect(drop.locator(".select2-no-results")).to_have_text("該当する疾病がありません")
        # More than a page: scrolling to the end loads the next one.
        search_box.fill("")
        _searched(page, drop, "1")
        expect(drop.locator(".select2-result-label")).to_have_count(20)
        drop.locator(".select2-result-label").last.scroll_into_view_if_needed()
        expect(drop.locator(".select2-result-label")).to_have_count(40)
        # The keyboard: hiragana typed, Enter picks the first (highlighted) result.
        search_box.fill("")
        _searched(page, drop, "ぱーきんそん")
        page.keyboard.press("Enter")
        expect(drop).to_be_hidden()
        expect(page.locator("#s2id_disease-search .select2-chosen")).to_have_text("6 パーキンソン病")
        # A choice made in the <select> (a script, autofill) shows in the box.
        parkinson = db.session.execute(select(NanbyoDisease).filter_by(notification_no=6, is_subtype=False)
                                       ).scalar_one()
        assert page.locator("select[name=disease]").input_value() == str(parkinson.id)
        page.locator("select[name=disease]").select_option(value="")
        expect(page.locator("#s2id_disease-search .select2-chosen")).to_have_text("告示番号・疾病コード・病名・カナで検索")
        page.locator("select[name=disease]").select_option(value=str(parkinson.id))
        expect(page.locator("#s2id_disease-search .select2-chosen")).to_have_text("6 パーキンソン病")
        subtype = db.session.execute(select(NanbyoDisease).filter_by(notification_no=3, is_subtype=True)
                                     .order_by(NanbyoDisease.id)).scalars().first()
        page.locator("select[name=disease]").select_option(value=str(subtype.id))
        expect(page.locator("#s2id_disease-search .select2-chosen")).to_have_text(
            f"3 脊髄性筋萎縮症 › {subtype.name_ja}")
    finally:
        context.close()


def test_without_javascript_the_full_list_works(app, live_server, browser, tmp_path, world):
    context = _context(browser, live_server, 1024, java_script_enabled=False)
    page = context.new_page()
    try:
        _login(page, live_server, world["doctor"], tmp_path)
        page.goto(f"{live_server}/admin/document/new/?kind=shoman")
        disease = db.session.execute(select(ShomanDisease).filter_by(shoman_code="01_01_001")).scalar_one()
        expect(page.locator("select[name=disease]")).to_be_visible()
        page.locator("select[name=disease]").select_option(value=str(disease.id))
        _fill_the_rest(page, world)
        with page.expect_navigation():
            page.click("#create-draft")
        assert "/admin/document/edit/" in page.url, page.locator(".alert").all_inner_texts()
        db.session.expire_all()
        assert db.session.execute(select(Document)).scalar_one().shoman_disease_id == disease.id
    finally:
        context.close()
