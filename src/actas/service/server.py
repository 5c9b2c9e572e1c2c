"""Run the service under uvicorn on one process; stop cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import time

import uvicorn
from fastapi import FastAPI

from actas.service.app import create_app
from actas.service.runtime import Runtime, ServiceConfig

log = logging.getLogger("actas.service")


# Bounded concurrency: beyond this many open connections, answer 503 at once instead of queueing forever.
LIMIT_CONCURRENCY = 4096
RESTART_PAUSE = 0.5  # seconds before a crashed worker process is started again


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket all worker processes share (IPPROTO_TCP, so asyncio sets TCP_NODELAY on connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(LIMIT_CONCURRENCY)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        limit_concurrency=LIMIT_CONCURRENCY,
        backlog=LIMIT_CONCURRENCY,
        lifespan="on",
    )


def _worker(config: ServiceConfig, sock: socket.socket, host: str, port: int, log_level: str) -> None:
    """One worker process: its own runtime and event loop on the shared socket; it dies with its parent."""
    _die_with_parent()
    runtime = Runtime(config)
    try:
        runtime.start()
        _freeze_startup_objects()
        server_config = _uvicorn_config(create_app(runtime, manage=True), host, port, log_level)
        server_config.load()
    except BaseException:
        runtime.close()
        raise
    uvicorn.Server(server_config).run(sockets=[sock])


def _freeze_startup_objects() -> None:
    """Exclude what the service loaded at startup from cyclic garbage collection (gc.freeze).

    The election definition, enrollments and totals are hundreds of thousands of objects that live as long as
    the process; every full collection walked them all, tens of milliseconds holding the GIL each time.
    """
    gc.collect()
    gc.freeze()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the supervisor dies, even by SIGKILL (no orphans on the port)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _supervise(config: ServiceConfig, host: str, port: int, log_level: str, processes: int) -> None:
    """Fork worker processes on one socket; restart any that dies; stop them all on SIGINT or SIGTERM."""
    sock = _listen(host, port)
    context = multiprocessing.get_context("fork")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = [context.Process(target=_worker, args=(config, sock, host, port, log_level)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    log.info("serving on %s:%d with %d processes", host, port, processes)
    while not stopping:
        time.sleep(0.2)
        for n, worker in enumerate(workers):
            if not worker.is_alive() and not stopping:
                log.warning("worker %d exited with %s; starting it again", worker.pid, worker.exitcode)
                time.sleep(RESTART_PAUSE)
                workers[n] = context.Process(target=_worker, args=(config, sock, host, port, log_level))
                workers[n].start()
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(timeout=30)


def serve(
    config: ServiceConfig, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info", processes: int = 1
) -> None:
    """Serve until interrupted; everything acknowledged is already durable, so a kill loses nothing.

    With several processes, each ingests and serves reads on its own core; one of them sequences at a time.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if processes > 1:
        _supervise(config, host, port, log_level, processes)
        return
    runtime = Runtime(config)
    try:
        runtime.start()  # here, not in the app's lifespan: a failure stops serve with its own error
        _freeze_startup_objects()
        # The app's lifespan closes the runtime: uvicorn re-raises SIGTERM once it has shut down, so code after
        # run() never runs, and a close there would leave the verification workers behind.
        server_config = _uvicorn_config(create_app(runtime, manage=True), host, port, log_level)
        server_config.load()  # what run() would do first, before the lifespan could close the runtime
    except BaseException:
        runtime.close()
        raise
    uvicorn.Server(server_config).run()
