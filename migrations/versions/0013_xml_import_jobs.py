"""xml_import_job: uploads of hospital-system XML imported by the task queue, with progress and report

Revision ID: e3c4d5e6f7a8
Revises: d2b3c4d5e6f7
Create Date: 2026-12-06 05:00:00
"""
import sqlalchemy as sa
from alembic import op

import models._types

revision = 'e3c4d5e6f7a8'
down_revision = 'd2b3c4d5e6f7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'xml_import_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('all_or_nothing', sa.Boolean(), nullable=False),
        sa.Column('files', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('files_total', sa.Integer(), nullable=True),
        sa.Column('files_done', sa.Integer(), nullable=False),
        sa.Column('documents_done', sa.Integer(), nullable=False),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.Column('report_cipher', sa.LargeBinary(), nullable=True),
        sa.Column('error', sa.String(length=200), nullable=False),
        sa.Column('created_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('progress_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('expires_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'], name=op.f('fk_xml_import_job_institution_id_institution')),
        sa.ForeignKeyConstraint(['owner_id'], ['user_account.id'], name=op.f('fk_xml_import_job_owner_id_user_account'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_xml_import_job')),
    )
    with op.batch_alter_table('xml_import_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xml_import_job_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_xml_import_job_owner_id'), ['owner_id'], unique=False)


def downgrade():
    with op.batch_alter_table('xml_import_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xml_import_job_owner_id'))
        batch_op.drop_index(batch_op.f('ix_xml_import_job_expires_at'))
    op.drop_table('xml_import_job')
