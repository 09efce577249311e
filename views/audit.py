"""Operation log: read, filter and export; never edit.

A person reads labels (ログイン失敗, ユーザ, 成功, 理由: パスワード誤り), never the stored codes; the export carries both:
the labels, and the codes in columns of their own (操作コード, 結果コード, …) for machines.
"""
import json
from datetime import date, datetime

from flask import current_app, g, has_request_context, request
from flask_admin.contrib.sqla.filters import (BaseSQLAFilter, DateTimeBetweenFilter, DateTimeGreaterFilter,
                                              DateTimeSmallerFilter, FilterEqual, FilterNotEqual)
from markupsafe import Markup
from sqlalchemy import false, select, tuple_

from models.accounts import Membership, User
from models.audit import OperationLog
from models.institutions import Institution, Municipality
from nanbyo import audit_chain
from nanbyo.audit import (ACTION_LABELS, DATA_KEY_LABELS, FIELD_LABELS, FLAG_KEYS, RESULT_LABELS, TARGET_LABELS,
                          VALUE_LABELS)
from nanbyo.exports import JST, ExportColumn, coded, jst_text
from nanbyo.roles import ROLE_LABELS
from views.base import ScopedModelView

LIST_ITEMS_SHOWN = 20  # a long list of IDs in the 詳細 column is cut here on screen (the export has them all)


def _jst(value):
    return [_jst(v) for v in value] if isinstance(value, list) else value.replace(tzinfo=JST)


def jst_filter(base):
    """Dates typed on screen are Japan time; the column is timezone-aware."""
    return type(f"JST{base.__name__}", (base,), {"clean": lambda self, value: _jst(base.clean(self, value))})


# --- the 詳細 column: the entry's data as 「項目: 値」 ------------------------------------------------------------------

def _screen_field_labels() -> dict[str, dict[str, str]]:
    """Column labels of the admin screens, per table: a changed field is named as its screen names it."""
    if "_nanbyo_field_labels" not in g:
        labels = {}
        for admin in current_app.extensions.get("admin", []):
            for view in admin._views:
                table = getattr(getattr(view, "model", None), "__tablename__", None)
                if table and getattr(view, "column_labels", None):
                    labels.setdefault(table, {}).update(
                        {k: str(v) for k, v in view.column_labels.items() if isinstance(k, str) and "." not in k})
        g._nanbyo_field_labels = labels
    return g._nanbyo_field_labels


def field_label(target_type: str, name) -> str:
    return _screen_field_labels().get(target_type, {}).get(name) or FIELD_LABELS.get(name) or str(name)


def _iso_to_jst(text: str) -> str:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M") if value.tzinfo else text


def _value_text(key, value, target_type="", limit=None) -> str:
    if value is None:
        return "なし"
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, (list, tuple)):
        if not value:
            return "なし"
        shown = value if limit is None else value[:limit]
        texts = [field_label(target_type, v) if key == "fields" else _value_text(key, v, target_type)
                 for v in shown]
        rest = len(value) - len(shown)
        return "、".join(texts) + (f" ほか{rest}件" if rest else "")
    if isinstance(value, dict):
        return "、".join(f"{k}（{_value_text(k, v, target_type, limit)}）" for k, v in value.items()) or "なし"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value)
    if key == "expires_at":
        return _iso_to_jst(text)
    return VALUE_LABELS.get(key, {}).get(text, text)


def data_items(data, target_type="", limit=None) -> list[str]:
    """An entry's data as readable 「項目: 値」 lines: known keys and codes labelled, unknown keys as key: value."""
    if not data:
        return []
    if not isinstance(data, dict):
        return [_value_text("", data, target_type, limit)]
    items = []
    for key, value in data.items():
        label = DATA_KEY_LABELS.get(key, key)
        if key in FLAG_KEYS and value is True:
            items.append(label)  # a mark: 初回ログイン, 本人, 責任者による
        else:
            items.append(f"{label}: {_value_text(key, value, target_type, limit)}")
    return items


def data_text(data, target_type="", separator=" ／ ", limit=None) -> str:
    return separator.join(data_items(data, target_type, limit))


def _data_cell(view, context, model, name):
    return Markup("<br>").join(data_items(model.data, model.target_type, LIST_ITEMS_SHOWN))


def _options(labels):
    return [(code, label) for code, label in labels.items()]


def _coded_filters(column, name, labels):
    """Choose by label; the URL carries the code."""
    return [FilterEqual(column, name, options=_options(labels)), FilterNotEqual(column, name, options=_options(labels))]


