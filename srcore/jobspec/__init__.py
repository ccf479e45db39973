"""The torch-free face of srcore: what the API, persistence, the worker's main process and
studies may import without pulling in torch (a test checks both rules).

- `spec`: `JobSpec`, `load_spec`, `spec_hash`
- `task_registry`: built-in tasks, `resolve_task`
- `spec_paths`: the local paths a spec names, checked against `DATA_ROOTS`
- `names`: the registered loss, metric and pruning-method names (the spec's literals)
- `callbacks`: `Callbacks`, `Progress`, `Cancelled`
- `results`: `CurveId`, `DensePoint`, `ResultUnit`, `SearchResult`
- `layout`: `OutputLayout`, the one place that names a search's files
"""
