"""document: (author_id | created_by_id, kind | status, id) for a doctor's filtered list

Revision ID: f4d5e6f7a8b9
Revises: e3c4d5e6f7a8
Create Date: 2026-12-06 05:30:00

A doctor's list gathers the doctor's own rows (author OR drafter) and sorts them. Filtered by 種類 or 状態, PostgreSQL
ANDed those few rows with every entry of ix_document_kind / ix_document_status_id (tens of thousands at 1M
documents, ~15 ms); with these it reads only the doctor's rows of that kind or status. On PostgreSQL the indexes are
built CONCURRENTLY (outside the migration's transaction): writes to document go on meanwhile.
"""
from alembic import op

revision = 'f4d5e6f7a8b9'
down_revision = 'e3c4d5e6f7a8'
branch_labels = None
depends_on = None

INDEXES = [(f'ix_document_{who}_{what}_id', [who, what, 'id'])
           for who in ('author_id', 'created_by_id') for what in ('kind', 'status')]


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            for name, columns in INDEXES:
                op.create_index(name, 'document', columns, postgresql_concurrently=True, if_not_exists=True)
        return
    for name, columns in INDEXES:
        op.create_index(name, 'document', columns)


def downgrade():
    for name, _columns in INDEXES:
        op.drop_index(name, table_name='document')
