"""Accounts: users, their memberships in 医療機関, and server-side login sessions."""
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models._types import UTCDateTime, one_of, trigram_index, utcnow
from nanbyo.extensions import db
from nanbyo.roles import (DOCTOR_KIND_LABELS, DESIGNATED_DOCTOR, MEMBERSHIP_KIND_LABELS, ROLE_LABELS,
                          STATUS_ACTIVE, STATUS_LABELS)


class User(db.Model):
    __tablename__ = "user_account"
    __table_args__ = (
        # The users list's sorts (views/users.py; ログインID has its unique index), each with id last.
        Index("ix_user_account_name_id", "name", "id"),
        Index("ix_user_account_role_id", "role", "id"),
        Index("ix_user_account_status_id", "status", "id"),
        Index("ix_user_account_last_login_at_id", "last_login_at", "id"),
        # The search box (views: column_searchable_list).
        trigram_index("user_account", "login_id"),
        trigram_index("user_account", "name"),
        trigram_index("user_account", "name_kana"),
        trigram_index("user_account", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(20), default="")
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_ACTIVE)
    failed_logins: Mapped[int] = mapped_column(default=0)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Only a digest of the key file's secret: the file itself never stays on the server.
    key_digest: Mapped[str | None] = mapped_column(String(64))
    key_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # After a key re-issue: the hash of the one-time registration code printed on the notice, and its expiry.
    key_code_hash: Mapped[str | None] = mapped_column(String(255))
    key_code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Municipality roles: the 自治体 the account belongs to.
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"), index=True)
    # Doctors and institution staff: the 自治体 that issued the ID (only it edits or deletes the ID).
    issuing_municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"), index=True)

    municipality = relationship("Municipality", foreign_keys=[municipality_id])
    issuing_municipality = relationship("Municipality", foreign_keys=[issuing_municipality_id])
    import_batch = relationship("ImportBatch", back_populates="users")
    memberships = relationship("Membership", back_populates="user", cascade="all, delete-orphan",
                               order_by="Membership.id")
    # A doctor may hold several designations (難病指定医 and 小慢指定医 are separate).
    designations = relationship("Designation", back_populates="user", cascade="all, delete-orphan",
                                order_by="Designation.id")

    _check_role = validates("role")(one_of(ROLE_LABELS, "ロールが正しくありません。"))
    _check_status = validates("status")(one_of(STATUS_LABELS, "状態が正しくありません。"))

    # Flask-Login protocol
    @property
    def is_authenticated(self):
        return True

    @property
    def is_active(self):
        return self.status == STATUS_ACTIVE

    @property
    def is_anonymous(self):
        return False

    def get_id(self):
        return str(self.id)

    @property
    def is_doctor(self):
        return self.role == DESIGNATED_DOCTOR

    @property
    def designation_text(self):
        return "、".join(str(d) for d in self.designations)

    @property
    def doctor_kinds(self):
        return {d.kind for d in self.designations}

    @property
    def needs_setup(self):
        """First login (or after a reset): password, e-mail and key file must be set before anything else."""
        return self.must_change_password or not self.email or not self.key_digest

    @property
    def primary_membership(self):
        return next((m for m in self.memberships if m.kind == "primary"), None)

    @property
    def managed_institution_ids(self):
        return [m.institution_id for m in self.memberships if m.is_manager]

    @property
    def is_manager(self):
        return bool(self.managed_institution_ids)

    def __str__(self):
        return f"{self.name}（{self.login_id}）"


