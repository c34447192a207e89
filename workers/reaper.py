"""Handing back a dead worker process's work the moment its supervisor sees it die.

Without this, a worker killed mid-job (SIGKILL, the OOM killer, a crash in native code) is
noticed only through its lapsed heartbeat: its running job is retried after
`runtime.HEARTBEAT_TTL_S` plus another worker's maintenance pass, and a camera whose session
was on it goes unanalysed for that long (~33 s measured, bench/live_recovery.py). The
supervisor (`posepipe.worker_processes.WorkerProcesses`) learns of the death at once, so it
does here what those passes would do later, through RQ's own code:

- each job the dead worker was running is marked long expired in its queue's started
  registry and handed to RQ's abandoned-job cleanup, which runs the failure callback and
  retries it (or fails it when no retry is left) and frees its RateLimit slot;
- the worker's registration is removed, so the ingester's router stops placing sessions on it;
- camera jobs it had taken from its own live queue but not started are put back
  and then the jobs waiting on that queue, and those RateLimit holds for it, go to the shared
  live queue (`pipeline.routing.hand_over_dead_queue`);
- the scheduler locks its RQ scheduler (a fork of it, killed with it) held are freed, so the
  retries it would have queued are queued by a surviving worker's scheduler.

The heartbeat path stays as the fallback when the supervisor dies too (a lost machine).
This module does not find dead processes, nor restart them: the supervisor does.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from rq import Worker
from rq.exceptions import SchedulerNotFound
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker

from pipeline import keys, routing
from pipeline.rq_private import abandon_execution, release_scheduler_lock, scheduler_locks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reaped:
    worker_name: str
    abandoned_job_ids: tuple[str, ...]  # handed to RQ's abandoned-job cleanup
    restored_jobs: int  # taken from its live queue but never started: put back
    live_jobs_moved: int  # from the worker's own live queue to the shared one


def reap(redis: Redis, pid: int, hostname: str | None = None) -> list[Reaped]:
    """Hand back the work of the RQ workers that process `pid` on `hostname` (default: this
    machine) registered, and free the scheduler locks its RQ scheduler held. The caller knows
    the process is dead and has killed its process group; a clean exit left nothing."""
    hostname = hostname or socket.gethostname()
    mine = [w for w in Worker.all(connection=redis) if (w.pid, w.hostname) == (pid, hostname)]
    reaped = [_reap_worker(redis, worker) for worker in mine]
    release_dead_schedulers(redis, hostname)
    return reaped


def release_dead_schedulers(redis: Redis, hostname: str) -> list[str]:
    """Free the scheduler locks held by RQ schedulers of this machine whose process is gone;
    returns the queues freed.

    A worker forks RQ's scheduler, which takes the lock of each queue whose scheduled jobs it
    queues. Killed with its worker, it would keep the locks for a minute (their TTL), and the
    retries of a dead worker's file chunks (due after 1-15 s) would wait that long. Freed, a
    surviving worker takes them at its next maintenance pass."""
    freed = []
    for queue_name, holder in scheduler_locks(redis):
        try:
            scheduler = RQScheduler.fetch(holder, connection=redis)
        except SchedulerNotFound:
            continue  # its heartbeat lapsed: the lock expires with it
        if scheduler.hostname != hostname or _running(scheduler.pid):
            continue
        if release_scheduler_lock(redis, queue_name, holder):
            freed.append(queue_name)
    if freed:
        log.info("scheduler locks of a dead RQ scheduler freed: %s", freed)
    return freed


def _running(pid: int) -> bool:
    """Is this process running? A killed scheduler whose worker died first is reparented to
    init and may stay a zombie for a while (a container's init need not reap): not running."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _reap_worker(redis: Redis, worker: BaseWorker) -> Reaped:
    abandoned = [
        execution.job_id
        for execution in worker.get_current_executions(refresh=True)
        if abandon_execution(redis, execution.job_id, execution.composite_key)
    ]
    live_queues = [name for name in worker.queue_names() if keys.is_live_worker_queue(name)]
    worker.register_death()
    # Nothing can take jobs from these queues now; the retried camera job went back to its
    # origin, one of them.
    handed = [routing.hand_over_dead_queue(redis, name) for name in live_queues]
    restored, moved = sum(h[0] for h in handed), sum(h[1] for h in handed)
    if abandoned or restored or moved:
        log.warning(
            "worker %s (pid %s) died: %d running job(s) handed back %s, %d taken but not started put"
            " back, %d live job(s) moved to the shared queue",
            worker.name,
            worker.pid,
            len(abandoned),
            abandoned,
            restored,
            moved,
        )
    return Reaped(worker.name, tuple(abandoned), restored, moved)
