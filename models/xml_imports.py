"""XML import jobs: an upload of hospital-system XML too large to import in the request, imported by the task queue."""
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models._types import UTCDateTime, one_of, utcnow
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING, JOB_WAITING
from nanbyo.extensions import db

IMPORT_STATUS_LABELS = {JOB_WAITING: "待機中", JOB_RUNNING: "取込中", JOB_DONE: "完了", JOB_FAILED: "失敗"}


class XmlImportJob(db.Model):
    """One upload: whose, into which institution, how (all or nothing); its progress, and its report once done.

    The uploaded files wait in the file store ("imports") encrypted with the data keys (random names kept in `files`)
    and are deleted when the job ends; the report (per file and document, as on the import screen) is kept encrypted in
    `report_cipher` until `expires_at`."""
    __tablename__ = "xml_import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    # None: the operator's import of its contractor's data from paper forms (nanbyo.xmlio.contractor).
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    all_or_nothing: Mapped[bool] = mapped_column(Boolean, default=False)
    # [[name the user gave, stored name, size in bytes]]
    files: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=JOB_WAITING)
    files_total: Mapped[int | None] = mapped_column()
    files_done: Mapped[int] = mapped_column(default=0)
    documents_done: Mapped[int] = mapped_column(default=0)
    # {result: number of outcomes} (nanbyo.xmlio.importer.RESULT_LABELS)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    report_cipher: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    owner = relationship("User")
    institution = relationship("Institution")

    _check_status = validates("status")(one_of(IMPORT_STATUS_LABELS, "取込の状態が正しくありません。"))

    @property
    def status_label(self):
        return IMPORT_STATUS_LABELS.get(self.status, self.status)

    def __str__(self):
        return f"XML取込 No.{self.id}"
