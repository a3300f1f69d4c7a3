"""Routes of the gateway's staff section."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this section's routes."""