class ActorFilter(BaseSQLAFilter):
    """Entries whose actor belongs, now, to what the typed code names: `actors` maps the code to a SELECT of user
    ids. A user who has left keeps their old entries out of it; search those by ログインID."""

    def __init__(self, name, actors):
        super().__init__(OperationLog.actor_id, name)
        self.actors = actors

    def apply(self, query, value, alias=None):
        return query.filter(OperationLog.actor_id.in_(self.actors(value.strip())))

    def operation(self):
        return "コード"


def institution_users(code):
    """医療機関: its users by any membership (主たる勤務先 or 兼務, 責任者 included)."""
    return select(Membership.user_id).join(Institution, Institution.id == Membership.institution_id).where(
        Institution.code == code)


def municipality_staff(code):
    """自治体: its own staff (自治体 管理者・一般ユーザ); the doctors it issued IDs to belong to their institutions."""
    return select(User.id).join(Municipality, Municipality.id == User.municipality_id).where(Municipality.code == code)


class OperationLogView(ScopedModelView):
    area = "operation_log"
    column_list = ["seq", "created_at", "actor_login", "actor_role", "remote_addr", "action", "target_type",
                   "target_id", "result", "data"]
    # Labels first, as on screen; then the stored codes and the raw data, for machines.
    column_export_list = column_list + ["created_at_iso", "action_code", "actor_role_code", "target_type_code",
                                        "result_code", "data_json", "prev_hash", "entry_hash"]
    column_details_list = column_list + ["prev_hash", "entry_hash"]
    column_labels = {"seq": "番号", "created_at": "日時（JST）", "actor_login": "ログインID", "actor_role": "ロール",
                     "remote_addr": "接続元", "action": "操作", "target_type": "対象", "target_id": "対象ID",
                     "result": "結果", "data": "詳細", "prev_hash": "前エントリハッシュ", "entry_hash": "ハッシュ",
                     "created_at_iso": "日時（ISO 8601）", "action_code": "操作コード", "actor_role_code": "ロールコード", "target_type_code": "対象コード",
                     "result_code": "結果コード", "data_json": "詳細（JSON）"}
    list_template = "audit/list.html"
    column_filters = (_coded_filters(OperationLog.action, "操作", ACTION_LABELS)
                      + [OperationLog.actor_login]
                      + _coded_filters(OperationLog.actor_role, "ロール", ROLE_LABELS)
                      + [ActorFilter("医療機関（医療機関コード）", institution_users),
                         ActorFilter("自治体（自治体コード）", municipality_staff)]
                      + _coded_filters(OperationLog.result, "結果", RESULT_LABELS)
                      + _coded_filters(OperationLog.target_type, "対象", TARGET_LABELS)
                      + [FilterEqual(OperationLog.remote_addr, "接続元")]
                      + [jst_filter(f)(OperationLog.created_at, "日時（JST）")
                         for f in (DateTimeGreaterFilter, DateTimeSmallerFilter, DateTimeBetweenFilter)])
    column_searchable_list = ["actor_login", "target_id"]
    # Newest first by 日時; id, which follows the chain's order, breaks ties (views/base.py get_list). Each filter has
    # an index in this order (models/audit.py), so a filtered page or a 日時 range is an index walk; sorting by any
    # other column would scan the whole log, so only 番号 and 日時 sort.
    column_default_sort = ("created_at", True)
    column_sortable_list = ["seq", "created_at"]
    column_formatters = {
        "created_at": lambda v, c, m, n: jst_text(m.created_at, seconds=True),
        "action": lambda v, c, m, n: ACTION_LABELS.get(m.action, m.action),
        "actor_role": lambda v, c, m, n: ROLE_LABELS.get(m.actor_role, m.actor_role),
        "target_type": lambda v, c, m, n: TARGET_LABELS.get(m.target_type, m.target_type),
        "result": lambda v, c, m, n: RESULT_LABELS.get(m.result, m.result),
        "data": _data_cell,
    }
    simple_list_pager = True  # no COUNT over a table that only grows
    export_columns = {
        "created_at": ExportColumn("created_at", format=lambda created: jst_text(created, seconds=True)),
        "action": ExportColumn("action", format=coded(ACTION_LABELS)),
        "actor_role": ExportColumn("actor_role", format=coded(ROLE_LABELS)),
        "target_type": ExportColumn("target_type", format=coded(TARGET_LABELS)),
        "result": ExportColumn("result", format=coded(RESULT_LABELS)),
        "data": ExportColumn("data", "target_type", format=data_text),
        "created_at_iso": ExportColumn("created_at"),  # exports.cell_text: ISO 8601 in JST, with the offset
        "data_json": ExportColumn("data", format=lambda data: json.dumps(data or {}, ensure_ascii=False,
                                                                         sort_keys=True)),
        **{f"{name}_code": ExportColumn(name) for name in ("action", "actor_role", "target_type", "result")},
    }

    # --- paging by keyset: 次へ carries the last row's sort keys (`after`), so a page deep in the log costs what the
    # first costs (no OFFSET, no COUNT) -----------------------------------------------------------------------------
    AFTER = "after"

    def _after_values(self, keys):
        """The `after` argument as values of the list's order keys, or None (absent or malformed: the first page)."""
        parts = request.args.get(self.AFTER, "").split(",") if has_request_context() else []
        if len(parts) != len(keys):
            return None
        try:
            return [datetime.fromisoformat(part) if expression.key == "created_at" else int(part)
                    for part, (expression, _desc) in zip(parts, keys)]
        except ValueError:
            return None

    def page_ids_query(self, sort_column, sort_desc, search, filters, scope=None):
        count_query, query = super().page_ids_query(sort_column, sort_desc, search, filters, scope)
        keys = self._order_keys(sort_column, sort_desc)
        after = self._after_values(keys)
        if after is not None:  # every key has the same direction (views/base.py _tiebreak)
            row, cursor = tuple_(*(expression for expression, _desc in keys)), tuple_(*after)
            query = query.filter(row < cursor if keys[-1][1] else row > cursor)
        return count_query, query

    def _get_list_extra_args(self):
        """The cursor is this page's alone: another sort, filter, search or page size starts from the newest."""
        args = super()._get_list_extra_args()
        args.extra_args.pop(self.AFTER, None)
        return args

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        if self._after_values(self._order_keys(sort_column, sort_desc)) is not None:
            page = 0  # the cursor says where the page starts
        return super().get_list(page, sort_column, sort_desc, search, filters, execute, page_size)

    def _next_url(self, rows, page_size):
        """The URL of the page after `rows` (None when this page is the last)."""
        if len(rows) < page_size:
            return None
        args = self._get_list_extra_args()
        sort = self._get_column_by_idx(args.sort)
        last = rows[-1]
        values = [getattr(last, expression.key) for expression, _desc in
                  self._order_keys(sort[0] if sort else None, args.sort_desc)]
        params = request.args.to_dict(flat=False)
        params.pop("page", None)
        params[self.AFTER] = ",".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in values)
        return self.get_url(".index_view", **params)

    MAX_ACTOR_BRANCHES = 50  # a 医療機関 or 自治体 with more users than this: their entries gathered, then sorted

    def page_query(self, sort_column, sort_desc, search, filters, rows=None):
        """With a 医療機関 or 自治体 filter, the log is not walked in list order hoping to meet those users' entries:
        each user's first `rows` entries are read along (actor_id, created_at, id) and merged (a page costs the same
        however busy they are); with no `rows`, or very many users, their entries are gathered and sorted."""
        count_query, query = super().page_query(sort_column, sort_desc, search, filters, rows)
        chosen = [(self._filters[index], value) for index, _name, value in filters or ()
                  if isinstance(self._filters[index], ActorFilter)]
        if not chosen:
            return count_query, query
        actors = set.intersection(*(set(self.session.execute(flt.actors(value.strip())).scalars())
                                    for flt, value in chosen))
        if len(actors) <= 1:  # one user's entries are one walk of the index; nobody's are none
            return count_query, query.filter(OperationLog.actor_id == actors.pop() if actors else false())
        if not rows or len(actors) > self.MAX_ACTOR_BRANCHES:
            return count_query, self._sorted_outside(query, sort_column, sort_desc)
        branches = [query.filter(OperationLog.actor_id == actor).limit(rows) for actor in sorted(actors)]
        return count_query, self._sorted_outside(branches[0], sort_column, sort_desc, union=branches[1:])

    def render(self, template, **kwargs):
        if template == self.list_template:
            args = request.args.to_dict(flat=False)
            first = {k: v for k, v in args.items() if k not in ("page", self.AFTER)}
            kwargs.update(chain=audit_chain.chain_state(), jst_text=jst_text,
                          next_url=self._next_url(kwargs.get("data") or [], kwargs.get("page_size") or self.page_size),
                          first_url=self.get_url(".index_view", **first), paged=first != args)
        return super().render(template, **kwargs)
