"""自治体 and 医療機関."""
from sqlalchemy import Boolean, ForeignKey, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from nanbyo.codes import institution_code_error, municipality_code_error
from models._types import one_of, trigram_index
from nanbyo.extensions import db
from nanbyo.roles import MUNICIPALITY_KIND_LABELS


class Municipality(db.Model):
    __tablename__ = "municipality"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    prefecture_no: Mapped[str] = mapped_column(String(2))
    kind: Mapped[str] = mapped_column(String(20), default="other")

    institutions = relationship("Institution", back_populates="municipality", lazy="dynamic",
                                foreign_keys="Institution.municipality_id")

    @validates("code")
    def _check_code(self, key, value):
        error = municipality_code_error(value)
        if error:
            raise ValueError(error)
        return value

    _check_kind = validates("kind")(one_of(MUNICIPALITY_KIND_LABELS, "自治体の種別が正しくありません。"))

    def __str__(self):
        return f"{self.name}（{self.code}）"


class Institution(db.Model):
    __tablename__ = "institution"
    __table_args__ = (
        # The institutions list's sorts (views/organizations.py; コード has its unique index), each with id last.
        Index("ix_institution_name_id", "name", "id"),
        Index("ix_institution_address_id", "address", "id"),
        Index("ix_institution_active_id", "active", "id"),
        # The search box (views: column_searchable_list).
        trigram_index("institution", "code"),
        trigram_index("institution", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    # The 実施主体 the institution answers to, per family: for 難病 the 都道府県 or 指定都市, for 小慢 also a 中核市 or
    # 児童相談所設置市 when the institution is in one (nanbyo.jurisdiction).
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    shoman_municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    # A closed institution is disabled, never deleted: documents and memberships keep referring to it.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    municipality = relationship("Municipality", back_populates="institutions", foreign_keys=[municipality_id])
    shoman_municipality = relationship("Municipality", foreign_keys=[shoman_municipality_id])
    # The database refuses deleting an institution with memberships; the ORM must not delete them first.
    memberships = relationship("Membership", back_populates="institution", lazy="dynamic", passive_deletes="all")

    @validates("code")
    def _check_code(self, key, value):
        error = institution_code_error(value)
        if error:
            raise ValueError(error)
        return value

    def __str__(self):
        return f"{self.name}（{self.code}）"
