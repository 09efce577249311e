"""Operation log: read, filter and export; never edit."""
from nanbyo.audit import ACTION_LABELS
from nanbyo.exports import JST
from nanbyo.roles import ROLE_LABELS
from views.base import ScopedModelView


class OperationLogView(ScopedModelView):
    area = "operation_log"
    column_list = ["seq", "created_at", "actor_login", "actor_role", "remote_addr", "action", "target_type",
                   "target_id", "result", "data"]
    column_export_list = column_list + ["prev_hash", "entry_hash"]
    column_details_list = column_export_list
    column_labels = {"seq": "番号", "created_at": "日時（JST）", "actor_login": "ログインID", "actor_role": "ロール",
                     "remote_addr": "接続元", "action": "操作", "target_type": "対象", "target_id": "対象ID",
                     "result": "結果", "data": "詳細", "prev_hash": "前エントリハッシュ", "entry_hash": "ハッシュ"}
    column_filters = ["action", "actor_login", "result", "target_type"]
    column_searchable_list = ["actor_login", "target_id"]
    column_default_sort = ("seq", True)
    column_formatters = {
        "created_at": lambda v, c, m, n: m.created_at.astimezone(JST).isoformat(timespec="seconds"),
        "action": lambda v, c, m, n: ACTION_LABELS.get(m.action, m.action),
        "actor_role": lambda v, c, m, n: ROLE_LABELS.get(m.actor_role, m.actor_role),
    }
    simple_list_pager = True  # no COUNT over a table that only grows
