"""hands per person: each pose row's left and right hand, and a camera's hands switch

Revision ID: 0004_hands
Revises: 0003_camera_long_lie
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_hands'
down_revision = '0003_camera_long_lie'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('poses') as batch:
        batch.add_column(sa.Column('left_hand', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('left_hand_score', sa.Float(), nullable=True))
        batch.add_column(sa.Column('right_hand', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('right_hand_score', sa.Float(), nullable=True))
    with op.batch_alter_table('cameras') as batch:
        batch.add_column(sa.Column('hands', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('cameras') as batch:
        batch.drop_column('hands')
    with op.batch_alter_table('poses') as batch:
        batch.drop_column('right_hand_score')
        batch.drop_column('right_hand')
        batch.drop_column('left_hand_score')
        batch.drop_column('left_hand')
