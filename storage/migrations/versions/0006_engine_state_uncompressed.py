"""the analytics engine's state is stored uncompressed on PostgreSQL (storage EXTERNAL)

A live camera rewrites its session's state (30-90 KB of pickle) with every chunk, several times
a second; PostgreSQL compressed it with pglz on each write, 0.6 ms of its CPU for a 32 KB state
(to 19 KB) against 0.2 ms stored as it is (docs/benchmarks.md, "the live worker's bookkeeping
per frame"). Only the column's storage changes: no row, and nothing on SQLite.

Revision ID: 0006_engine_state_uncompressed
Revises: 0005_chunk_rows_are_done
Create Date: 2026-12-08
"""

from alembic import op


revision = '0006_engine_state_uncompressed'
down_revision = '0005_chunk_rows_are_done'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE analytics_state ALTER COLUMN engine SET STORAGE EXTERNAL')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE analytics_state ALTER COLUMN engine SET STORAGE EXTENDED')
