"""Documents (小慢 医療意見書 / 難病 臨床調査個人票) and their per-field correction history."""
import uuid
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models._types import UTCDateTime, one_of, utcnow
from nanbyo.document_codes import (APPLICATION_KIND_LABELS, DRAFT, KIND_LABELS, KIND_SHORT_LABELS,
                                   REVIEW_RESULT_LABELS, STATUS_LABELS)
from nanbyo.extensions import db


# The columns statistics group and filter by (nanbyo.stats.counts), carried by ix_document_statistics.
STATISTICS_COLUMNS = ("kind", "nanbyo_disease_id", "shoman_disease_id", "municipality_id", "institution_id",
                      "paper_institution_code", "patient_sex", "patient_age", "application_kind", "status",
                      "review_result", "written_on", "research_consent")


class Document(db.Model):
    __tablename__ = "document"
    __table_args__ = (
        # The documents list (views/documents.py) is ordered by 作成年月日 and No. (newest first by default), by No.
        # or by 状態, always with No. last; each order has an index per scope, so any page of it is an index walk.
        # A municipality sees three statuses of its own documents: status comes last, so that the walk checks it
        # in the index. Operator: the whole table.
        Index("ix_document_written_on_id", "written_on", "id"),
        Index("ix_document_status_id", "status", "id"),
        Index("ix_document_municipality_written_on_id", "municipality_id", "written_on", "id", "status"),
        Index("ix_document_municipality_id_status", "municipality_id", "id", "status"),
        Index("ix_document_municipality_status_id", "municipality_id", "status", "id"),
        # Doctors, drafters and 責任者: their own rows (few: gathered through these, then sorted; see
        # access.gathers_rows). The 種類 and 状態 filters have their own, so that a doctor's filtered list does not
        # AND its few rows with the whole table's entries of one kind or status.
        Index("ix_document_institution_id_id", "institution_id", "id"),
        Index("ix_document_author_id_id", "author_id", "id"),
        Index("ix_document_created_by_id_id", "created_by_id", "id"),
        # A 責任者's list: each branch (the institutions', their own as author, as drafter) walks one of these in
        # list order (views/base.py page_query).
        Index("ix_document_institution_id_written_on_id", "institution_id", "written_on", "id"),
        Index("ix_document_institution_id_status_id", "institution_id", "status", "id"),
        Index("ix_document_author_id_written_on_id", "author_id", "written_on", "id"),
        Index("ix_document_created_by_id_written_on_id", "created_by_id", "written_on", "id"),
        Index("ix_document_author_id_kind_id", "author_id", "kind", "id"),
        Index("ix_document_created_by_id_kind_id", "created_by_id", "kind", "id"),
        Index("ix_document_author_id_status_id", "author_id", "status", "id"),
        Index("ix_document_created_by_id_status_id", "created_by_id", "status", "id"),
        # Statistics (nanbyo.stats.counts) read every column they group or filter by from this index alone, in
        # patient order: a million documents' distinct patients counted as they pass. PostgreSQL's (SQLite has no
        # INCLUDE, and its deployments are small).
        Index("ix_document_statistics", "patient_key", postgresql_include=list(STATISTICS_COLUMNS)
              ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random, public identifier: the AAD of the encrypted block, printed on the PDF footer.
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: uuid.uuid4().hex)
    kind: Mapped[str] = mapped_column(String(10), index=True)
    application_kind: Mapped[str] = mapped_column(String(10))
    form_code: Mapped[str] = mapped_column(String(40))
    # The version of the form definition it was written with: old and new versions coexist (formdefs/README.md).
    form_version: Mapped[int] = mapped_column(default=1, server_default="1")
    nanbyo_disease_id: Mapped[int | None] = mapped_column(ForeignKey("nanbyo_disease.id"), index=True)
    shoman_disease_id: Mapped[int | None] = mapped_column(ForeignKey("shoman_disease.id"), index=True)

    # Patient block: AES-GCM ciphertext (nanbyo.crypto) and the blind index of カナ + 生年月日.
    patient_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    patient_index: Mapped[str] = mapped_column(String(64), index=True, default="")
    # What statistics count by, kept beside the block by documents.set_patient: 性別, the age on 作成年月日, and the
    # blind index as a number (distinct patients are counted over a million rows: integers hash several times faster).
    patient_sex: Mapped[str] = mapped_column(String(1), default="", server_default="")
    patient_age: Mapped[int | None] = mapped_column()
    patient_key: Mapped[int | None] = mapped_column(BigInteger)

    diagnosed_on: Mapped[date | None] = mapped_column(Date)
    written_on: Mapped[date | None] = mapped_column(Date)
    explained_on: Mapped[date | None] = mapped_column(Date)
    # 説明 (DB登録): the patient's answer (agreed / declined), who recorded it and when.
    explanation: Mapped[str | None] = mapped_column(String(16))
    explained_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    explained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    items: Mapped[dict] = mapped_column(JSON, default=dict)

    # A document written online (or imported from a hospital's system) has an author and an institution with
    # accounts here. A paper form (nanbyo.paper) has neither: its 指定医 and 医療機関 are what the paper says, in the
    # paper_* columns, since most paper comes from doctors without a login.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    paper_doctor_number: Mapped[str] = mapped_column(String(20), default="", server_default="")
    paper_doctor_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    paper_institution_code: Mapped[str] = mapped_column(String(10), default="", server_default="")
    paper_institution_name: Mapped[str] = mapped_column(String(200), default="", server_default="")

    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    access_key: Mapped[str | None] = mapped_column(String(8), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # 行政記載欄 and 審査結果 (the municipality's fields).
    reception_no: Mapped[str] = mapped_column(String(30), default="")
    recipient_no: Mapped[str] = mapped_column(String(30), default="")
    application_received_on: Mapped[date | None] = mapped_column(Date)
    research_consent: Mapped[bool | None] = mapped_column(Boolean)
    review_result: Mapped[str | None] = mapped_column(String(16))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    severity: Mapped[str] = mapped_column(String(100), default="")
    review_note: Mapped[str] = mapped_column(Text, default="")

    # Optimistic locking: every UPDATE says WHERE version_id = <the version read>.
    version_id: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version_id}

    nanbyo_disease = relationship("NanbyoDisease")
    shoman_disease = relationship("ShomanDisease")
    author = relationship("User", foreign_keys=[author_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    received_by = relationship("User", foreign_keys=[received_by_id])
    explained_by = relationship("User", foreign_keys=[explained_by_id])
    institution = relationship("Institution")
    municipality = relationship("Municipality")
    corrections = relationship("DocumentCorrection", back_populates="document", cascade="all, delete-orphan",
                               order_by="DocumentCorrection.id", lazy="dynamic")

    _check_kind = validates("kind")(one_of(KIND_LABELS, "書類の種類が正しくありません。"))
    _check_application_kind = validates("application_kind")(
        one_of(APPLICATION_KIND_LABELS, "申請区分が正しくありません。"))
    _check_status = validates("status")(one_of(STATUS_LABELS, "状態が正しくありません。"))
    _check_review_result = validates("review_result")(
        one_of(REVIEW_RESULT_LABELS, "審査結果が正しくありません。", nullable=True))

    @property
    def disease(self):
        return self.shoman_disease if self.kind == "shoman" else self.nanbyo_disease

    @property
    def is_paper(self) -> bool:
        return bool(self.paper_doctor_number)

    @property
    def doctor_name(self) -> str:
        return self.paper_doctor_name if self.is_paper else self.author.name

    @property
    def institution_name(self) -> str:
        return self.paper_institution_name if self.is_paper else self.institution.name

    @property
    def institution_code(self) -> str:
        return self.paper_institution_code if self.is_paper else self.institution.code

    @property
    def kind_label(self):
        return KIND_SHORT_LABELS.get(self.kind, self.kind)

    def __str__(self):
        return f"{self.kind_label} No.{self.id}"


class DocumentCorrection(db.Model):
    """One changed field of a document after it was finalized: who, when, and the old and new values.

    The values may be patient data, so they are stored encrypted like the patient block.
    """
    __tablename__ = "document_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(String(200), default="")
    values_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    user_role: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    document = relationship("Document", back_populates="corrections")
    user = relationship("User")
