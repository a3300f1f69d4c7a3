"""Entry point of `python -m services.gateway`."""

from __future__ import annotations

import sys

from aiohttp import web

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.runtime import event_loop, logs, telemetry
from services.runtime.settings import ConfigError


def main() -> None:
    try:
        settings = GatewaySettings.from_env()
    except ConfigError as exc:
        print(f"portal-gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    logs.configure("gateway", settings.log_level)
    telemetry.configure(
        "gateway", otlp_endpoint=settings.otlp_endpoint, trace_file=settings.trace_file
    )
    telemetry.instrument_aiohttp_server()
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=None,
            access_log=None,
            shutdown_timeout=10,
            loop=event_loop.new_event_loop(),
        )
    except OSError as exc:
        print(
            f"portal-gateway: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        sys.exit(2)
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
