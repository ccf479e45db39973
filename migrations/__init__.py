"""Alembic migrations (a package so that installed copies ship with `srnet`)."""
