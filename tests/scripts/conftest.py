from tests.helpers.tiny_model_dir import tiny_model  # noqa: F401  (the shared fixture)
