"""The disease picker's search: Select2's ajax source for the new-document form (views.documents' `disease` field).

GET /admin/diseases/search?kind=nanbyo|shoman&q=...&page=N answers in Select2's format
`{"results": [{"id", "text", "group"}], "pagination": {"more": bool}}`, PAGE_SIZE a page, in master order (難病 by
告示番号, a disease's 病型 after it; 小慢 by 小慢コード). `group` is the result's <optgroup> in the form's list (疾患区分,
疾患群 › 大分類). An empty query lists the first page.

Every space-separated word of the query must match (AND):
- a word of digits is a number: 難病 the 告示番号, exact or as its prefix (「6」 gives 6, then 60–69); 小慢 a prefix of
  the 小慢コード, with or without underscores (「01_01」 = 「0101」); 小慢 「1-1」 (with a hyphen, as the list's headings
  write it) is a 大分類 (「1-」 a 疾患群);
- any other word is a part of the name. Both sides are compared as a clerk types カナ (nanbyo.crypto.normalise_kana:
  NFKC, ひらがな→カタカナ, no spaces or ・, small kana as large) and without letter case: 「ぱーきんそん」 finds
  パーキンソン病, 「3型」 finds 脊髄小脳失調症３型, 「mcleod」 finds Mcleod症候群. The masters have no readings, so a name
  written in kanji is found by its kanji only. A 病型 (subtype) is also found by the name of its disease.
So the label a result shows (「6 パーキンソン病」), typed back, finds it again.

The masters are small (about a thousand rows a kind) and names need Unicode normalisation that SQL does not do
portably, so the rows of the kind are read (for 難病 only those in force today: nanbyo.documents.in_force, the one the
form's list and the server's check use) and matched here. Search words are not patient data: nothing is logged, and
the request changes nothing.
"""
import re
import unicodedata
from functools import lru_cache

from flask import abort, jsonify, request
from flask_admin import expose
from sqlalchemy import select

from models._types import today_jst
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo import documents
from nanbyo.crypto import normalise_kana
from nanbyo.document_codes import KIND_LABELS, SHOMAN
from nanbyo.extensions import db
from views.base import ProtectedBaseView

PAGE_SIZE = 20
MAX_QUERY = 100  # characters of the query that are looked at
MAX_PAGE = 1000
SUBTYPE_SEPARATOR = " › "
_DIGITS = re.compile(r"^\d+$")
_CODE = re.compile(r"^[\d_]*\d[\d_]*$")
_SUBGROUP = re.compile(r"^\d+(-\d+)?-?$")
_SEPARATORS = re.compile(r"[\s›>]+")  # a result's label typed back: 「3 脊髄性筋萎縮症 › …」


@lru_cache(maxsize=8192)
def _norm(text):
    """A name or a search word as compared: clerk-typed カナ (normalise_kana) and no letter case."""
    return normalise_kana(text).casefold()


def query_words(query):
    """The query's words: NFKC (全角 digits, letters and spaces count as 半角), at most MAX_QUERY characters."""
    text = unicodedata.normalize("NFKC", (query or "")[:MAX_QUERY])
    return [w for w in _SEPARATORS.split(text) if w]


class _Row:
    """One disease as searched: `number` the 告示番号 (難病) or the 小慢コード without underscores (小慢); `names` its
    name and, for a 病型, its disease's; `label()` what the picker shows; `group` the key of its <optgroup>."""
    __slots__ = ("id", "number", "names", "code", "group")

    def __init__(self, id, number, names, code, group):
        self.id, self.number, self.names, self.code, self.group = id, number, names, code, group

    def label(self):
        # 「6 パーキンソン病」, a 病型 「3 脊髄性筋萎縮症 › 脊髄性筋萎縮症 I 型」, 小慢 「01_01_001 前駆B細胞…」
        return f"{self.code} {SUBTYPE_SEPARATOR.join(reversed(self.names))}"

    def matches(self, word, kind):
        if kind == SHOMAN and _CODE.match(word):
            return self.number.startswith(word.replace("_", ""))
        if kind == SHOMAN and "-" in word and _SUBGROUP.match(word):
            wanted = "-".join(str(int(part)) for part in word.rstrip("-").split("-"))
            return f"{self.group}-".startswith(f"{wanted}-")
        if kind != SHOMAN and _DIGITS.match(word):
            return self.number.startswith(str(int(word)))
        wanted = _norm(word)
        return any(wanted in _norm(name) for name in self.names)


def _nanbyo_rows(on):
    rows = db.session.execute(
        select(NanbyoDisease.id, NanbyoDisease.notification_no, NanbyoDisease.is_subtype, NanbyoDisease.name_ja,
               NanbyoDisease.category_id)
        .where(documents.in_force(on))
        .order_by(NanbyoDisease.notification_no, NanbyoDisease.is_subtype, NanbyoDisease.id)).all()
    diseases = {}
    for id, number, is_subtype, name, category_id in rows:
        if not is_subtype:
            diseases.setdefault(number, name)
    for id, number, is_subtype, name, category_id in rows:
        disease = diseases.get(number) if is_subtype else None
        yield _Row(id, str(number), (name, disease) if disease else (name,), number, category_id)


def _nanbyo_groups():
    categories = dict(db.session.execute(select(NanbyoCategory.id, NanbyoCategory.name_ja)).all())
    return lambda category_id: categories.get(category_id, "その他")


def _shoman_rows():
    rows = db.session.execute(
        select(ShomanDisease.id, ShomanDisease.shoman_code, ShomanDisease.group_id, ShomanDisease.name_ja)
        .order_by(ShomanDisease.shoman_code, ShomanDisease.id)).all()
    for id, code, group_id, name in rows:
        yield _Row(id, code.replace("_", ""), (name,), code, group_id)


def _shoman_groups():
    names = dict(db.session.execute(select(ShomanGroup.group_id, ShomanGroup.name_ja)).all())

    def label(group_id):
        top = group_id.split("-")[0]
        return f"{top} {names.get(top, '')} › {group_id} {names.get(group_id, '')}"
    return label


def find_diseases(kind, query, page=1, on=None):
    """One page of the diseases of `kind` matching `query`: ([{"id", "text", "group"}], more). 難病: those in force
    on `on`, by default today in Japan (the 作成年月日 of a new document, as views.documents has it)."""
    words = query_words(query)
    rows = _shoman_rows() if kind == SHOMAN else _nanbyo_rows(on or today_jst())
    start = (page - 1) * PAGE_SIZE
    found, seen = [], 0
    for row in rows:
        if all(row.matches(w, kind) for w in words):
            if seen >= start:
                found.append(row)
            seen += 1
            if len(found) > PAGE_SIZE:
                break
    group = (_shoman_groups if kind == SHOMAN else _nanbyo_groups)() if found else None
    return [{"id": str(r.id), "text": r.label(), "group": group(r.group)} for r in found[:PAGE_SIZE]], \
        len(found) > PAGE_SIZE


class DiseaseSearchView(ProtectedBaseView):
    """Who may create a document may search the diseases (the masters are no secret, but the endpoint serves only
    the new-document form). No menu entry."""
    area = "documents"
    permission = "create"

    def is_visible(self):
        return False

    @expose("/search")
    def search(self):
        kind = request.args.get("kind", "")
        if kind not in KIND_LABELS:
            abort(400)
        page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
        results, more = find_diseases(kind, request.args.get("q", ""), page)
        return jsonify({"results": results, "pagination": {"more": more}})


# Flask-Admin wants a default view (its menu link, the view's "/"); this view has one URL and no menu entry.
DiseaseSearchView._default_view = "search"
