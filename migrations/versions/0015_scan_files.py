"""scan_file: scans of paper 臨個票 / 意見書 a municipality uploads for the operator's contractor

Revision ID: a5e6f7a8b9c0
Revises: f4d5e6f7a8b9
Create Date: 2026-12-06 05:40:00
"""
import sqlalchemy as sa
from alembic import op

import models._types

revision = 'a5e6f7a8b9c0'
down_revision = 'f4d5e6f7a8b9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'scan_file',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('municipality_id', sa.Integer(), nullable=False),
        sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
        sa.Column('uploaded_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('application_kind', sa.String(length=10), nullable=False),
        sa.Column('reception_no', sa.String(length=30), nullable=False),
        sa.Column('disease_code', sa.String(length=20), nullable=False),
        sa.Column('reference', sa.String(length=100), nullable=False),
        sa.Column('original_name', sa.String(length=200), nullable=False),
        sa.Column('file_type', sa.String(length=8), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('stored_name', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('downloaded_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('returned_reason', sa.String(length=500), nullable=False),
        sa.Column('returned_at', models._types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'],
                                name=op.f('fk_scan_file_municipality_id_municipality')),
        sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'],
                                name=op.f('fk_scan_file_uploaded_by_id_user_account'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_file')),
        sa.UniqueConstraint('stored_name', name=op.f('uq_scan_file_stored_name')),
    )
    with op.batch_alter_table('scan_file', schema=None) as batch_op:
        batch_op.create_index('ix_scan_file_municipality_id_id', ['municipality_id', 'id'], unique=False)
        batch_op.create_index('ix_scan_file_status_id', ['status', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('scan_file', schema=None) as batch_op:
        batch_op.drop_index('ix_scan_file_status_id')
        batch_op.drop_index('ix_scan_file_municipality_id_id')
    op.drop_table('scan_file')
