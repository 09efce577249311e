"""document: (institution_id, written_on | status, id), (author_id | created_by_id, written_on, id) for a 責任者's list

Revision ID: b6f7a8b9c0d1
Revises: a5e6f7a8b9c0
Create Date: 2026-12-06 05:55:00

A 責任者 reads the documents of the institutions they manage and their own elsewhere. The list takes each of those
branches' first rows along an index in list order and merges them (views/base.py page_query): the institutions'
branch needs the list's orders after institution_id, the author's and drafter's branches the default order
(written_on, id) after theirs (状態 has its own since 0014). Built CONCURRENTLY on PostgreSQL.
"""
from alembic import op

revision = 'b6f7a8b9c0d1'
down_revision = 'a5e6f7a8b9c0'
branch_labels = None
depends_on = None

INDEXES = [('ix_document_institution_id_written_on_id', ['institution_id', 'written_on', 'id']),
           ('ix_document_institution_id_status_id', ['institution_id', 'status', 'id']),
           ('ix_document_author_id_written_on_id', ['author_id', 'written_on', 'id']),
           ('ix_document_created_by_id_written_on_id', ['created_by_id', 'written_on', 'id'])]


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
