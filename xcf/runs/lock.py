"""The run lock: one process at a time trains a run folder.

It keeps two processes (a notebook and a Slurm job, say) from training one folder, on a
local disk or on the network file systems of clusters (NFS, Lustre, GPFS), where
``flock`` may be local to each client or missing.  The lock is the file ``.lock`` of the
run folder, created atomically: the record (JSON: ``pid``, ``host``, ``pid_namespace``,
``pid_start``, ``started``, ``token``, ``command``) is written to a private file and
hard-linked to ``.lock``, which fails when ``.lock`` exists (the classic NFS-safe lock; on
a file system without hard links, ``os.open(O_CREAT | O_EXCL)``).  The holder's heartbeat
is the file's modification time, refreshed every :data:`HEARTBEAT_SECONDS` by a thread and
by the trainer before each commit, so the record is written once and never read torn.
The holder deletes the file when it ends, an exception included.  A lock is *stale*,
and the next process takes it over, when

- its holder ran on this host (same host name and pid namespace) and that process has
  died: at once (SIGKILL included; the pid's start time tells a reused pid apart);
- its holder ran on another host and its heartbeat is older than the staleness limit
  (:data:`STALE_SECONDS`, 10 min) by this host's clock, or a waiter has watched it not
  change for that long by its own clock.

A stale lock is removed under a guard folder (``.lock.break``, ``mkdir`` is atomic), and
only if it still holds the record judged stale, so two waiters never remove each other's
new lock.  :func:`acquire` waits for a live holder (``wait`` seconds; ``None``: as long
as it lives) with a progress line, or raises :class:`RunLockedError` naming the holder
and the fix.  Limits: clocks of the hosts must agree to within the staleness limit
(NTP gives milliseconds); a clock behind only delays a takeover, one ahead by more than
the limit can take over a live lock.  A holder that stalls for longer than the limit (a
suspended laptop, a hung file server) can lose its lock: its next heartbeat sees another
token, and the trainer stops with :class:`RunLockedError` before its next commit.  A
``.lock`` of an older xcf (a pid, held with ``flock``) counts as held while ``flock``
says so.

:class:`xcf.runs.folder.Run` holds its folder's lock through :meth:`~xcf.runs.folder.Run.lock`,
:meth:`~xcf.runs.folder.Run.wait_while_locked` and :meth:`~xcf.runs.folder.Run.heartbeat`; this module
knows nothing else of a run folder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from xcf.inputs import ArgumentError
from xcf.runs.provenance import command, now

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "POLL_SECONDS", "REPORT_SECONDS", "HOST",
           "RunLockedError", "LockHolder", "HeldLock", "read_lock", "acquire",
           "wait_until_free"]

# The holder of a run's lock refreshes its heartbeat this often (seconds).
HEARTBEAT_SECONDS = 30.0
# A lock of another host whose heartbeat is older than this (seconds) is stale.
STALE_SECONDS = 600.0
# How often a waiter looks at the lock again, and when it writes a progress line: every
# 30 s, then every tenth of the time waited so far (a line an hour after ten hours).
POLL_SECONDS = 0.5
REPORT_SECONDS = 30.0


class RunLockedError(RuntimeError):
    """Another live process is working on the same run folder (or this process lost its
    lock to another one); the message names the holder and the fix."""


HOST = socket.gethostname()
_LEGACY = re.compile(rb"\s*\d+\s*")  # the .lock of an older xcf: a pid, held with flock


def _pid_namespace() -> Optional[str]:
    """This process's pid namespace (Linux; ``None`` elsewhere): two containers that share
    a host name but not their pids must not judge each other's pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


_PID_NAMESPACE = _pid_namespace()


