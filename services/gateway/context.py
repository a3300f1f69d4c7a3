"""Typed keys of what the gateway application holds."""

from __future__ import annotations

from aiohttp import web

from services.gateway.backends import Backends
from services.gateway.ratelimit import RateLimiter
from services.gateway.settings import GatewaySettings

SETTINGS = web.AppKey("settings", GatewaySettings)
BACKENDS = web.AppKey("backends", Backends)
# Sign-in attempts per client address (staff, patient and API sign-ins share it).
LOGIN_LIMITER = web.AppKey("login_limiter", RateLimiter)
