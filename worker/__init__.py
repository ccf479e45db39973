"""Celery workers: claim a job in the database, run the srcore search with callbacks that write
progress, metrics and events, store the artifacts. Also the reconciler and `srnet serve`."""
