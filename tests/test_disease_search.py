"""The disease picker's search (views/diseases.py, GET /admin/diseases/search): 告示番号, 小慢コード, name and カナ;
only the 指定難病 in force; 20 a page in master order; only for those who may create documents; changes nothing."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models._types import today_jst
from models.audit import OperationLog
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo.extensions import db
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user, login
from views.diseases import PAGE_SIZE
from views.documents import disease_choices

URL = "/admin/diseases/search"


@pytest.fixture
def hospital(app):
    return gen_institution(gen_municipality(TOKYO))


@pytest.fixture
def doctor(hospital):
    return gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"))


@pytest.fixture
def signed_in(client, doctor):
    assert login(client, doctor).status_code == 302
    return client


def search(client, kind="nanbyo", q="", page=None):
    params = {"kind": kind, "q": q} | ({"page": page} if page is not None else {})
    r = client.get(URL, query_string=params)
    assert r.status_code == 200, r.status_code
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) == {"results", "pagination"} and set(body["pagination"]) == {"more"}
    for item in body["results"]:
        assert isinstance(item["id"], str) and item["id"].isdigit() and item["text"]
    return body


def texts(body):
    return [item["text"] for item in body["results"]]


def nanbyo(number):
    return db.session.execute(select(NanbyoDisease).filter_by(notification_no=number, is_subtype=False)).scalar_one()


def every_result(client, kind, q=""):
    """All pages of a search: the ids in the order given."""
    ids, page = [], 1
    while True:
        body = search(client, kind, q, page)
        ids += [item["id"] for item in body["results"]]
        if not body["pagination"]["more"]:
            return ids
        assert len(body["results"]) == PAGE_SIZE
        page += 1


# --- 告示番号 and 小慢コード ------------------------------------------------------------------------------------------

def test_notification_number_exact_first_then_prefix(signed_in):
    parkinson = nanbyo(6)
    body = search(signed_in, "nanbyo", "6")
    assert body["results"][0] == {"id": str(parkinson.id), "text": "6 パーキンソン病", "group": "神経・筋疾患"}
    assert "60 再生不良性貧血" in texts(body)  # a prefix of 60–69
    assert all(re.match(r"6\d* ", t) for t in texts(body))
    # 全角 digits and a leading zero are the same number.
    assert search(signed_in, "nanbyo", "６")["results"][0]["id"] == str(parkinson.id)
    assert search(signed_in, "nanbyo", "006")["results"][0]["id"] == str(parkinson.id)
    # A digit word is a number, not a part of a name (「脊髄小脳失調症６型」 is not among 6's).
    assert not any("失調症" in t for t in texts(search(signed_in, "nanbyo", "6")))


def test_number_and_name_together(signed_in):
    """The label a result shows, typed back, finds it (every word must match)."""
    assert texts(search(signed_in, "nanbyo", "6 パーキンソン病")) == ["6 パーキンソン病"]
    assert texts(search(signed_in, "nanbyo", "7 パーキンソン")) == []


@pytest.mark.parametrize("code", ["01_01", "0101", "０１＿０１"])
def test_shoman_code_prefix_with_or_without_underscores(signed_in, code):
    expected = db.session.execute(select(ShomanDisease.id).where(ShomanDisease.shoman_code.like("01\\_01\\_%",
                                                                                                 escape="\\"))
                                  .order_by(ShomanDisease.shoman_code, ShomanDisease.id)).scalars().all()
    assert expected
    body = search(signed_in, "shoman", code)
    assert [int(i["id"]) for i in body["results"]] == expected[:PAGE_SIZE]
    assert all(t.startswith("01_01_") for t in texts(body))
    assert body["results"][0]["group"] == "1 悪性新生物 › 1-1 白血病"


def test_shoman_full_code_and_subgroup(signed_in):
    first = db.session.execute(select(ShomanDisease).filter_by(shoman_code="01_01_001")).scalar_one()
    assert texts(search(signed_in, "shoman", "01_01_001")) == [f"01_01_001 {first.name_ja}"]
    assert texts(search(signed_in, "shoman", "0101001")) == [f"01_01_001 {first.name_ja}"]
    # 「1-1」, as the list's headings write a 大分類.
    body = search(signed_in, "shoman", "1-1")
    assert body["results"] and all(" › 1-1 " in item["group"] for item in body["results"])


# --- names and カナ ----------------------------------------------------------------------------------------------

def test_name_substring(signed_in):
    found = texts(search(signed_in, "nanbyo", "パーキン"))
    assert found[0] == "6 パーキンソン病"
    assert "120 遺伝性ジストニア › 急性発症ジストニア・パーキンソニズム" in found  # a 病型, with its disease
    assert texts(search(signed_in, "nanbyo", "再生不良性"))[0] == "60 再生不良性貧血"
    assert any("白血病" in t for t in texts(search(signed_in, "shoman", "白血病")))


@pytest.mark.parametrize("typed", ["ぱーきんそん", "パーキンソン", "ﾊﾟｰｷﾝｿﾝ", "ぱ ー き ん そ ん 病"])
def test_kana_as_typed_finds_the_katakana_name(signed_in, typed):
    """No readings in the masters: hiragana and 半角 カナ are matched against names written in katakana."""
    assert texts(search(signed_in, "nanbyo", typed))[0] == "6 パーキンソン病"


def test_names_are_compared_normalised(signed_in):
    # 全角 in the master (「脊髄小脳失調症３型」), 半角 in the query; letter case; hiragana in the master (もやもや病).
    assert "18 脊髄小脳変性症(多系統萎縮症を除く。) › 脊髄小脳失調症３型" in texts(search(signed_in, "nanbyo", "失調症3型"))
    assert texts(search(signed_in, "nanbyo", "mcleod")) == ["9 神経有棘赤血球症 › Mcleod症候群"]
    assert texts(search(signed_in, "nanbyo", "もやもや"))[0] == "22 もやもや病"


def test_subtypes_show_and_are_found_by_their_disease(signed_in):
    found = texts(search(signed_in, "nanbyo", "神経有棘赤血球症"))
    assert found == ["9 神経有棘赤血球症", "9 神経有棘赤血球症 › 有棘赤血球舞踏病", "9 神経有棘赤血球症 › Mcleod症候群"]


def test_no_match_and_odd_queries(signed_in):
    assert search(signed_in, "nanbyo", "該当しない病名") == {"results": [], "pagination": {"more": False}}
    assert search(signed_in, "nanbyo", "%")["results"] == []
    assert search(signed_in, "nanbyo", "_")["results"] == []
    assert search(signed_in, "nanbyo", "ア" * 5000)["results"] == []  # long input: looked at, not an error
    assert texts(search(signed_in, "nanbyo", "  "))[:1] == ["1 球脊髄性筋萎縮症"]  # only spaces: the first page


# --- 小慢 and 難病 are apart; 難病 only in force -------------------------------------------------------------------

def test_kinds_are_separate(signed_in):
    assert search(signed_in, "shoman", "パーキンソン病")["results"] == []
    assert search(signed_in, "nanbyo", "01_01")["results"] == []
    shoman_ids = {str(i) for i in db.session.execute(select(ShomanDisease.id)).scalars()}
    body = search(signed_in, "shoman", "白血病")
    assert body["results"] and {i["id"] for i in body["results"]} <= shoman_ids
    assert all(re.match(r"\d\d_\d\d_\d\d\d ", t) for t in texts(body))


@pytest.mark.parametrize("kind", ["nanbyo", "shoman"])
def test_the_search_offers_exactly_the_forms_list(signed_in, kind):
    """All pages of the empty search are the form's own list (views.documents.disease_choices), each once; in master
    order (the list groups them by 疾患区分 / 疾患群)."""
    listed = [value for group in disease_choices(kind, today_jst()).values() for value, _label in group if value]
    found = every_result(signed_in, kind)
    assert len(found) == len(set(found)) == len(listed) and set(found) == set(listed)
    model = ShomanDisease if kind == "shoman" else NanbyoDisease
    order = (ShomanDisease.shoman_code,) if kind == "shoman" else (NanbyoDisease.notification_no,
                                                                   NanbyoDisease.is_subtype)
    master_order = db.session.execute(select(model.id).order_by(*order, model.id)).scalars().all()
    assert [int(i) for i in found] == [i for i in master_order if str(i) in set(listed)]


def test_only_diseases_in_force(signed_in, restore_masters):
    parkinson = nanbyo(6)
    assert search(signed_in, "nanbyo", "パーキンソン病")["results"][0]["id"] == str(parkinson.id)
    parkinson.since = today_jst() + timedelta(days=1)  # becomes 指定難病 tomorrow
    db.session.commit()
    assert texts(search(signed_in, "nanbyo", "パーキンソン病")) == []
    assert str(parkinson.id) not in [i["id"] for i in search(signed_in, "nanbyo", "6")["results"]]
    assert str(parkinson.id) not in every_result(signed_in, "nanbyo")
    parkinson.since = today_jst()  # in force from today
    db.session.commit()
    assert texts(search(signed_in, "nanbyo", "パーキンソン病")) == ["6 パーキンソン病"]
    parkinson.since = None  # unknown: in force, as the form's list has it
    db.session.commit()
    assert texts(search(signed_in, "nanbyo", "パーキンソン病")) == ["6 パーキンソン病"]


# --- pages ---------------------------------------------------------------------------------------------------------

def test_paging_in_master_order(signed_in):
    total = db.session.scalar(select(func.count()).select_from(NanbyoDisease))
    first, second = search(signed_in, "nanbyo", ""), search(signed_in, "nanbyo", "", 2)
    assert len(first["results"]) == len(second["results"]) == PAGE_SIZE
    assert first["pagination"]["more"] and second["pagination"]["more"]
    assert texts(first)[:3] == ["1 球脊髄性筋萎縮症", "2 筋萎縮性側索硬化症", "3 脊髄性筋萎縮症"]
    assert not {i["id"] for i in first["results"]} & {i["id"] for i in second["results"]}
    everything = every_result(signed_in, "nanbyo")
    assert len(everything) == len(set(everything)) == total  # all in force in the loaded masters
    last_page = -(-total // PAGE_SIZE)
    last = search(signed_in, "nanbyo", "", last_page)
    assert not last["pagination"]["more"] and len(last["results"]) == total - (last_page - 1) * PAGE_SIZE
    assert search(signed_in, "nanbyo", "", last_page + 1) == {"results": [], "pagination": {"more": False}}
    # A missing or bad page number is the first page.
    for bad in ("0", "-3", "abc", ""):
        assert search(signed_in, "nanbyo", "", bad)["results"] == first["results"]


def test_paging_of_a_search(signed_in):
    body = search(signed_in, "shoman", "01_01")
    assert not body["pagination"]["more"]  # 18 rows: one page
    body = search(signed_in, "nanbyo", "1")
    assert body["pagination"]["more"] and len(body["results"]) == PAGE_SIZE
    assert search(signed_in, "nanbyo", "1", 2)["results"][0]["text"].startswith("1")


def test_unknown_kind(signed_in):
    assert signed_in.get(URL, query_string={"kind": "other", "q": "a"}).status_code == 400
    assert signed_in.get(URL, query_string={"q": "a"}).status_code == 400


# --- who, and nothing changes ------------------------------------------------------------------------------------

def test_search_changes_nothing_and_logs_nothing(signed_in):
    before = db.session.scalar(select(func.count()).select_from(OperationLog))
    for q in ("", "パーキン", "6"):
        search(signed_in, "nanbyo", q)
    search(signed_in, "shoman", "0101")
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(OperationLog)) == before
    assert signed_in.post(URL, query_string={"kind": "nanbyo"}).status_code == 405


ROLES = {
    "doctor": ("designated_doctor", {}, True), "staff": ("institution_staff", {}, True),
    "manager": ("designated_doctor", {"manager": True}, True), "staff_manager": ("institution_staff",
                                                                                 {"manager": True}, True),
    "op_admin": ("operator_admin", {}, True), "op_user": ("operator_user", {}, True),
    "muni_admin": ("municipality_admin", {}, False), "muni_user": ("municipality_user", {}, False),
}


@pytest.mark.parametrize("who", sorted(ROLES))
def test_who_may_search(client, hospital, who):
    role, options, allowed = ROLES[who]
    extra = {"institution": hospital} if role in ("designated_doctor", "institution_staff") else {}
    assert login(client, gen_user(role, **extra, **options)).status_code == 302
    for kind in ("nanbyo", "shoman"):
        r = client.get(URL, query_string={"kind": kind, "q": "1"})
        if allowed:
            assert r.status_code == 200 and r.get_json()["results"], who
        else:
            assert r.status_code == 403, who
            assert not r.is_json


def test_anonymous_goes_to_login(client, app):
    r = client.get(URL, query_string={"kind": "nanbyo", "q": "パーキン"})
    assert r.status_code == 302 and "/login" in r.headers["Location"]


# --- the form uses it ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["nanbyo", "shoman"])
def test_new_document_form_wires_the_picker(signed_in, kind):
    page = signed_in.get(f"/admin/document/new/?kind={kind}").get_data(as_text=True)
    select_tag = re.search(r"<select[^>]*name=\"disease\"[^>]*>", page).group(0)
    assert f'data-search-url="{URL}?kind={kind}"' in select_tag
    assert 'data-placeholder="告示番号・疾病コード・病名・カナで検索"' in select_tag
    # The full list stays as the no-JavaScript picker. The search has no menu entry.
    assert page.count("<optgroup") > 10
    assert "疾病検索" not in page
    # Flask-Admin's Select2 and its Bootstrap theme; our script with the page's nonce.
    assert "/admin/static/vendor/select2/select2.css" in page
    assert "/admin/static/vendor/select2/select2-bootstrap4.css" in page
    assert "/admin/static/vendor/select2/select2.min.js" in page
    nonce = re.search(r"'nonce-([^']+)'", signed_in.get(f"/admin/document/new/?kind={kind}")
                      .headers["Content-Security-Policy"])
    assert nonce
    assert re.search(r'<script nonce="[^"]+" src="/static/disease-picker.js', page)
    script = signed_in.get("/static/disease-picker.js").get_data(as_text=True)
    for message in ("検索中…", "該当する疾病がありません", "さらに読み込み中…"):
        assert message in script
    assert signed_in.get("/static/disease-picker.css").status_code == 200
