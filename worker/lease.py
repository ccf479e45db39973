"""A running job's lease: a thread sends heartbeats, and every answer from the database says
whether the job is still ours and whether a cancel was requested."""

from __future__ import annotations

import logging
import threading
import uuid

from sqlalchemy.exc import SQLAlchemyError

from persistence.db import Database
from persistence.repositories import JobRepository, Lease

log = logging.getLogger(__name__)


class JobLease:
    """What the worker knows about its claim on one job.

    The state only moves forward: owned → cancel_requested → lost (lost wins). `should_stop()`
    is what srcore asks between two steps; it reads memory only, the heartbeat thread and the
    progress writes keep it current.
    """

    def __init__(
        self,
        database: Database,
        job_id: uuid.UUID,
        worker_id: str,
        *,
        interval_s: float,
        shutdown: threading.Event | None = None,
    ):
        self.database = database
        self.job_id = job_id
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.shutdown = shutdown or threading.Event()
        self._state = Lease.owned
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- state -------------------------------------------------------------------------------

    @property
    def state(self) -> Lease:
        return self._state

    @property
    def lost(self) -> bool:
        return self._state is Lease.lost

    @property
    def cancel_requested(self) -> bool:
        return self._state is Lease.cancel_requested

    @property
    def interrupted(self) -> bool:
        """The worker is shutting down (the job goes back to the queue and resumes later)."""
        return self.shutdown.is_set()

    def observe(self, answer: Lease) -> None:
        with self._lock:
            if self._state is Lease.lost:
                return
            if answer is Lease.lost or self._state is Lease.owned:
                if answer is not self._state:
                    log.info("job %s: lease %s -> %s", self.job_id, self._state, answer)
                self._state = answer

    def should_stop(self) -> bool:
        return self._state is not Lease.owned or self.shutdown.is_set()

    # --- heartbeat thread ---------------------------------------------------------------------

    def beat(self) -> Lease | None:
        """One heartbeat; None when the database did not answer (the next beat tries again;
        a job silent for HEARTBEAT_STALE_S is recovered by the reconciler)."""
        try:
            with self.database.session() as session:
                answer = JobRepository(session).heartbeat(self.job_id, self.worker_id)
                session.commit()
        except SQLAlchemyError as exc:
            log.warning("job %s: heartbeat failed: %s", self.job_id, exc)
            return None
        self.observe(answer)
        return answer

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.beat() is Lease.lost:
                return

    def start(self) -> JobLease:
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.job_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval_s * 2))
            self._thread = None
