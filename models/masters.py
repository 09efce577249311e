"""Disease masters loaded from files (NANDO, CC-BY 4.0); never hard-coded."""
from datetime import date

from sqlalchemy import Boolean, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from nanbyo.extensions import db


class NanbyoCategory(db.Model):
    __tablename__ = "nanbyo_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    name_ja: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(200), default="")

    def __str__(self):
        return self.name_ja


class NanbyoDisease(db.Model):
    """指定難病 by 告示番号, and its subtypes (is_subtype)."""
    __tablename__ = "nanbyo_disease"
    id: Mapped[int] = mapped_column(primary_key=True)
    nando_id: Mapped[str] = mapped_column(String(20), unique=True)
    notification_no: Mapped[int] = mapped_column(index=True)
    is_subtype: Mapped[bool] = mapped_column(Boolean, default=False)
    category_id: Mapped[int | None] = mapped_column(index=True)
    name_ja: Mapped[str] = mapped_column(String(300), index=True)
    name_en: Mapped[str] = mapped_column(String(300), default="")
    # The date this 告示番号 became 指定難病: new documents offer the diseases in force on their 作成年月日.
    since: Mapped[date | None] = mapped_column(Date)

    def __str__(self):
        return f"{self.notification_no} {self.name_ja}"


class ShomanGroup(db.Model):
    """小児慢性特定疾病 疾患群 (`1`) and 大分類 (`1-1`)."""
    __tablename__ = "shoman_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[str] = mapped_column(String(10), unique=True)
    name_ja: Mapped[str] = mapped_column(String(300))
    name_en: Mapped[str] = mapped_column(String(300), default="")

    def __str__(self):
        return f"{self.group_id} {self.name_ja}"


class ShomanDisease(db.Model):
    __tablename__ = "shoman_disease"
    id: Mapped[int] = mapped_column(primary_key=True)
    nando_id: Mapped[str] = mapped_column(String(20), unique=True)
    shoman_code: Mapped[str] = mapped_column(String(20), index=True)
    group_id: Mapped[str] = mapped_column(String(10), index=True)
    notification_no: Mapped[int | None] = mapped_column()
    name_ja: Mapped[str] = mapped_column(String(300), index=True)
    name_en: Mapped[str] = mapped_column(String(300), default="")

    def __str__(self):
        return f"{self.shoman_code} {self.name_ja}"
