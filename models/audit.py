"""Operation log: one append-only, hash-chained entry model with structured data (Indico-style)."""
from datetime import datetime

from sqlalchemy import JSON, Index, String, Text, event
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
        Index("ix_operation_log_actor_role_created_at_id", "actor_role", "created_at", "id"),
        Index("ix_operation_log_remote_addr_created_at_id", "remote_addr", "created_at", "id"),
        # 医療機関 and 自治体 filters: the entries of a few actors, each actor's in list order.
        Index("ix_operation_log_actor_id_created_at_id", "actor_id", "created_at", "id"),
        # The search box (views: column_searchable_list).
        trigram_index("operation_log", "actor_login"),
        trigram_index("operation_log", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column()  # no FK: the log outlives deleted users
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


class AuditCheckpoint(db.Model):
    """A signed point of the chain (nanbyo.audit_chain): how far audit-verify got and what it found ("verify"), or
    where an archive cut the chain ("archive": the last archived entry, from which the table's chain continues).

    The signature (Ed25519, key in instance/) covers every other column: a checkpoint written or changed by someone
    with database access alone is reported, so it cannot hide tampering by skipping the entries before it."""
    __tablename__ = "audit_checkpoint"
    __table_args__ = (Index("ix_audit_checkpoint_kind_seq", "kind", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "verify" | "archive"
    seq: Mapped[int] = mapped_column()  # verified up to / archived up to (0: nothing)
    entry_hash: Mapped[str] = mapped_column(String(64))  # that entry's hash (GENESIS for seq 0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    result: Mapped[str] = mapped_column(String(16))  # "intact" | "broken"
    problem: Mapped[str] = mapped_column(Text, default="")  # the first problem found, for the screen
    entries: Mapped[int] = mapped_column(default=0)  # entries read (verify) or archived (archive)
    archive_file: Mapped[str] = mapped_column(String(255), default="")
    archive_sha256: Mapped[str] = mapped_column(String(64), default="")
    signature: Mapped[str] = mapped_column(String(128))
