"""document: ix_document_statistics, (patient_key) INCLUDE the columns statistics group and filter by

Revision ID: fa0d1e2f3a4b
Revises: e9c0d1e2f3a4
Create Date: 2026-12-06 11:30:00

A statistics table of the whole database numbers each document among its patient's documents of the same group, in
patient order (nanbyo.stats.counts). This index gives that order and every column the count reads, so the database
reads it alone (an index-only scan) instead of the document table, and tells a patient's documents apart as they
pass instead of hashing a million (group, patient) pairs. PostgreSQL only (SQLite has no INCLUDE); built
CONCURRENTLY, so documents are written meanwhile.
"""
from alembic import op

revision = 'fa0d1e2f3a4b'
down_revision = 'e9c0d1e2f3a4'
branch_labels = None
depends_on = None

INCLUDED = ['kind', 'nanbyo_disease_id', 'shoman_disease_id', 'municipality_id', 'institution_id',
            'paper_institution_code', 'patient_sex', 'patient_age', 'application_kind', 'status', 'review_result',
            'written_on', 'research_consent']


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    with op.get_context().autocommit_block():
        op.create_index('ix_document_statistics', 'document', ['patient_key'], postgresql_include=INCLUDED,
                        postgresql_concurrently=True, if_not_exists=True)


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_document_statistics', table_name='document')
