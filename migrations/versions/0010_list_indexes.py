"""list indexes: every sort and filter of the lists walks an index, for every scope

Revision ID: b0f1a2b3c4d5
Revises: a9e0f1a2b3c4
Create Date: 2026-11-26 10:00:00

The lists (views/base.py ScopedModelView.get_list) first select a page's ids, ordered by the sort with the primary
key last. Each index below is (scope or filter column, sort columns, id), so that query is an index walk at any page
(EXPLAIN ANALYZE at 1,000,000 documents: bench/documents.py --keep). Single-column indexes that the new ones
start with are dropped.

- document: the list is newest 作成年月日 first by default (written_on, id); a municipality's walk also checks the
  status in the index (municipality_id, written_on, id, status) / (municipality_id, id, status).
- operation_log: newest 日時 first (created_at, id), and each filter column before it.
- user_account, membership, institution: each sortable column with id.

On PostgreSQL the indexes are built and the replaced ones dropped CONCURRENTLY: a deployment upgrading with a million
documents keeps taking writes meanwhile.
"""
from alembic import op

revision = 'b0f1a2b3c4d5'
down_revision = 'a9e0f1a2b3c4'
branch_labels = None
depends_on = None

# table -> (new indexes (name, columns), replaced single-column indexes (name, column))
CHANGES = {
    'document': (
        [('ix_document_written_on_id', ['written_on', 'id']),
         ('ix_document_status_id', ['status', 'id']),
         ('ix_document_municipality_written_on_id', ['municipality_id', 'written_on', 'id', 'status']),
         ('ix_document_municipality_id_status', ['municipality_id', 'id', 'status'])],
        [('ix_document_written_on', 'written_on'), ('ix_document_status', 'status')],
    ),
    'operation_log': (
        [('ix_operation_log_created_at_id', ['created_at', 'id']),
         ('ix_operation_log_action_created_at_id', ['action', 'created_at', 'id']),
         ('ix_operation_log_actor_login_created_at_id', ['actor_login', 'created_at', 'id']),
         ('ix_operation_log_target_type_created_at_id', ['target_type', 'created_at', 'id']),
         ('ix_operation_log_result_created_at_id', ['result', 'created_at', 'id'])],
        [('ix_operation_log_created_at', 'created_at'), ('ix_operation_log_action', 'action'),
         ('ix_operation_log_actor_login', 'actor_login'), ('ix_operation_log_target_type', 'target_type')],
    ),
    'user_account': (
        [('ix_user_account_name_id', ['name', 'id']),
         ('ix_user_account_role_id', ['role', 'id']),
         ('ix_user_account_status_id', ['status', 'id']),
         ('ix_user_account_last_login_at_id', ['last_login_at', 'id'])],
        [('ix_user_account_role', 'role')],
    ),
    'membership': (
        [('ix_membership_kind_id', ['kind', 'id']),
         ('ix_membership_is_manager_id', ['is_manager', 'id']),
         ('ix_membership_department_id', ['department', 'id'])],
        [],
    ),
    'institution': (
        [('ix_institution_name_id', ['name', 'id']),
         ('ix_institution_address_id', ['address', 'id']),
         ('ix_institution_active_id', ['active', 'id'])],
        [('ix_institution_name', 'name')],
    ),
}
# (municipality_id, id) of 0004: (municipality_id, id, status) starts with it.
REPLACED_COMPOSITE = ('document', 'ix_document_municipality_id_id', ['municipality_id', 'id'])


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        # CONCURRENTLY (outside the migration's transaction): writes to these tables go on while the indexes build.
        with op.get_context().autocommit_block():
            for table, (created, dropped) in CHANGES.items():
                for name, columns in created:
                    op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True)
                for name, _column in dropped:
                    op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
            table, name, _columns = REPLACED_COMPOSITE
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        return
    for table, (created, dropped) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in created:
                batch_op.create_index(name, columns, unique=False)
            for name, _column in dropped:
                batch_op.drop_index(name)
    table, name, _columns = REPLACED_COMPOSITE
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_index(name)


def downgrade():
    table, name, columns = REPLACED_COMPOSITE
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(name, columns, unique=False)
    for table, (created, dropped) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, column in dropped:
                batch_op.create_index(name, [column], unique=False)
            for name, _columns in created:
                batch_op.drop_index(name)
