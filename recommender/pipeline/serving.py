"""The feedback endpoint served with uvicorn: the web app over the store (``web_site``), inside
the limits the config sets (request time, open connections, trusted proxies)."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from recommender.base.config import CONFIG_ENV, Config
from recommender.base.errors import RecommenderError
from recommender.store import Store


def serve(config: Config, store: Store, host: str, port: int, workers: int) -> None:
    """Serve until uvicorn stops (SIGTERM or SIGINT). With several ``workers``, each process
    opens the store and reads the config itself (``$RECOMMENDER_CONFIG``)."""
    import ipaddress

    import uvicorn

    from recommender.feedback.limits import (
        PER_CLIENT_ENV,
        REQUEST_TIMEOUT_ENV,
        UNCAPPED_ENV,
        BoundedHttpProtocol,
    )
    from recommender.pipeline.web_site import web_app

    check_port_free(host, port)
    feedback = config.feedback
    os.environ[REQUEST_TIMEOUT_ENV] = str(feedback.request_timeout_seconds)  # for worker processes too
    BoundedHttpProtocol.request_seconds = feedback.request_timeout_seconds
    os.environ[PER_CLIENT_ENV] = str(feedback.max_connections_per_client)
    os.environ[UNCAPPED_ENV] = ",".join(feedback.trusted_proxies)
    BoundedHttpProtocol.per_client = feedback.max_connections_per_client
    BoundedHttpProtocol.uncapped = tuple(ipaddress.ip_network(n, strict=False) for n in feedback.trusted_proxies)
    limits: dict[str, Any] = {
        "http": "recommender.feedback.limits:BoundedHttpProtocol",
        "server_header": False,
        # No WebSocket route: an Upgrade stays an HTTP request (uvicorn would hand the
        # connection to another protocol, and its per-address count would never come back).
        "ws": "none",
        # X-Forwarded-For names the client only when it comes from a proxy the config trusts.
        "proxy_headers": bool(feedback.trusted_proxies),
        "forwarded_allow_ips": list(feedback.trusted_proxies),
        "limit_concurrency": feedback.max_connections,
        "timeout_keep_alive": 5,
        "log_level": "info",
        "access_log": False,
    }
    if workers > 1:
        os.environ[CONFIG_ENV] = str(config.path)
        uvicorn.run("recommender.pipeline.web_site:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    **limits)
        return
    uvicorn.run(web_app(config, store), host=host, port=port, **limits)


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, an address uvicorn could not bind (it would log five lines and exit
    3). Bound the way uvicorn binds (SO_REUSEADDR), then given back at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RecommenderError(f"cannot listen on {host}: {exc.strerror}: check --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RecommenderError(f"port {port} on {host} is already in use (another `recommender serve`?): "
                                       f"stop that process or choose another port with --port") from None
            raise RecommenderError(f"cannot listen on {host}:{port}: {exc.strerror}: check --host and --port") from None
