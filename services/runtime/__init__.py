"""The shared runtime every service imports, and nothing else is shared.

settings   typed settings from environment variables
logs       JSON logs with trace ids, no PHI
db         asyncpg pool lifecycle and numbered SQL migrations
broker     the NATS JetStream connection that survives broker outages
outbox     transactional outbox: emit() in the caller's transaction, OutboxRelay publishes
consumer   durable pull consumers with an idempotent inbox and a dead-letter table
telemetry  OpenTelemetry set-up and NATS trace propagation
principal  the signed principal carried in gRPC metadata, and the server-side checks
server     grpc.aio server bootstrap: health, reflection, graceful SIGTERM
client     gRPC channels for callers: deadlines and retries on UNAVAILABLE
"""
