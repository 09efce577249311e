"""operation_log: indexes of the role, address and actor filters; audit_checkpoint; deletes only of archived entries

Revision ID: e9c0d1e2f3a4
Revises: d8b9c0d1e2f3
Create Date: 2026-12-06 08:30:00

The log list is newest first by 日時 (created_at, id); each new filter gets an index in that order, as the existing
ones have (ロール, 接続元; 医療機関 and 自治体 select actors, so (actor_id, created_at, id) replaces the plain actor_id
index). Built CONCURRENTLY on PostgreSQL.

audit_checkpoint holds the signed points of the chain (nanbyo.audit_chain). The append-only triggers now let a DELETE
through only for entries at or before the newest archive checkpoint: `nanbyo audit-archive` writes the checkpoint,
then deletes what it archived; nothing else can delete, and UPDATE and TRUNCATE stay refused.
"""
import sqlalchemy as sa
from alembic import op

from models._types import UTCDateTime

revision = 'e9c0d1e2f3a4'
down_revision = 'd8b9c0d1e2f3'
branch_labels = None
depends_on = None

INDEXES = [('ix_operation_log_actor_role_created_at_id', ['actor_role', 'created_at', 'id']),
           ('ix_operation_log_remote_addr_created_at_id', ['remote_addr', 'created_at', 'id']),
           ('ix_operation_log_actor_id_created_at_id', ['actor_id', 'created_at', 'id'])]
OLD_ACTOR_INDEX = 'ix_operation_log_actor_id'
MESSAGE = "operation_log is append-only"
ARCHIVED = "(SELECT coalesce(max(seq), 0) FROM audit_checkpoint WHERE kind = 'archive')"


def upgrade():
    op.create_table(
        'audit_checkpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('entry_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('result', sa.String(length=16), nullable=False),
        sa.Column('problem', sa.Text(), nullable=False),
        sa.Column('entries', sa.Integer(), nullable=False),
        sa.Column('archive_file', sa.String(length=255), nullable=False),
        sa.Column('archive_sha256', sa.String(length=64), nullable=False),
        sa.Column('signature', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoint')),
    )
    op.create_index('ix_audit_checkpoint_kind_seq', 'audit_checkpoint', ['kind', 'seq'])
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if postgresql:
        op.execute(f"""
            CREATE OR REPLACE FUNCTION operation_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' AND OLD.seq <= {ARCHIVED} THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION '{MESSAGE}';
            END $$""")
        with op.get_context().autocommit_block():
            for name, columns in INDEXES:
                op.create_index(name, 'operation_log', columns, postgresql_concurrently=True, if_not_exists=True)
            op.drop_index(OLD_ACTOR_INDEX, table_name='operation_log', postgresql_concurrently=True,
                          if_exists=True)
        return
    op.execute("DROP TRIGGER IF EXISTS operation_log_no_delete")
    op.execute(f"""CREATE TRIGGER operation_log_no_delete BEFORE DELETE ON operation_log WHEN OLD.seq > {ARCHIVED}
                   BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""")
    for name, columns in INDEXES:
        op.create_index(name, 'operation_log', columns)
    op.drop_index(OLD_ACTOR_INDEX, table_name='operation_log')


def downgrade():
    op.create_index(OLD_ACTOR_INDEX, 'operation_log', ['actor_id'])
    for name, _columns in INDEXES:
        op.drop_index(name, table_name='operation_log')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""
            CREATE OR REPLACE FUNCTION operation_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$""")
    else:
        op.execute("DROP TRIGGER IF EXISTS operation_log_no_delete")
        op.execute(f"""CREATE TRIGGER operation_log_no_delete BEFORE DELETE ON operation_log
                       BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""")
    op.drop_index('ix_audit_checkpoint_kind_seq', table_name='audit_checkpoint')
    op.drop_table('audit_checkpoint')
