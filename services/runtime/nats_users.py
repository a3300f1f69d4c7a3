"""Each service's NATS user and what it may publish and subscribe to.

A service publishes only its own events (`portal.<service>.>`) and manages only its own stream;
it consumes other services' events only through the durable consumers listed here (JetStream
delivers them to its own reply inbox, so it subscribes to nothing else). Everything else,
forms publishing an identity event or changing identity's stream, is refused by the server.

One table serves the embedded nats-server of `make run` and the Kubernetes NATS config
(deploy/components/nats; a test checks that they agree). A new durable consumer is added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.runtime.broker import inbox_prefix

# The stream each service owns, with the subjects `portal.<service>.>` (ServiceSpec.stream).
STREAMS = {"identity": "IDENTITY", "forms": "FORMS", "scheduling": "SCHEDULING"}


@dataclass(frozen=True)
class Consumer:
    stream: str  # the stream of the service whose events are consumed
    durable: str  # the durable consumer's name (Subscription.durable)


# The durable consumers each service binds to (its Subscriptions).
CONSUMERS: dict[str, tuple[Consumer, ...]] = {
    "identity": (),
    "forms": (
        Consumer("IDENTITY", "forms-patient-registered"),
        Consumer("IDENTITY", "forms-portal-access"),
        Consumer("SCHEDULING", "forms-appointments"),
    ),
    "scheduling": (Consumer("IDENTITY", "scheduling-patient-registered"),),
}


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def permissions(service: str) -> Permissions:
    stream = STREAMS[service]
    publish = [
        f"portal.{service}.>",  # its events (JetStream publishes are requests to the subject)
        f"$JS.API.STREAM.CREATE.{stream}",
        f"$JS.API.STREAM.UPDATE.{stream}",
        f"$JS.API.STREAM.INFO.{stream}",
    ]
    for c in CONSUMERS[service]:
        publish += [
            f"$JS.API.CONSUMER.DURABLE.CREATE.{c.stream}.{c.durable}",
            f"$JS.API.CONSUMER.CREATE.{c.stream}.{c.durable}",
            f"$JS.API.CONSUMER.CREATE.{c.stream}.{c.durable}.>",
            f"$JS.API.CONSUMER.INFO.{c.stream}.{c.durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
            f"$JS.ACK.{c.stream}.{c.durable}.>",  # ack, nak with delay, term
        ]
    return Permissions(tuple(publish), (f"{inbox_prefix(service)}.>",))


def authorization(passwords: Mapping[str, str]) -> str:
    """The `authorization` block of a nats-server config with one user per service.

    `passwords` maps each service to its password as it should appear in the config: a quoted
    string (`"…"`), or an environment variable reference (`$FORMS_NATS_PASSWORD`).
    """
    lines = ["authorization {", "  users = ["]
    for service in STREAMS:
        rules = permissions(service)
        lines += [
            "    {",
            f'      user: "{service}"',
            f"      password: {passwords[service]}",
            "      permissions: {",
            *_allow("publish", rules.publish),
            *_allow("subscribe", rules.subscribe),
            "      }",
            "    }",
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _allow(direction: str, subjects: tuple[str, ...]) -> list[str]:
    # Quoted, so that nats-server does not read `$JS…` as a variable.
    quoted = [f'          "{subject}",' for subject in subjects]
    return [f"        {direction}: {{ allow: [", *quoted, "        ] }"]
