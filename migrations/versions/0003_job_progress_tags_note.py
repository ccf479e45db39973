"""jobs: whole-job progress (job_fraction, job_eta_s, phase), tags and a free-text note

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09

Progress across a job's stages weighed by their expected work (srcore.pipeline.progress) and
whether the running stage trains or evaluates; a lab's own tags (a JSON list of strings) and
note on a job. All nullable: jobs from before read as "unknown" / no tags / no note.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("job_fraction", sa.Float(), nullable=True))
        batch.add_column(sa.Column("job_eta_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("phase", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("tags", JSON, nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("note")
        batch.drop_column("tags")
        batch.drop_column("phase")
        batch.drop_column("job_eta_s")
        batch.drop_column("job_fraction")
