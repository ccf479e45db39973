"""The lab's web pages: submit, jobs, job (live), studies, study, compare. Served by the API; see
endpoints."""

from api.web.endpoints import install_web, router

__all__ = ["install_web", "router"]
