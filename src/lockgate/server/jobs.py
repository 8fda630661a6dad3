"""Jobs: operations that answer 202 at once and run in the server's worker pool.

Staging an upload and a pipeline run always run as jobs; any other operation does when
the request says ``Prefer: respond-async``. The request is authenticated, authorized and
its input checked first (bad input is still 400 at once); then the job is queued and the
answer is ``202`` with ``Location: /jobs/<id>``. ``GET /jobs/<id>`` gives its ``status``
(``queued``, ``running``, ``succeeded``, ``failed``) and, once it ended, ``http_status``
with the ``result`` or the JSON ``error`` the request would have been answered with.

The pool is bounded: ``workers`` threads, and at most ``queue`` jobs waiting (then 503
with ``Retry-After``). A job's record lives in ``.lockgate/server.db``
(:mod:`lockgate.server.idempotency`), for as long as answered keys are kept.

When the server stops (SIGTERM, Ctrl-C), jobs still queued are not started and are
recorded ``failed`` (code ``unavailable``: nothing was done), and the server waits for
running ones to end: an operation is never cut off halfway. A server killed outright
leaves its running jobs ``running`` in the file; each job names the process that runs
it (:class:`~lockgate.server.owners.Owner`), and once that process is gone the next
server process to start, or to be asked for the job, records it ``failed`` (the
operation itself was finished or undone by recovery, as after any crash: the audit log
says which). The jobs of a process that still runs (another worker of ``lockgate serve
--workers N``) are left alone, and any worker answers ``GET /jobs/<id>`` for them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lockgate.contracts.clock import now_iso
from lockgate.server.errors import ApiError
from lockgate.server.idempotency import Answer, ServerDb
from lockgate.server.owners import Owner

__all__ = ["Jobs"]

_STOPPED = {
    "queued": "the server stopped before this job started; nothing was done: send it again",
    "running": "the server stopped while this job ran; recovery finished or undid the "
    "operation: see the audit log",
}


class Jobs:
    """The server's job pool and the jobs' records."""

    def __init__(self, db: ServerDb, owner: Owner, *, workers: int, queue: int) -> None:
        self.db, self.owner, self.queue = db, owner, queue
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="lockgate-job")
        self._lock = threading.Lock()
        self._waiting: dict[str, Future[None]] = {}
        self._settle_previous()

    def _settle_previous(self, job_id: str | None = None) -> None:
        """Jobs (``job_id``, else every one) left queued or running by a server process
        that is gone: failed, saying why."""
        where = "status IN ('queued', 'running')" + (" AND id=?" if job_id else "")
        with self.db.cursor() as cur:
            rows = cur.execute(
                f"SELECT id, status, owner FROM jobs WHERE {where}", (job_id,) if job_id else ()
            ).fetchall()
            for found, status, owner in rows:
                if not self.owner.alive(owner):
                    self._finish(cur, found, ApiError("unavailable", _STOPPED[status]))

    def submit(self, scope: str, operation: str, run: Callable[[], Answer]) -> Answer:
        """Queue ``run``; the 202 answer naming the job."""
        with self._lock:
            if len(self._waiting) >= self.queue:
                raise ApiError(
                    "unavailable",
                    f"{len(self._waiting)} jobs are waiting already; retry in a minute",
                    {"Retry-After": "60"},
                )
            job_id = uuid.uuid4().hex
            with self.db.cursor() as cur:
                self.db.purge(cur)
                cur.execute(
                    "INSERT INTO jobs (id, scope, operation, status, created_at, at, owner) "
                    "VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                    (job_id, scope, operation, now_iso(), time.time(), self.owner.id),
                )
            self._waiting[job_id] = self._pool.submit(self._run, job_id, run)
        location = f"/jobs/{job_id}"
        return 202, {"job": job_id, "status": "queued", "location": location}

    def _run(self, job_id: str, run: Callable[[], Answer]) -> None:
        with self.db.cursor() as cur:
            cur.execute(
                "UPDATE jobs SET status='running', started_at=? WHERE id=?", (now_iso(), job_id)
            )
        try:
            outcome: Answer | ApiError = run()
        except ApiError as exc:
            outcome = exc
        except Exception as exc:  # a bug: the job says so instead of vanishing
            outcome = ApiError("internal", f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._waiting.pop(job_id, None)
        with self.db.cursor() as cur:
            self._finish(cur, job_id, outcome)

    @staticmethod
    def _finish(cur: Any, job_id: str, outcome: Answer | ApiError) -> None:
        if isinstance(outcome, ApiError):
            status, state, body = outcome.status, "failed", outcome.body()
        else:
            status, state, body = outcome[0], "succeeded", {"result": outcome[1]}
        cur.execute(
            "UPDATE jobs SET status=?, finished_at=?, http_status=?, body=?, at=? WHERE id=?",
            (state, now_iso(), status, json.dumps(body, default=str), time.time(), job_id),
        )

    def get(self, job_id: str, scope: str | None) -> dict[str, Any] | None:
        """Job ``job_id`` as ``GET /jobs/<id>`` shows it (None: no such job, or not
        ``scope``'s; ``scope`` None: anyone's)."""
        row = self._row(job_id)
        if row is not None and row[3] in _STOPPED and not self.owner.alive(row[9]):
            self._settle_previous(job_id)
            row = self._row(job_id)
        if row is None or (scope is not None and row[1] != scope):
            return None
        keys = ("job", "actor", "operation", "status", "created_at", "started_at",
                "finished_at", "http_status")  # fmt: skip
        job = dict(zip(keys, row[:8], strict=True))
        job.update(json.loads(row[8]) if row[8] else {})
        return job

    def _row(self, job_id: str) -> Any:
        rows = self.db.read(
            "SELECT id, scope, operation, status, created_at, started_at, finished_at, "
            "http_status, body, owner FROM jobs WHERE id=?",
            (job_id,),
        )
        return rows[0] if rows else None

    def shutdown(self) -> None:
        """Start no queued job (each recorded failed), wait for running ones to end."""
        with self._lock:
            queued = [i for i, f in self._waiting.items() if f.cancel()]
            for job_id in queued:
                self._waiting.pop(job_id)
        if queued:
            with self.db.cursor() as cur:
                for job_id in queued:
                    self._finish(cur, job_id, ApiError("unavailable", _STOPPED["queued"]))
        self._pool.shutdown(wait=True)
