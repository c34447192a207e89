"""a camera's own long-lie time

Revision ID: 0003_camera_long_lie
Revises: 0002_event_cursors
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = '0003_camera_long_lie'
down_revision = '0002_event_cursors'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cameras') as batch:
        batch.add_column(sa.Column('long_lie_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cameras') as batch:
        batch.drop_column('long_lie_s')
