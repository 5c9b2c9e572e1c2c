"""Run the service under uvicorn on one process; stop cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import logging

import uvicorn

from actas.service.app import create_app
from actas.service.runtime import Runtime, ServiceConfig


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Serve until interrupted; everything acknowledged is already durable, so a kill loses nothing."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runtime = Runtime(config)
    try:
        runtime.start()
        app = create_app(runtime)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
            limit_concurrency=4096,  # beyond this many open requests, answer 503 at once instead of queueing
            backlog=4096,
        )
    finally:
        runtime.close()
