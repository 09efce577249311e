"""Scans of paper 臨個票 / 意見書 a municipality received with applications, waiting for the operator's contractor."""
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models._types import UTCDateTime, one_of, utcnow
from nanbyo.extensions import db

SCAN_WAITING, SCAN_DOWNLOADED, SCAN_DIGITIZED, SCAN_RETURNED = "waiting", "downloaded", "digitized", "returned"
SCAN_STATUS_LABELS = {SCAN_WAITING: "未ダウンロード", SCAN_DOWNLOADED: "ダウンロード済", SCAN_DIGITIZED: "データ化済",
                      SCAN_RETURNED: "差戻し"}
SCAN_TYPES = {"pdf": "application/pdf", "tiff": "image/tiff", "jpeg": "image/jpeg", "png": "image/png"}


class ScanFile(db.Model):
    """One uploaded scan: its metadata here, its bytes encrypted with the data keys in the file store ("scans"), as
    `stored_name` (random); the name the municipality gave it is shown, never used as a path."""
    __tablename__ = "scan_file"
    __table_args__ = (Index("ix_scan_file_municipality_id_id", "municipality_id", "id"),
                      Index("ix_scan_file_status_id", "status", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(10))
    application_kind: Mapped[str] = mapped_column(String(10))
    reception_no: Mapped[str] = mapped_column(String(30))
    disease_code: Mapped[str] = mapped_column(String(20), default="")
    reference: Mapped[str] = mapped_column(String(100), default="")
    original_name: Mapped[str] = mapped_column(String(200))
    file_type: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=SCAN_WAITING)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_reason: Mapped[str] = mapped_column(String(500), default="")
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The document the contractor's data (or the operator's entry) made of it: データ化済.
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"), index=True)

    municipality = relationship("Municipality")
    uploaded_by = relationship("User")
    document = relationship("Document")

    _check_status = validates("status")(one_of(SCAN_STATUS_LABELS, "スキャンファイルの状態が正しくありません。"))
    _check_type = validates("file_type")(one_of(SCAN_TYPES, "スキャンファイルの形式が正しくありません。"))

    @property
    def status_label(self):
        return SCAN_STATUS_LABELS.get(self.status, self.status)

    def __str__(self):
        return f"スキャンファイル No.{self.id}"
