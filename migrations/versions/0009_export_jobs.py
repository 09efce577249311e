"""export_job: list exports too large for the request, written by the task queue

Revision ID: a9e0f1a2b3c4
Revises: 7d3e4f5a6b82
Create Date: 2026-11-25 22:00:00
"""
import sqlalchemy as sa
from alembic import op

import models._types

revision = 'a9e0f1a2b3c4'
down_revision = '7d3e4f5a6b82'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'export_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=False),
        sa.Column('query_args', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('rows_written', sa.Integer(), nullable=False),
        sa.Column('total_rows', sa.Integer(), nullable=True),
        sa.Column('file_name', sa.String(length=64), nullable=True),
        sa.Column('error', sa.String(length=200), nullable=False),
        sa.Column('created_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('expires_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['user_account.id'], name=op.f('fk_export_job_owner_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_export_job')),
    )
    with op.batch_alter_table('export_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_job_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_job_expires_at'), ['expires_at'], unique=False)


def downgrade():
    op.drop_table('export_job')
