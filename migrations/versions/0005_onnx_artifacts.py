"""onnx artifacts: the artifacts' kind check admits 'onnx'

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-10

A job with export.onnx stores each unit's ONNX folder as an artifact of kind onnx (issue 21).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "kind IN ('mask', 'checkpoint', 'report', 'plot')"
_AFTER = "kind IN ('mask', 'checkpoint', 'report', 'plot', 'onnx')"


def _kind_check_name() -> str:
    """The kind check's name as the database has it (0001 named it through the naming
    convention: ck_artifacts_ck_artifacts_kind)."""
    checks = sa.inspect(op.get_bind()).get_check_constraints("artifacts")
    names = [c["name"] for c in checks if c["name"] and c["name"].endswith("_kind")]
    if len(names) != 1:
        raise RuntimeError(f"artifacts: expected one kind check constraint, found {names}")
    return names[0]


def _replace_check(condition: str) -> None:
    name = _kind_check_name()
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_constraint(op.f(name), type_="check")
        batch.create_check_constraint(op.f(name), condition)


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM artifacts WHERE kind = 'onnx'")
    _replace_check(_BEFORE)
