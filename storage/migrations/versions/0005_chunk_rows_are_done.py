"""a chunk's row exists only once it is done: its status column, only ever 'done', is dropped

Revision ID: 0005_chunk_rows_are_done
Revises: 0004_hands
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_chunk_rows_are_done'
down_revision = '0004_hands'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chunks') as batch:
        batch.drop_column('status')


def downgrade() -> None:
    # Every row was written done: that is what the column said of all of them.
    with op.batch_alter_table('chunks') as batch:
        batch.add_column(
            sa.Column(
                'status',
                sa.Enum('queued', 'done', 'failed', name='chunkstatus', native_enum=False, length=16),
                server_default='done',
                nullable=False,
            )
        )
