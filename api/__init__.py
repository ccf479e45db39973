"""The SRNet HTTP API (FastAPI). Never imports torch: it validates specs with `srcore.jobspec`
(spec, task registry) and hands jobs to workers by Celery task name."""
