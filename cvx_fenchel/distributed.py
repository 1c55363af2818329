"""Dask clusters for the command line: ``--workers N`` and ``--scheduler ADDRESS``.

The one place these flags are defined (:func:`add_cluster_arguments`), checked
(:func:`check_cluster_args`) and turned into a :class:`dask.distributed.Client`
(:func:`client_from_args`), so that every command fanning work out over Dask (``verify``,
``reproduce``) reads the same way and fails the same way:

* ``--workers N`` starts a :class:`~dask.distributed.LocalCluster` of ``N`` worker *processes*
  with one thread each (the work is CVXPY/NumPy bound and holds the GIL; one BLAS thread per
  worker is what the nanny sets by default), closed when the command ends;
* ``--scheduler ADDRESS`` connects to a running cluster, given either its address
  (``tcp://host:8786``, ``tls://...``, or ``host:port``) or a scheduler file (the JSON written by
  ``dask scheduler --scheduler-file FILE``, dask-mpi or dask-jobqueue). The cluster is left
  running; its workers must have this package (and ``verification/``) importable, since tasks
  name their functions by module.

Dask is an optional extra: without it :func:`require_dask` raises a one-line
:class:`~cvx_fenchel.errors.InputError` naming the extra, and commands call it while checking
their arguments, before any work starts.

This module imports only :mod:`cvx_fenchel.errors` (Dask lazily), so every layer above may use it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from typing import Callable, Iterator

from .errors import InputError

__all__ = ["EXTRA_INSTALL", "require_dask", "add_cluster_arguments", "cluster_requested",
           "check_cluster_args", "cluster_client", "client_from_args", "describe_client"]

#: How to install the optional dependency (named in the error when it is missing).
EXTRA_INSTALL = 'pip install ".[distributed]"'

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d+$")


def require_dask(what: str = "--workers/--scheduler need") -> None:
    """Raise :class:`InputError` (one line, naming the extra) unless ``dask.distributed`` imports;
    ``what`` starts the message (who needs Dask)."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{what} dask.distributed, which is not importable here "
                         f"({why}); install the extra: {EXTRA_INSTALL}") from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive ``--workers N`` / ``--scheduler ADDRESS`` to ``parser``
    (both default None: run serially in this process)."""
    g = parser.add_argument_group(
        "Dask cluster (optional; needs the distributed extra: " + EXTRA_INSTALL + ")")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="run the tasks on a local Dask cluster of N single-threaded worker processes")
    x.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the tasks on an existing Dask cluster: its scheduler address "
                        "(tcp://host:8786) or scheduler file (dask scheduler --scheduler-file FILE); "
                        "its workers need this package installed")


def cluster_requested(args: argparse.Namespace) -> bool:
    """Whether ``args`` ask for a Dask cluster (``--workers`` or ``--scheduler`` given)."""
    return getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None


def _scheduler_target(address: str) -> tuple[str, str]:
    """``("address", a)`` or ``("file", path)`` for a ``--scheduler`` value; InputError when it is
    neither a URL, a host:port nor an existing file."""
    a = address.strip()
    if "://" in a:
        return "address", a
    if os.path.isfile(a):
        return "file", a
    if _HOST_PORT.match(a):
        return "address", a
    raise InputError(f"--scheduler {address!r}: neither a scheduler address (tcp://host:port or "
                     "host:port) nor an existing scheduler file")


def check_cluster_args(args: argparse.Namespace) -> None:
    """Check ``--workers``/``--scheduler`` before any work: Dask importable, the scheduler value a
    URL, host:port or existing file. A no-op when neither flag is given."""
    if not cluster_requested(args):
        return
    require_dask()
    if getattr(args, "scheduler", None) is not None:
        _scheduler_target(args.scheduler)


@contextlib.contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None, *,
                   connect_timeout: float = 30.0, log: Callable[[str], None] | None = None,
                   **local_options) -> Iterator:
    """A :class:`dask.distributed.Client` for the duration of the ``with`` block.

    ``workers=N``: a LocalCluster of ``N`` single-threaded worker processes, started here and
    closed on exit (``local_options`` go to :class:`~dask.distributed.LocalCluster`, e.g.
    ``dashboard_address=None``). ``scheduler=ADDRESS``: a client of that running cluster (address or
    scheduler file), closed on exit; the cluster keeps running. Exactly one of the two."""
    if (workers is None) == (scheduler is None):
        raise InputError("give exactly one of workers=N (local cluster) and scheduler=ADDRESS")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    require_dask()
    from dask.distributed import Client, LocalCluster

    say = log or (lambda line: None)
    if workers is not None:
        opts = dict(n_workers=workers, threads_per_worker=1, processes=True)
        opts.update(local_options)
        cluster = LocalCluster(**opts)
        try:
            client = Client(cluster)
            try:
                say(f"Dask: local cluster of {workers} worker process(es), 1 thread each; "
                    + describe_client(client))
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
        return
    kind, target = _scheduler_target(scheduler)
    try:
        client = (Client(scheduler_file=target, timeout=connect_timeout) if kind == "file"
                  else Client(target, timeout=connect_timeout))
    except (OSError, TimeoutError, ValueError) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--scheduler {scheduler!r}: cannot connect to the Dask scheduler ({why})") from None
    try:
        say("Dask: " + describe_client(client))
        yield client
    finally:
        client.close()


def client_from_args(args: argparse.Namespace, *, log: Callable[[str], None] | None = None,
                     **local_options):
    """:func:`cluster_client` for the parsed ``--workers``/``--scheduler`` of ``args``."""
    return cluster_client(getattr(args, "workers", None), getattr(args, "scheduler", None), log=log,
                          **local_options)


def describe_client(client) -> str:
    """One line: the scheduler's address and its workers and threads now (a cluster's workers may
    come and go; this is the count when asked)."""
    info = client.scheduler_info()
    ws = info.get("workers", {})
    threads = sum(int(w.get("nthreads", 0)) for w in ws.values())
    line = f"scheduler {info.get('address', client.scheduler.address)}, {len(ws)} worker(s), {threads} thread(s)"
    if not ws:
        line += " (none connected yet: tasks start when workers join)"
    if "dashboard" in info.get("services", {}):
        with contextlib.suppress(Exception):
            line += f"; dashboard {client.dashboard_link}"
    return line
