"""document: paper forms (指定医 and 医療機関 as data, no author account); scan_file.document_id; contractor imports

Revision ID: c7a8b9c0d1e2
Revises: b6f7a8b9c0d1
Create Date: 2026-12-06 07:50:00

A paper form digitized by the operator's contractor (or entered by the operator) names a 指定医 and a 医療機関 that
need not have accounts here: document.author_id and institution_id may be empty, and the paper's 指定医番号, 氏名,
医療機関コード and 名称 are kept in paper_* columns. A scan knows the document made of it; an XML import job
without an institution is the operator's import of contractor data.
"""
import sqlalchemy as sa
from alembic import op

revision = 'c7a8b9c0d1e2'
down_revision = 'b6f7a8b9c0d1'
branch_labels = None
depends_on = None

PAPER_COLUMNS = [('paper_doctor_number', 20), ('paper_doctor_name', 200), ('paper_institution_code', 10),
                 ('paper_institution_name', 200)]


def upgrade():
    with op.batch_alter_table('document') as batch:
        batch.alter_column('author_id', existing_type=sa.Integer(), nullable=True)
        batch.alter_column('institution_id', existing_type=sa.Integer(), nullable=True)
        for name, length in PAPER_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=False, server_default=''))
    with op.batch_alter_table('scan_file') as batch:
        batch.add_column(sa.Column('document_id', sa.Integer(), nullable=True))
        batch.create_index('ix_scan_file_document_id', ['document_id'])
        batch.create_foreign_key('fk_scan_file_document_id_document', 'document', ['document_id'], ['id'],
                                 ondelete='SET NULL')
    with op.batch_alter_table('xml_import_job') as batch:
        batch.alter_column('institution_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    with op.batch_alter_table('xml_import_job') as batch:
        batch.alter_column('institution_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('scan_file') as batch:
        batch.drop_constraint('fk_scan_file_document_id_document', type_='foreignkey')
        batch.drop_index('ix_scan_file_document_id')
        batch.drop_column('document_id')
    with op.batch_alter_table('document') as batch:
        for name, _length in PAPER_COLUMNS:
            batch.drop_column(name)
        batch.alter_column('institution_id', existing_type=sa.Integer(), nullable=False)
        batch.alter_column('author_id', existing_type=sa.Integer(), nullable=False)
