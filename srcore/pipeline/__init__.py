"""The job pipeline: bias model → dense fine-tune / teacher → search → retrain → export."""

from srcore.pipeline.run import SearchResult, clean_work, run_search, spec_hash

__all__ = ["SearchResult", "clean_work", "run_search", "spec_hash"]
