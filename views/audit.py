"""Operation log: read, filter and export; never edit."""
from flask_admin.contrib.sqla.filters import DateTimeBetweenFilter, DateTimeGreaterFilter, DateTimeSmallerFilter

from models.audit import OperationLog
from nanbyo.audit import ACTION_LABELS
from nanbyo.exports import JST
from nanbyo.roles import ROLE_LABELS
from views.base import ScopedModelView


def _jst(value):
    return [_jst(v) for v in value] if isinstance(value, list) else value.replace(tzinfo=JST)


def jst_filter(base):
    """Dates typed on screen are Japan time; the column is timezone-aware."""
    return type(f"JST{base.__name__}", (base,), {"clean": lambda self, value: _jst(base.clean(self, value))})


class OperationLogView(ScopedModelView):
    area = "operation_log"
    column_list = ["seq", "created_at", "actor_login", "actor_role", "remote_addr", "action", "target_type",
                   "target_id", "result", "data"]
    column_export_list = column_list + ["prev_hash", "entry_hash"]
    column_details_list = column_export_list
    column_labels = {"seq": "番号", "created_at": "日時（JST）", "actor_login": "ログインID", "actor_role": "ロール",
                     "remote_addr": "接続元", "action": "操作", "target_type": "対象", "target_id": "対象ID",
                     "result": "結果", "data": "詳細", "prev_hash": "前エントリハッシュ", "entry_hash": "ハッシュ"}
    column_filters = ["action", "actor_login", "result", "target_type"] + [
        jst_filter(f)(OperationLog.created_at, "日時（JST）")
        for f in (DateTimeGreaterFilter, DateTimeSmallerFilter, DateTimeBetweenFilter)]
    column_searchable_list = ["actor_login", "target_id"]
    column_default_sort = ("seq", True)
    column_formatters = {
        "created_at": lambda v, c, m, n: m.created_at.astimezone(JST).isoformat(timespec="seconds"),
        "action": lambda v, c, m, n: ACTION_LABELS.get(m.action, m.action),
        "actor_role": lambda v, c, m, n: ROLE_LABELS.get(m.actor_role, m.actor_role),
    }
    simple_list_pager = True  # no COUNT over a table that only grows
