"""gRPC channels for callers: a default deadline on every call and retries on UNAVAILABLE.

A backend that is down must cost callers little: retries back off briefly (at most ~0.35 s in
all) and the channel tries to reconnect at least every 2 s, so a restarted backend is found
again quickly instead of after gRPC's default reconnect backoff of up to two minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from services.runtime import telemetry

_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


MAX_REPLY_BYTES = 16 * 1024 * 1024


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Give every unary call a deadline unless the caller chose one."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if client_call_details.timeout is None:
            # ClientCallDetails is a named tuple at run time.
            client_call_details = client_call_details._replace(  # type: ignore[attr-defined]
                timeout=self.seconds
            )
        return await continuation(client_call_details, request)


def open_channel(
    target: str,
    *,
    default_timeout: float = 5.0,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel to `target`; `interceptors` run outermost (they see the final outcome)."""
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            # Replies may carry a chart document (forms: at most 10 MiB); callers trust backends.
            ("grpc.max_receive_message_length", MAX_REPLY_BYTES),
        ],
        interceptors=[
            *interceptors,
            *telemetry.grpc_client_interceptors(),
            DefaultDeadline(default_timeout),  # type: ignore[list-item]
        ],
    )