class Membership(db.Model):
    """A user's place in a 医療機関: primary (主たる勤務先) or concurrent (兼務), and the 責任者 flag."""
    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("user_id", "institution_id", name="uq_membership_user_institution"),
        # At most one 責任者 per institution and one primary institution per user.
        Index("uq_membership_one_manager", "institution_id", unique=True,
              sqlite_where=text("is_manager"), postgresql_where=text("is_manager")),
        Index("uq_membership_one_primary", "user_id", unique=True,
              sqlite_where=text("kind = 'primary'"), postgresql_where=text("kind = 'primary'")),
        # The memberships list's sorts (views/users.py), each with id last.
        Index("ix_membership_kind_id", "kind", "id"),
        Index("ix_membership_is_manager_id", "is_manager", "id"),
        Index("ix_membership_department_id", "department", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="primary")
    is_manager: Mapped[bool] = mapped_column(Boolean, default=False)
    department: Mapped[str] = mapped_column(String(100), default="")

    user = relationship("User", back_populates="memberships")
    institution = relationship("Institution", back_populates="memberships")

    _check_kind = validates("kind")(one_of(MEMBERSHIP_KIND_LABELS, "所属の種別が正しくありません。"))

    def __str__(self):
        return f"{self.institution} / {MEMBERSHIP_KIND_LABELS.get(self.kind, self.kind)}"


class Designation(db.Model):
    """指定医の指定: kind (難病指定医 / 協力難病指定医 / 小慢指定医), 指定医番号 and 指定期間."""
    __tablename__ = "designation"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_designation_user_kind"),
                      Index("ix_designation_kind_number", "kind", "number"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    number: Mapped[str] = mapped_column(String(20), default="")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)

    user = relationship("User", back_populates="designations")

    _check_kind = validates("kind")(one_of(DOCTOR_KIND_LABELS, "指定医区分が正しくありません。"))

    def __str__(self):
        return f"{DOCTOR_KIND_LABELS.get(self.kind, self.kind)} {self.number}"


BATCH_RUNNING, BATCH_DONE, BATCH_FAILED = "running", "done", "failed"
BATCH_STATUS_LABELS = {BATCH_RUNNING: "取込中", BATCH_DONE: "完了", BATCH_FAILED: "失敗"}


class ImportBatch(db.Model):
    """One imported 医療機関ユーザデータファイル: who imported what, for which institution, with what result.

    A file's confirmation is recorded as 取込中 before its unit of work and becomes 完了 with it: a worker killed in
    the middle leaves the batch 取込中, and nanbyo.userfile.fail_stalled makes it 失敗 (its institution, when the
    file would have registered it, never came to be: the code alone is kept)."""
    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"), index=True)
    institution_code: Mapped[str] = mapped_column(String(10), default="", server_default="")
    status: Mapped[str] = mapped_column(String(10), default=BATCH_DONE, server_default=BATCH_DONE)
    filename: Mapped[str] = mapped_column(String(200), default="")
    file_sha256: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(10))  # 難病 or 小慢
    created_by_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_count: Mapped[int] = mapped_column(default=0)
    reported_count: Mapped[int] = mapped_column(default=0)
    # "file" (a 医療機関ユーザデータファイル) or "form" (one doctor, issued individually), and the 指定 application
    # (the municipality's reference) an individual issuance answers.
    source: Mapped[str] = mapped_column(String(8), default="file", server_default="file")
    application_ref: Mapped[str] = mapped_column(String(40), default="", server_default="")

    municipality = relationship("Municipality")
    institution = relationship("Institution")
    users = relationship("User", back_populates="import_batch", order_by="User.id")


class UserSession(db.Model):
    """A login session kept on the server, so logout, idle timeout and disabling end it for real."""
    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it ended: "logout", "expired" (idle timeout: the next page says so and keeps a posted form) or "revoked".
    end_reason: Mapped[str | None] = mapped_column(String(16))
    remote_addr: Mapped[str] = mapped_column(String(64), default="")

    user = relationship("User")


class HeldForm(db.Model):
    """A form posted after its session timed out: kept encrypted for its user until they log in again and the page
    shows it to them (then it is gone), or until it expires. It may hold patient data: never in plaintext."""
    __tablename__ = "held_form"
    __table_args__ = (UniqueConstraint("user_id", "path", name="uq_held_form_user_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(300))
    cipher: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
