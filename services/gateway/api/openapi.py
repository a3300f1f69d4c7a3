"""The OpenAPI 3.1 document of /api/v1, generated from the declared operations and their models.

Nothing here describes a body by hand: schemas come from the pydantic models (JSON Schema
2020-12, the dialect of OpenAPI 3.1), parameters from the query models and path types, and the
responses from each operation's answers and `statuses()`. What is written here is prose: the
meaning of each error status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.gateway.api.dates import birth_date_pattern
from services.gateway.api.fields import BIRTH_DATE
from services.gateway.api.models import Problem, Realm, Uuid
from services.gateway.api.operation import MULTIPART, PATIENT_ID, Answer, Operation

JSON = "application/json"
PROBLEM = "application/problem+json"
REF = "#/components/schemas/{model}"
Schema = dict[str, Any]

PROBLEMS = {
    400: (
        "BadRequest",
        "The request is not valid: malformed JSON, a body that is not an object, "
        "unknown members, members of the wrong type, or values the server rejects; `errors` "
        "names each field with its messages.",
    ),
    401: (
        "Unauthorized",
        "No valid session token of the right kind (`WWW-Authenticate: "
        "Bearer`), or a refused sign-in (always the same message: unknown user, wrong "
        "password and locked account alike).",
    ),
    403: (
        "Forbidden",
        "The session may not do this. `code` PASSWORD_CHANGE_REQUIRED: change the password "
        "first; ROLE_NOT_ALLOWED: the staff member's role may not (see the operation).",
    ),
    404: ("NotFound", "No such resource."),
    409: (
        "Conflict",
        "Not possible in the current state; `code` says why (e.g. "
        "DUPLICATE_PATIENT, ACCOUNT_EXISTS, PORTAL_NOT_ALLOWED, NO_ACCOUNT, "
        "TEMPORARY_PASSWORD_EXPIRED) and `detail` says it in words.",
    ),
    413: ("ContentTooLarge", "The body is larger than the operation's limit."),
    415: (
        "UnsupportedMediaType",
        "The body is not application/json (nor multipart/form-data where an upload is taken).",
    ),
    422: (
        "UnprocessableContent",
        "The request is well formed, but what it refers to is not ready for it (e.g. a form "
        "submitted with required items unanswered); `errors` names each item.",
    ),
    429: (
        "TooManyRequests",
        "Too many sign-in attempts from this address; `Retry-After` says when to try again.",
    ),
    503: ("Unavailable", "A backend service is temporarily unavailable."),
}
# Headers an error answer carries.
PROBLEM_HEADERS = {
    401: ("WWW-Authenticate", "Bearer: send a session token (absent on a refused sign-in)."),
    429: ("Retry-After", "Seconds to wait before trying again."),
}
# Path parameters by name: their types (a patient id that is no UUID is simply not found);
# any other `..._id` is a UUID too.
PATH_TYPES: dict[str, Any] = {PATIENT_ID: Uuid, "realm": Realm}
TAGS = {
    "staff": "Staff sessions",
    "patients": "The patient registry (staff token)",
    "credentials": "Portal credentials (staff token)",
    "portal": "The patient's own API (patient token)",
    "scheduling": "Providers, hours, appointment types and appointments (staff token)",
    "portal-scheduling": "The patient's own appointments (patient token)",
    "forms": "Forms: the library, the portal catalog, chart forms and their review (staff token)",
    "records": "Medications, refill requests, chart documents and letter templates (staff token)",
    "work-queue": "Profile updates and the work queue of what patients did (staff token)",
    "audit": "The audit log (administrators)",
    "meta": "This description",
}
_PATH_REGEX = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    """aiohttp's `{name:regex}` as OpenAPI's `{name}`."""
    return _PATH_REGEX.sub(r"{\1}", path)


def build(operations: Iterable[Operation]) -> Schema:
    operations = list(operations)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.upload is not None:
            models.append((op.upload, "validation"))
        models += [(a.model, "serialization") for a in op.answers if a.model is not None]
    keys, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    paths: dict[str, Schema] = {}
    for op in operations:
        item = paths.setdefault(openapi_path(op.path), {})
        item[op.method.lower()] = _operation(op, {model: ref for (model, _), ref in keys.items()})
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Patient portal API",
            "version": "1.0.0",
            "description": "Staff manage patients and portal credentials; patients sign in to a "
            "realm (onsite or offsite) and read their own record. Every error is "
            "application/problem+json (RFC 9457). Undeclared methods answer 405 with `Allow`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token from POST /api/v1/staff/sessions or "
                    "POST /api/v1/portal/{realm}/sessions.",
                }
            },
            "schemas": _dated(definitions.get("$defs", {}), date.today()),
            "responses": {name: _problem(status) for status, (name, _) in PROBLEMS.items()},
        },
    }


def _dated(node: Any, today: date) -> Any:
    """Birth dates: the exact pattern of the dates accepted today (see dates.py)."""
    if isinstance(node, dict):
        if node.get("format") == BIRTH_DATE:
            node["pattern"] = birth_date_pattern(today)
        for value in node.values():
            _dated(value, today)
    elif isinstance(node, list):
        for value in node:
            _dated(value, today)
    return node


def _operation(op: Operation, refs: dict[Any, Schema]) -> Schema:
    spec: Schema = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    description = op.description
    if op.roles:
        names = ", ".join(sorted(op.roles))
        description = f"Staff roles: {names} (others: 403 ROLE_NOT_ALLOWED). {description}"
    if description:
        spec["description"] = description.strip()
    if op.security == "none":
        spec["security"] = []
    parameters = [_path_parameter(name) for name in _PATH_REGEX.findall(op.path)]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    if op.headers is not None:
        parameters += _query_parameters(op.headers, "header")
    if parameters:
        spec["parameters"] = parameters
    content: Schema = {}
    if op.body is not None:
        content[JSON] = {"schema": refs[op.body]}
    if op.upload is not None:
        content[MULTIPART] = {"schema": refs[op.upload]}
    if content:
        spec["requestBody"] = {"required": op.body_required, "content": content}
    responses: Schema = {str(a.status): _answer(a, refs) for a in op.answers}
    for status in op.statuses():
        responses[str(status)] = {"$ref": f"#/components/responses/{PROBLEMS[status][0]}"}
    spec["responses"] = responses
    return spec


def _answer(answer: Answer, refs: dict[Any, Schema]) -> Schema:
    spec: Schema = {"description": answer.description}
    if answer.model is not None:
        spec["content"] = {JSON: {"schema": refs[answer.model]}}
    if answer.media_types:
        spec["content"] = {
            media: {"schema": {"type": "string", "contentMediaType": media}}
            for media in answer.media_types
        }
    if answer.headers:
        spec["headers"] = {
            name: {
                "description": header.description,
                "required": header.required,
                "schema": _string(header.format),
            }
            for name, header in answer.headers.items()
        }
    return spec


def _problem(status: int) -> Schema:
    spec: Schema = {
        "description": PROBLEMS[status][1],
        "content": {PROBLEM: {"schema": {"$ref": REF.format(model="Problem")}}},
    }
    if status in PROBLEM_HEADERS:
        name, text = PROBLEM_HEADERS[status]
        # Not required: a refused sign-in is 401 too, and asks for no token.
        spec["headers"] = {name: {"description": text, "schema": _string()}}
    return spec


def _string(fmt: str = "") -> Schema:
    schema: Schema = TypeAdapter(str).json_schema()
    if fmt:
        schema["format"] = fmt
    return schema


def _path_parameter(name: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": TypeAdapter(PATH_TYPES.get(name, Uuid)).json_schema(),
    }


def _query_parameters(model: type[BaseModel], where: str = "query") -> list[Schema]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, member in schema["properties"].items():
        member.pop("title", None)
        member.pop("default", None)  # the server's business (see models._no_defaults)
        parameter: Schema = {"name": name, "in": where, "required": name in required}
        if "description" in member:
            parameter["description"] = member.pop("description")
        parameter["schema"] = member
        parameters.append(parameter)
    return parameters
