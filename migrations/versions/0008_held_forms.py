"""user_session.end_reason and held_form: a form posted after the idle timeout survives the re-login

Revision ID: 7d3e4f5a6b82
Revises: 6c2d3e4f5a71
Create Date: 2026-11-25 20:00:00
"""
import sqlalchemy as sa
from alembic import op

import models._types

revision = '7d3e4f5a6b82'
down_revision = '6c2d3e4f5a71'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('end_reason', sa.String(length=16), nullable=True))
    op.create_table(
        'held_form',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('path', sa.String(length=300), nullable=False),
        sa.Column('cipher', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', models._types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_held_form_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_held_form')),
        sa.UniqueConstraint('user_id', 'path', name='uq_held_form_user_path'),
    )
    with op.batch_alter_table('held_form', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_form_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_held_form_expires_at'), ['expires_at'], unique=False)


def downgrade():
    op.drop_table('held_form')
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.drop_column('end_reason')
