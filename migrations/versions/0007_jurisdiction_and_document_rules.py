"""jurisdiction per family, form versions, the explanation, individual ID issuance

Revision ID: 6c2d3e4f5a71
Revises: 6a0c1d2e3f40
Create Date: 2026-11-25 18:00:00

- institution.shoman_municipality_id: the 小慢 実施主体 (a 中核市 or 児童相談所設置市 where the institution is in one);
  institution.municipality_id stays the 難病 実施主体 (都道府県 or 指定都市). Existing rows: the same for both.
- document.form_version: the version of the form definition the document was written with (existing: 1).
- document.explanation / explained_by_id / explained_at: the DB-registration explanation, the patient's answer, who
  recorded it and when.
- import_batch.source / application_ref: a batch from a file or from the individual issuance form, and the 指定
  application it answers.
"""
import sqlalchemy as sa
from alembic import op

import models._types

revision = '6c2d3e4f5a71'
down_revision = '6a0c1d2e3f40'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('institution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shoman_municipality_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_institution_shoman_municipality_id'), ['shoman_municipality_id'])
        batch_op.create_foreign_key(batch_op.f('fk_institution_shoman_municipality_id_municipality'), 'municipality',
                                    ['shoman_municipality_id'], ['id'])
    op.execute("UPDATE institution SET shoman_municipality_id = municipality_id")
    with op.batch_alter_table('institution', schema=None) as batch_op:
        batch_op.alter_column('shoman_municipality_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.add_column(sa.Column('form_version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('explanation', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('explained_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('explained_at', models._types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_document_explained_by_id_user_account'), 'user_account',
                                    ['explained_by_id'], ['id'])
    # Documents written before: the explanation date was their record of it.
    op.execute("UPDATE document SET explanation = 'agreed' WHERE explained_on IS NOT NULL")
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=8), nullable=False, server_default='file'))
        batch_op.add_column(sa.Column('application_ref', sa.String(length=40), nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.drop_column('application_ref')
        batch_op.drop_column('source')
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_document_explained_by_id_user_account'), type_='foreignkey')
        batch_op.drop_column('explained_at')
        batch_op.drop_column('explained_by_id')
        batch_op.drop_column('explanation')
        batch_op.drop_column('form_version')
    with op.batch_alter_table('institution', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_institution_shoman_municipality_id_municipality'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_institution_shoman_municipality_id'))
        batch_op.drop_column('shoman_municipality_id')
