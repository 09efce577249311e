"""export_job.progress_at: a running job whose writer fell silent is given up as stalled

Revision ID: c1a2b3c4d5e6
Revises: b0f1a2b3c4d5
Create Date: 2026-12-06 02:30:00
"""
import sqlalchemy as sa
from alembic import op

import models._types

revision = 'c1a2b3c4d5e6'
down_revision = 'b0f1a2b3c4d5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('export_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress_at', models._types.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('export_job', schema=None) as batch_op:
        batch_op.drop_column('progress_at')
