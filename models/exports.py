"""Export jobs: a list export too large to stream in the request, written to a file by the task queue."""
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models._types import UTCDateTime, one_of, utcnow
from nanbyo.extensions import db

JOB_WAITING, JOB_RUNNING, JOB_DONE, JOB_FAILED = "waiting", "running", "done", "failed"
JOB_STATUS_LABELS = {JOB_WAITING: "待機中", JOB_RUNNING: "作成中", JOB_DONE: "完了", JOB_FAILED: "失敗"}


class ExportJob(db.Model):
    """One requested export: whose, of which list (view endpoint and the list's query string), in which format; its
    progress, and its file in the file store ("exports") once done. Row and file go when `expires_at` has passed."""
    __tablename__ = "export_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The jobs of a deleted account go with it (the periodic clean-up removes their files).
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    # The list's query string as [name, value] pairs (filters, search, sort), rebuilt for the owner when it runs.
    query_args: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=JOB_WAITING)
    rows_written: Mapped[int] = mapped_column(default=0)
    total_rows: Mapped[int | None] = mapped_column()
    # A random name inside the exports folder; never a path a user typed.
    file_name: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The writer's last sign of life (each progress update): a running job silent for too long has stopped.
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    owner = relationship("User")

    _check_status = validates("status")(one_of(JOB_STATUS_LABELS, "出力ファイルの状態が正しくありません。"))

    @property
    def status_label(self):
        return JOB_STATUS_LABELS.get(self.status, self.status)

    def __str__(self):
        return f"出力ファイル No.{self.id}"
