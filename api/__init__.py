"""The SRNet HTTP API (FastAPI). Never imports torch: it validates specs with `srcore.spec`,
checks them with `srcore.tasks` and hands jobs to workers by Celery task name."""