def _proc_stat(pid: int) -> Optional[list[str]]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first, start time
    at index 19), ``[]`` for no such process, ``None`` without /proc (not Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return [] if Path("/proc/self/stat").is_file() else None
    except OSError:
        return None


def _process_start(pid: int) -> Optional[int]:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _process_alive(pid: int, start: Optional[int]) -> bool:
    """Whether process ``pid`` of this machine lives (a zombie does not), and is the one
    that started at ``start`` (when known), not a later process given the same pid."""
    fields = _proc_stat(pid)
    if fields:
        return fields[0] not in ("Z", "X") and (start is None or int(fields[19]) == start)
    try:  # not Linux, or a pid that /proc does not show
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process, which /proc may hide (hidepid)
        return True
    return True


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run's lock, as its ``.lock`` file says (see the module docstring)."""

    pid: Optional[int]
    host: Optional[str]
    started: Optional[str]
    mtime: float            # the heartbeat: the file's modification time
    heartbeat_age: float    # seconds since it, by this host's clock
    checked: bool           # liveness checked on the process itself (its pid on this
                            # machine, or an older xcf's flock), not read from a heartbeat
    live: bool              # not stale
    this_process: bool
    raw: bytes              # the file's content, the record a waiter judges

    def describe(self) -> str:
        """``pid 123 on host node07 since 2026-01-31T12:00:00+0100``."""
        host = f" on host {self.host}" if self.host else ""
        since = f" since {self.started}" if self.started else ""
        return f"pid {self.pid if self.pid is not None else '?'}{host}{since}"

    def why_stale(self, stale_after: float) -> str:
        if self.checked:
            return "that process has ended"
        return f"no heartbeat for more than {stale_after:g} s"


def read_lock(path: Path, stale_after: float) -> Optional[LockHolder]:
    """The holder of lock file ``path``, or ``None`` when there is none."""
    try:
        with open(path, "rb") as f:
            raw, mtime = f.read(), os.fstat(f.fileno()).st_mtime
            legacy_held = _flock_held(f) if _LEGACY.fullmatch(raw) else None
    except FileNotFoundError:
        return None
    age = max(0.0, time.time() - mtime)
    if legacy_held is not None:
        return LockHolder(int(raw), None, None, mtime, age, True, legacy_held, False, raw)
    try:
        info = json.loads(raw)
    except ValueError:  # written by an exclusive create a moment ago: judged by its age
        info = None
    if not isinstance(info, dict):
        return LockHolder(None, None, None, mtime, age, False, age <= stale_after, False, raw)
    pid, start = info.get("pid"), info.get("pid_start")
    same = (info.get("host") == HOST and info.get("pid_namespace") == _PID_NAMESPACE
            and isinstance(pid, int))
    if same:  # the pid decides; without a start time to check it against, the heartbeat too
        live = _process_alive(pid, start) and (start is not None or age <= stale_after)
    else:
        live = age <= stale_after
    mine = same and pid == os.getpid() and start == _process_start(os.getpid())
    return LockHolder(pid if isinstance(pid, int) else None, info.get("host"),
                      info.get("started"), mtime, age, same and start is not None, live, mine,
                      raw)


def _flock_held(f) -> bool:
    """Whether another open file holds an exclusive ``flock`` on ``f`` (older xcf)."""
    try:
        fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system: no older xcf could have held it
        return False
    fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _own_record() -> tuple[bytes, str]:
    """This process's lock record (JSON bytes) and its token."""
    token = uuid.uuid4().hex
    record = {"pid": os.getpid(), "host": HOST, "pid_namespace": _PID_NAMESPACE,
              "pid_start": _process_start(os.getpid()), "started": now(), "token": token,
              "heartbeat_seconds": HEARTBEAT_SECONDS, "command": command()}
    return (json.dumps(record, sort_keys=True) + "\n").encode(), token


# errno values of a file system that has no hard links (FUSE, SMB, some object stores)
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


def _create_lock(path: Path, record: bytes) -> bool:
    """Create lock file ``path`` holding ``record``, atomically; ``False`` if it exists.

    The record goes to a private file first, which is hard-linked to ``path``: the lock
    appears whole or not at all, and ``link`` is atomic on NFS too.  NFS may answer a
    retried ``link`` whose first try succeeded with EEXIST, so the private file's link
    count (2 after a success) decides."""
    claim = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.claim")
    with open(claim, "wb") as f:
        f.write(record)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(claim, path)
        return True
    except FileExistsError:
        return os.stat(claim).st_nlink == 2
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        return _create_exclusive(path, record)
    finally:
        with contextlib.suppress(OSError):
            claim.unlink()


def _create_exclusive(path: Path, record: bytes) -> bool:
    """``os.open(O_CREAT | O_EXCL)``: for file systems without hard links."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(record)
        f.flush()
        os.fsync(f.fileno())
    return True


def _break_stale(path: Path, seen: bytes) -> bool:
    """Remove lock file ``path`` if it still holds ``seen``, the record judged stale;
    ``False`` when another waiter is at it.

    Under a guard folder (``mkdir`` is atomic), so that of two waiters that judged the
    same lock stale, the second never removes the lock the first has just created."""
    guard = path.with_name(path.name + ".break")
    try:
        os.mkdir(guard)
    except FileExistsError:  # another waiter is breaking it; a guard a minute old is left over
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > 60:
                os.rmdir(guard)
        return False
    try:
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == seen:
                path.unlink()
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(guard)
    return True


def _holds(path: Path, token: str) -> bool:
    """Whether lock file ``path`` holds the record of ``token``."""
    try:
        info = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    return isinstance(info, dict) and info.get("token") == token


class HeldLock:
    """This process's hold on a lock file: the heartbeat thread, and the release."""

    def __init__(self, path: Path, token: str) -> None:
        self.path, self.token = path, token
        self._stop = threading.Event()
        self._lost = False
        self._thread = threading.Thread(target=self._beat_every, daemon=True,
                                        name=f"xcf lock heartbeat {path.parent.name}")
        self._thread.start()

    @property
    def lost(self) -> bool:
        """Whether a heartbeat found the lock file holding another process's record."""
        return self._lost

    def beat(self) -> bool:
        """Refresh the heartbeat; ``False`` once the lock is another process's."""
        if self._lost:
            return False
        try:
            if not _holds(self.path, self.token):
                self._lost = True
                return False
            os.utime(self.path)
        except OSError:  # a passing fault of the file system: the next beat tries again
            pass
        return True

    def _beat_every(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if not self.beat():
                return

    def release(self) -> None:
        """Stop the heartbeat and delete the lock file, unless it is another's by now."""
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            if _holds(self.path, self.token):
                self.path.unlink()


def acquire(path: Path, wait: Optional[float] = 0, *,
            log: Optional[Callable[[str], None]] = None,
            stale_after: float = STALE_SECONDS) -> HeldLock:
    """Take lock file ``path`` (``<run folder>/.lock``; the folder must exist), waiting for
    a live holder ``wait`` seconds (0: not at all; ``None``: as long as it lives) with a
    progress line to ``log`` every :data:`REPORT_SECONDS` (then less often); a stale lock
    (see the module docstring; ``stale_after``: the limit for another host's heartbeat)
    is taken over.  Raises :class:`RunLockedError` naming the holder and the fix when the
    wait runs out, and at once when the holder is this very process (waiting would never
    end).  The caller releases the returned hold (:meth:`HeldLock.release`)."""
    return _await(path, wait, log, stale_after, take=True)


def wait_until_free(path: Path, wait: Optional[float] = None, *,
                    log: Optional[Callable[[str], None]] = None,
                    stale_after: float = STALE_SECONDS) -> None:
    """Return once no live process holds lock file ``path`` (at once if none does),
    without taking it; ``wait``, ``log``, ``stale_after`` and errors as for :func:`acquire`."""
    _await(path, wait, log, stale_after, take=False)


def _await(path: Path, wait: Optional[float], log: Optional[Callable[[str], None]],
           stale_after: float, *, take: bool) -> Optional[HeldLock]:
    """The waiting loop of :func:`acquire` (``take``) and :func:`wait_until_free`."""
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float))
                             or not 0 <= wait < float("inf")):
        raise ArgumentError(f"wait {wait!r} is not a number of seconds >= 0; pass 0 (fail "
                            "at once), a number of seconds, or None (wait as long as the "
                            "holder lives)")
    if not stale_after > 0:
        raise ArgumentError(f"stale_after {stale_after!r} is not a number of seconds > 0; "
                            f"pass the staleness limit, e.g. {STALE_SECONDS:g}")
    folder = path.parent  # the run folder, which the messages name
    start = time.monotonic()
    seen, seen_since, next_report = None, start, 0.0
    while True:
        holder = read_lock(path, stale_after)
        if holder is None:
            if not take:
                return None
            record, token = _own_record()
            if _create_lock(path, record):
                return HeldLock(path, token)
            continue  # another process created it first
        if holder.this_process:
            raise RunLockedError(f"{folder} is locked by this process itself (pid "
                                 f"{os.getpid()}, since {holder.started}): waiting for it "
                                 "would never end. Let the training in this process end "
                                 "first (a callback or a second thread training the same "
                                 "run?)")
        now_ = time.monotonic()
        if (holder.raw, holder.mtime) != seen:  # a new holder, or a new heartbeat
            seen, seen_since = (holder.raw, holder.mtime), now_
        if not holder.live or (not holder.checked and now_ - seen_since > stale_after):
            if not take:
                return None
            if log is not None:
                log(f"taking over the lock of {folder.name} from {holder.describe()}: "
                    f"{holder.why_stale(stale_after)}")
            if not _break_stale(path, holder.raw):
                time.sleep(POLL_SECONDS)  # another waiter is breaking it
            continue
        waited = now_ - start
        if wait is not None and waited >= wait:
            raise RunLockedError(_locked_message(folder, holder, wait, stale_after))
        if log is not None and waited >= next_report:
            log(f"waiting for {folder.name} (trained by {holder.describe()}) ... "
                f"{waited:.0f} s")
            next_report = waited + max(REPORT_SECONDS, waited / 10)
        pause = POLL_SECONDS if wait is None else min(POLL_SECONDS, wait - waited)
        time.sleep(max(pause, 0.01))


def _locked_message(folder: Path, holder: LockHolder, wait: float, stale_after: float) -> str:
    gave_up = "at once (wait=0)" if wait == 0 else f"after waiting {wait:g} s"
    return (f"{folder} is being trained by another process: {holder.describe()}, last "
            f"heartbeat {holder.heartbeat_age:.0f} s ago; gave up {gave_up}. Wait for it "
            "(train(..., wait=SECONDS), or wait=None for as long as it lives; xcf train "
            "--wait SECONDS), or stop that process (the run then resumes from its last "
            "finished epoch). A lock whose holder died is taken over without help: at "
            f"once on the same host, after {stale_after:g} s without a heartbeat from "
            "another host")
