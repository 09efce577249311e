"""nanbyo_disease.since: the date a 告示番号 became 指定難病

Revision ID: 6a0c1d2e3f40
Revises: 5b1e2f3c4d60
Create Date: 2026-11-25 17:00:00

New documents offer the diseases in force on their 作成年月日 (the masters' `since` column).
"""
import sqlalchemy as sa
from alembic import op

revision = '6a0c1d2e3f40'
down_revision = '5b1e2f3c4d60'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('nanbyo_disease', schema=None) as batch_op:
        batch_op.add_column(sa.Column('since', sa.Date(), nullable=True))


def downgrade():
    with op.batch_alter_table('nanbyo_disease', schema=None) as batch_op:
        batch_op.drop_column('since')
