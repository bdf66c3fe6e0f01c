"""help center search counts: the two tables the baseline missed

help_search_days and help_search_misses (SQLite's m028) were taken for FTS5 shadow tables of
help_search when the baseline was written from the SQLite schema; tests/test_schema.py now tells
them apart.

Revision ID: 0004
Revises: 0003
Created: 2026-12-07 12:35:55.584016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('help_search_days',
    sa.Column('day', sa.Text(), nullable=False),
    sa.Column('language', sa.Text(), nullable=False),
    sa.Column('searches', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('misses', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('day', 'language')
    )
    op.create_table('help_search_misses',
    sa.Column('day', sa.Text(), nullable=False),
    sa.Column('language', sa.Text(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('count', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('day', 'language', 'query')
    )


def downgrade() -> None:
    op.drop_table('help_search_misses')
    op.drop_table('help_search_days')
