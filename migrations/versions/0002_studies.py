"""studies: the studies table; jobs get study_id (FK, indexed) and study_key

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

A study is a grid of ordinary jobs (srcore.jobspec.study.StudySpec); each child job names its
study and its StudyChild.key. Self-contained, like 0001.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("children", JSON, nullable=False),
        sa.Column("queue", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name="fk_studies_owner_id_owners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_studies_owner_idempotency_key"),
    )
    op.create_index("ix_studies_owner_created", "studies", ["owner_id", "created_at", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("study_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("study_key", sa.Text(), nullable=True))
        batch.create_foreign_key(
            "fk_jobs_study_id_studies", "studies", ["study_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_jobs_study_id", ["study_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_study_id")
        batch.drop_constraint("fk_jobs_study_id_studies", type_="foreignkey")
        batch.drop_column("study_key")
        batch.drop_column("study_id")
    op.drop_index("ix_studies_owner_created", table_name="studies")
    op.drop_table("studies")
