"""fair shares: jobs.dispatched_at and per-owner limits

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

The database decides which queued job is handed to the workers (persistence.dispatch): a job
is sent to the broker only once the dispatcher has set `dispatched_at`. Jobs already sent
before this revision count as dispatched (their message is on the broker, or they run). Owners
get nullable limits an admin sets (None: the service's settings).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("owners") as batch:
        batch.add_column(sa.Column("max_queued_jobs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_running_jobs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_studies", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE jobs SET dispatched_at = COALESCE(enqueued_at, started_at, updated_at) "
        "WHERE enqueued_at IS NOT NULL OR status NOT IN ('queued')"
    )
    op.create_index("ix_jobs_queue_status_dispatched", "jobs", ["queue", "status", "dispatched_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_queue_status_dispatched", table_name="jobs")
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("max_studies")
        batch.drop_column("max_running_jobs")
        batch.drop_column("max_queued_jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dispatched_at")
