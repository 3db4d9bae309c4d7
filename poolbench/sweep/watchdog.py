"""What a SIGKILL of the command would leave behind, cleaned up anyway (issue 16, item 8).

The command cannot handle SIGKILL, so a small watchdog process (``python -m poolbench.sweep.watchdog``,
started with the first child or directory of a sweep, in a session of its own) reads a pipe from the
command: each child's process group, each private directory and each embedded PostgreSQL data
directory is announced on it when it is made and withdrawn when it is gone. When the pipe closes
without a ``bye`` (the command died), the watchdog kills the groups, stops that PostgreSQL (which
pg_ctl daemonized: no process group of ours holds it) and removes the directories, then exits.

Each directory's name carries the pid of the command that made it (``poolbench-trial-<pid>-...``), so
that the next sweep can remove what a command that is gone left behind even when its watchdog was
killed too (:func:`clean_leftovers`).

The watchdog's side imports the standard library and psutil only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

MODULE = "poolbench.sweep.watchdog"
BYE = "bye"
# poolbench-trial-<pid>-xxxx (trial state), poolbench-fork-<pid>-xxxx (the fork server's log),
# poolbench-pg-<pid>-xxxx (an embedded PostgreSQL's data directory).
LEFTOVER = re.compile(r"^poolbench-(?P<kind>trial|fork|pg)-(?P<pid>\d+)(?:-|$)")

_proc: subprocess.Popen[bytes] | None = None
_watched: set[tuple[str, str]] = set()  # what the running watchdog holds: it stops when nothing is left
_UNDO = {"ungroup": "group", "undir": "dir"}


# --- the command's side ---------------------------------------------------------------------------


def private_dir(prefix: str, *, short: bool = False) -> Path:
    """A private directory (mode 0700) named ``<prefix><pid>-...`` (mkdtemp), announced to the watchdog.

    ``short``: ``<prefix><pid>`` when that name is free (made exclusively, never through a symlink):
    the embedded PostgreSQL's socket lives in its directory, and a Unix socket path has at most 107
    characters.
    """
    path = Path(tempfile.gettempdir()) / f"{prefix}{os.getpid()}"
    try:
        if not short:
            raise FileExistsError
        os.mkdir(path, 0o700)
    except FileExistsError:
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    _tell("dir", str(path))
    return path


def remove_dir(path: str | os.PathLike[str] | None) -> None:
    """Remove a directory of :func:`private_dir` and withdraw it."""
    if path:
        shutil.rmtree(path, ignore_errors=True)
        _tell("undir", str(path), start=False)


def watch_group(pgid: int) -> None:
    _tell("group", str(pgid))


def unwatch_group(pgid: int) -> None:
    _tell("ungroup", str(pgid), start=False)


def watch_postgres(datadir: str) -> None:
    """An embedded PostgreSQL runs in (under) ``datadir``: stop it and remove the directory if need be."""
    _tell("postgres", datadir)


def stop() -> None:
    """The command's clean exit: everything is stopped and removed; the watchdog leaves it as it is."""
    global _proc
    proc, _proc = _proc, None
    _watched.clear()
    if proc is None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"{BYE}\n".encode())
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def pid() -> int | None:
    """The running watchdog's pid (for the tests)."""
    return _proc.pid if _proc is not None and _proc.poll() is None else None


def _tell(verb: str, value: str, *, start: bool = True) -> None:
    global _proc
    if _proc is None or _proc.poll() is not None:
        if not start:
            return
        _proc = _start()
        _watched.clear()
    try:
        assert _proc.stdin is not None
        _proc.stdin.write(f"{verb} {value}\n".encode())
        _proc.stdin.flush()
    except OSError:  # it died: the next start's clean_leftovers() does its job
        pass
    if verb in _UNDO:
        _watched.discard((_UNDO[verb], value))
        _watched.discard(("postgres", value))
        if not _watched:  # nothing left to watch: no process of ours stays behind for nothing
            stop()
    else:
        _watched.add((verb, value))


def _start() -> subprocess.Popen[bytes]:
    from poolbench.sweep.children import allowed_env

    env = allowed_env(PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.Popen(
        [sys.executable, "-m", MODULE, str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env=env, close_fds=True,
    )  # fmt: skip


# --- the next start -----------------------------------------------------------------------------


def clean_leftovers(directory: str | None = None) -> list[str]:
    """Remove what commands that are gone left in the temp directory (their PostgreSQL stopped first);
    the names of what was removed. Directories of live commands, and those without a pid in their
    name (another version's), are left alone."""
    removed = []
    root = Path(directory or tempfile.gettempdir())
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = LEFTOVER.match(entry.name)
        if not match or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if st.st_uid != os.getuid() or _owner_alive(int(match["pid"]), st.st_ctime):
            continue
        if match["kind"] == "pg":
            kill_postgres_in(str(entry))
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def _owner_alive(pid: int, made: float) -> bool:
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
    return started <= made + 1.0  # a process started after the directory reuses the pid


def kill_postgres_in(datadir: str) -> None:
    """Stop every process working in ``datadir``: a postmaster gets SIGQUIT (immediate shutdown, which
    ends its backends too), anything else there (initdb, pg_ctl, their shells) SIGKILL."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if proc.pid == os.getpid() or not any(datadir in part for part in cmd):
            continue
        postmaster = os.path.basename(cmd[0]) == "postgres" and "-D" in cmd
        try:
            proc.send_signal(signal.SIGQUIT if postmaster else signal.SIGKILL)
            found.append(proc)
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(found, timeout=3)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=3)


# --- the watchdog's side --------------------------------------------------------------------------


def watch(stream: IO[bytes]) -> dict[str, set[str]] | None:
    """Read the command's announcements until the pipe closes; what is still there then, or None after
    a ``bye`` (a clean exit)."""
    held: dict[str, set[str]] = {"group": set(), "dir": set(), "postgres": set()}
    undo = _UNDO
    for raw in stream:
        verb, _, value = raw.decode(errors="replace").rstrip("\n").partition(" ")
        if verb == BYE:
            return None
        if verb in held:
            held[verb].add(value)
        elif verb in undo:
            held[undo[verb]].discard(value)
            held["postgres"].discard(value)
    return held


def clean(held: dict[str, Any]) -> None:
    """The command died: kill its children's groups, stop its PostgreSQL, remove its directories."""
    for pgid in held["group"]:
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass
    for datadir in held["postgres"]:
        kill_postgres_in(datadir)
    for path in held["dir"] | held["postgres"]:
        for _ in range(20):  # a process killed a moment ago may still be writing there
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                break
            time.sleep(0.1)


def main() -> None:
    # Ctrl-C and a closed terminal are the command's to handle; the pipe says when it is gone.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    held = watch(sys.stdin.buffer)
    if held is not None:
        clean(held)


if __name__ == "__main__":
    main()
