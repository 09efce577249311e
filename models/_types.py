from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Index
from sqlalchemy.types import TypeDecorator


JST = ZoneInfo("Asia/Tokyo")


def utcnow():
    return datetime.now(timezone.utc)


def today_jst() -> date:
    """Today in Japan, whatever the server's time zone: 作成年月日, 受付 and every 'not in the future' check."""
    return datetime.now(JST).date()


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on both databases (SQLite drops tzinfo; we store UTC and put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def one_of(labels, message, nullable=False):
    """A @validates function for a coded column: the value must be a key of `labels` (or None when nullable)."""
    def check(self, key, value):
        if not (value is None and nullable) and value not in labels:
            raise ValueError(message)
        return value
    return check


def trigram_index(table, column):
    """PostgreSQL: a trigram index serving the list's search box (Flask-Admin's ILIKE '%term%') on `column`; none on
    SQLite, whose lists are small. Needs the pg_trgm extension (migration 0012 creates it)."""
    return Index(f"ix_{table}_{column}_trgm", column, postgresql_using="gin",
                 postgresql_ops={column: "gin_trgm_ops"}).ddl_if(dialect="postgresql")
