"""Operation log: one append-only, hash-chained entry model with structured data (Indico-style)."""
from datetime import datetime

from sqlalchemy import JSON, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from models._types import UTCDateTime, trigram_index, utcnow
from nanbyo.extensions import db


class OperationLog(db.Model):
    __tablename__ = "operation_log"
    __table_args__ = (
        # The log list (views/audit.py) is newest first by 日時 (id breaks ties: ids follow the chain's order); each
        # filter has an index in that order, so a filtered page and a 日時 range are index walks.
        Index("ix_operation_log_created_at_id", "created_at", "id"),
        Index("ix_operation_log_action_created_at_id", "action", "created_at", "id"),
        Index("ix_operation_log_actor_login_created_at_id", "actor_login", "created_at", "id"),
        Index("ix_operation_log_target_type_created_at_id", "target_type", "created_at", "id"),
        Index("ix_operation_log_result_created_at_id", "result", "created_at", "id"),
        # The search box (views: column_searchable_list).
        trigram_index("operation_log", "actor_login"),
        trigram_index("operation_log", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(index=True)  # no FK: the log outlives deleted users
    actor_login: Mapped[str] = mapped_column(String(64), default="")
    actor_role: Mapped[str] = mapped_column(String(32), default="")
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    result: Mapped[str] = mapped_column(String(16), default="success")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


@event.listens_for(OperationLog, "before_update")
@event.listens_for(OperationLog, "before_delete")
def _append_only(mapper, connection, target):
    raise RuntimeError("operation_log is append-only")
