"""The OpenAPI 3.1 description of /api/v1, served at GET /api/v1/openapi.json.

It must list exactly the routes the API registers (a system test compares it with the router).
Errors are RFC 9457 problem+json; `code` names the reason where a client may act on it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

JSON = "application/json"
PROBLEM = "application/problem+json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(description: str = "", **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def nullable_time(description: str) -> Schema:
    return {"type": ["string", "null"], "format": "date-time", "description": description}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def closed(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A request body: members not listed are rejected with 400."""
    return obj(properties, required, additionalProperties=False)


def body(schema_name: str, description: str = "", required: bool = True) -> Schema:
    request: Schema = {"required": required, "content": {JSON: {"schema": ref(schema_name)}}}
    if description:
        request["description"] = description
    return request


def answer(description: str, schema_name: str | None = None, **extra: Any) -> Schema:
    response: Schema = {"description": description, **extra}
    if schema_name:
        response["content"] = {JSON: {"schema": ref(schema_name)}}
    return response


def problems(*statuses: int) -> dict[str, Schema]:
    return {
        str(status): {"$ref": f"#/components/responses/{PROBLEMS[status]}"} for status in statuses
    }


PROBLEMS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    503: "Unavailable",
}
PROBLEM_TEXT = {
    400: "The request is not valid: malformed JSON, a body that is not an object, unknown "
    "members, members of the wrong type, or values the server rejects; `errors` names each "
    "field with its messages.",
    401: "No valid session token of the right kind (`WWW-Authenticate: Bearer`), or a refused "
    "sign-in (always the same message: unknown user, wrong password and locked account alike).",
    403: "The session may not do this. `code` PASSWORD_CHANGE_REQUIRED: change the password first.",
    404: "No such resource.",
    409: "Not possible in the current state; `code` says why (DUPLICATE_PATIENT, "
    "ACCOUNT_EXISTS, PORTAL_NOT_ALLOWED, NO_ACCOUNT, TEMPORARY_PASSWORD_EXPIRED).",
    415: "The body is not application/json.",
    429: "Too many sign-in attempts from this address; `Retry-After` says when to try again.",
    503: "A backend service is temporarily unavailable.",
}

PATIENT_FIELD_SCHEMAS: dict[str, Schema] = {
    "first_name": string(),
    "middle_name": string(),
    "last_name": string(),
    "date_of_birth": string("YYYY-MM-DD", format="date"),
    "sex": string(enum=["female", "male", "other", "unknown"]),
    "email": string(),
    "phone": string(),
    "address": string("Free text, lines separated by newlines."),
}
CONTACT_SCHEMAS: dict[str, Schema] = {
    "preferred_contact": string(enum=["", "email", "phone", "mail"]),
    "allow_email": {"type": "boolean"},
    "allow_sms": {"type": "boolean"},
    "allow_voice": {"type": "boolean"},
}
REALM = {"type": "string", "enum": ["onsite", "offsite"]}

SCHEMAS: dict[str, Schema] = {
    "Problem": obj(
        {
            "type": string(format="uri-reference"),
            "title": string(),
            "status": {"type": "integer"},
            "detail": string(),
            "code": string("Machine-readable reason, where a client may act on it."),
            "errors": {
                "type": "object",
                "description": "Messages per request field.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        ("type", "title", "status"),
    ),
    "SignIn": closed(
        {"username": string(), "password": string(format="password")}, ("username", "password")
    ),
    "StaffUser": obj(
        {
            "id": string(format="uuid"),
            "username": string(),
            "display_name": string(),
            "role": string(enum=["admin", "clinician", "front_desk"]),
        },
        ("id", "username", "display_name", "role"),
    ),
    "StaffSession": obj(
        {
            "token": string("Send as `Authorization: Bearer <token>`."),
            "expires_at": nullable_time("When the session ends at the latest."),
            "staff": ref("StaffUser"),
        },
        ("token", "expires_at", "staff"),
    ),
    "NewPatient": closed(
        {
            **PATIENT_FIELD_SCHEMAS,
            "confirm_duplicate": {
                "type": "boolean",
                "description": "Register even though a patient with the same name and date of "
                "birth exists (otherwise 409 DUPLICATE_PATIENT).",
            },
        },
        ("first_name", "last_name", "date_of_birth", "sex"),
    ),
    "PatientChanges": closed(
        {
            **PATIENT_FIELD_SCHEMAS,
            "allow_patient_portal": {
                "type": "boolean",
                "description": "false ends every portal session of the patient.",
            },
            **CONTACT_SCHEMAS,
        }
    ),
    "PortalAccount": obj(
        {
            "username": string(),
            "must_change_password": {"type": "boolean"},
            "temporary_password_expires_at": nullable_time("When the temporary password expires."),
            "locked_until": nullable_time("Sign-in is refused until then."),
            "last_sign_in_at": nullable_time("The last successful sign-in."),
            "created_at": nullable_time("When the account was created."),
        },
        (
            "username",
            "must_change_password",
            "temporary_password_expires_at",
            "locked_until",
            "last_sign_in_at",
        ),
    ),
    "Demographics": obj(
        {
            "id": string(format="uuid"),
            "chart_number": string(),
            **PATIENT_FIELD_SCHEMAS,
            **CONTACT_SCHEMAS,
        },
        ("id", "first_name", "last_name", "date_of_birth", "sex"),
    ),
    "Patient": {
        "allOf": [
            ref("Demographics"),
            obj(
                {
                    "allow_patient_portal": {"type": "boolean"},
                    "created_at": nullable_time("When the patient was registered."),
                    "portal": obj(
                        {
                            "onsite": {"oneOf": [ref("PortalAccount"), {"type": "null"}]},
                            "offsite": {"oneOf": [ref("PortalAccount"), {"type": "null"}]},
                        },
                        ("onsite", "offsite"),
                    ),
                },
                ("allow_patient_portal", "portal"),
            ),
        ]
    },
    "PatientSummary": obj(
        {
            "id": string(format="uuid"),
            "chart_number": string(),
            "first_name": string(),
            "last_name": string(),
            "date_of_birth": string(format="date"),
            "sex": string(),
            "allow_patient_portal": {"type": "boolean"},
        },
        ("id", "first_name", "last_name", "date_of_birth"),
    ),
    "PatientList": obj({"items": {"type": "array", "items": ref("PatientSummary")}}, ("items",)),
    "CredentialsRequest": closed(
        {
            "username": string("Empty or absent: the server suggests one."),
            "password": string(
                "Empty or absent: the server generates one. Checked against the password "
                "policy (400 naming `password`).",
                format="password",
            ),
        }
    ),
    "IssuedCredentials": obj(
        {
            "patient_id": string(format="uuid"),
            "realm": REALM,
            "username": string(),
            "password": string("Shown this once; only a reset can replace it."),
            "temporary": {"type": "boolean"},
            "expires_at": nullable_time("The temporary password expires then."),
            "portal_url": string(
                "The realm's web address for the credentials letter.", format="uri"
            ),
            "patient_name": string(),
        },
        ("username", "password", "portal_url", "expires_at"),
    ),
    "ResetCredentials": obj(
        {
            "patient_id": string(format="uuid"),
            "realm": REALM,
            "username": string(),
            "temporary_password": string("Shown this once."),
            "expires_at": nullable_time("The temporary password expires then."),
            "portal_url": string(format="uri"),
            "patient_name": string(),
        },
        ("username", "temporary_password", "expires_at", "portal_url"),
    ),
    "PortalSession": obj(
        {
            "token": string("Send as `Authorization: Bearer <token>`."),
            "realm": REALM,
            "must_change_password": {
                "type": "boolean",
                "description": "true: only POST /api/v1/portal/password is allowed until the "
                "password is changed.",
            },
            "expires_at": nullable_time("When the session ends at the latest."),
        },
        ("token", "must_change_password", "expires_at"),
    ),
    "PasswordChange": closed(
        {
            "current_password": string(format="password"),
            "new_password": string(
                "12-128 characters, not the username or e-mail, not a common password, "
                "different from the current one.",
                format="password",
            ),
        },
        ("current_password", "new_password"),
    ),
    "MyProfile": {
        "allOf": [
            ref("Demographics"),
            obj(
                {"account": obj({"realm": REALM, "username": string()}, ("realm", "username"))},
                ("account",),
            ),
        ]
    },
}

PATIENT_ID = {
    "name": "patient_id",
    "in": "path",
    "required": True,
    "schema": string(format="uuid"),
}
REALM_PARAM = {"name": "realm", "in": "path", "required": True, "schema": REALM}
PUBLIC: list[dict[str, list[str]]] = []  # no session needed

PATHS: dict[str, Schema] = {
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document",
            "security": PUBLIC,
            "responses": {"200": {"description": "The OpenAPI document.", "content": {JSON: {}}}},
        }
    },
    "/api/v1/staff/sessions": {
        "post": {
            "operationId": "staffSignIn",
            "summary": "Staff sign-in: a Bearer token for the staff routes",
            "tags": ["staff"],
            "security": PUBLIC,
            "requestBody": body("SignIn"),
            "responses": {
                "201": answer("Signed in.", "StaffSession"),
                **problems(400, 401, 415, 429, 503),
            },
        }
    },
    "/api/v1/staff/sessions/current": {
        "delete": {
            "operationId": "staffSignOut",
            "summary": "End the staff session of the Bearer token",
            "tags": ["staff"],
            "responses": {"204": answer("Signed out."), **problems(401, 503)},
        }
    },
    "/api/v1/patients": {
        "post": {
            "operationId": "registerPatient",
            "summary": "Register a patient",
            "tags": ["patients"],
            "requestBody": body("NewPatient"),
            "responses": {
                "201": answer(
                    "Registered.",
                    "Patient",
                    headers={
                        "Location": {
                            "description": "The new patient's URL.",
                            "schema": string(format="uri-reference"),
                        }
                    },
                ),
                **problems(400, 401, 403, 409, 415, 503),
            },
        },
        "get": {
            "operationId": "searchPatients",
            "summary": "Find patients by name (typo-tolerant), date of birth, chart number or id",
            "tags": ["patients"],
            "parameters": [
                {"name": "q", "in": "query", "schema": string()},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
            ],
            "responses": {"200": answer("Matches.", "PatientList"), **problems(400, 401, 403, 503)},
        },
    },
    "/api/v1/patients/{patient_id}": {
        "parameters": [PATIENT_ID],
        "get": {
            "operationId": "getPatient",
            "summary": "A patient with the portal account of each realm",
            "tags": ["patients"],
            "responses": {"200": answer("The patient.", "Patient"), **problems(401, 403, 404, 503)},
        },
        "patch": {
            "operationId": "updatePatient",
            "summary": "Change the members sent (and only those)",
            "tags": ["patients"],
            "requestBody": body("PatientChanges"),
            "responses": {
                "200": answer("The changed patient.", "Patient"),
                **problems(400, 401, 403, 404, 415, 503),
            },
        },
    },
    "/api/v1/patients/{patient_id}/portal-credentials/{realm}": {
        "parameters": [PATIENT_ID, REALM_PARAM],
        "post": {
            "operationId": "issuePortalCredentials",
            "summary": "Create the realm's portal credentials (temporary password)",
            "tags": ["credentials"],
            "requestBody": body("CredentialsRequest", "Optional; may be empty.", required=False),
            "responses": {
                "201": answer("Issued; the password is in this answer only.", "IssuedCredentials"),
                **problems(400, 401, 403, 404, 409, 415, 503),
            },
        },
    },
    "/api/v1/patients/{patient_id}/portal-credentials/{realm}/reset": {
        "parameters": [PATIENT_ID, REALM_PARAM],
        "post": {
            "operationId": "resetPortalCredentials",
            "summary": "A new temporary password; ends every session of the account",
            "tags": ["credentials"],
            "responses": {
                "200": answer("Reset; the password is in this answer only.", "ResetCredentials"),
                **problems(400, 401, 403, 404, 409, 503),
            },
        },
    },
    "/api/v1/portal/{realm}/sessions": {
        "parameters": [REALM_PARAM],
        "post": {
            "operationId": "patientSignIn",
            "summary": "Patient sign-in to one realm (its credentials open only that realm)",
            "tags": ["portal"],
            "security": PUBLIC,
            "requestBody": body("SignIn"),
            "responses": {
                "201": answer("Signed in.", "PortalSession"),
                **problems(400, 401, 409, 415, 429, 503),
            },
        },
    },
    "/api/v1/portal/password": {
        "post": {
            "operationId": "changePassword",
            "summary": "Change the signed-in patient's password (also while a change is pending)",
            "description": "The session of the Bearer token ends; the new session's token is "
            "in the `X-Session-Token` header of the 204 answer.",
            "tags": ["portal"],
            "requestBody": body("PasswordChange"),
            "responses": {
                "204": {
                    "description": "Changed. Use the new token from now on.",
                    "headers": {
                        "X-Session-Token": {
                            "description": "The new session's Bearer token.",
                            "required": True,
                            "schema": string(),
                        },
                        "X-Session-Expires-At": {
                            "description": "When the new session ends at the latest.",
                            "schema": string(format="date-time"),
                        },
                    },
                },
                **problems(400, 401, 415, 503),
            },
        },
    },
    "/api/v1/portal/me": {
        "get": {
            "operationId": "getMyProfile",
            "summary": "The signed-in patient's own record",
            "tags": ["portal"],
            "responses": {
                "200": answer("The profile.", "MyProfile"),
                **problems(401, 403, 503),
            },
        },
    },
    "/api/v1/portal/sessions/current": {
        "delete": {
            "operationId": "patientSignOut",
            "summary": "End the patient session of the Bearer token",
            "tags": ["portal"],
            "responses": {"204": answer("Signed out."), **problems(401, 503)},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Patient portal API",
        "version": "1.0.0",
        "description": "Staff manage patients and portal credentials; patients sign in to a "
        "realm (onsite or offsite) and read their own record. Every error is "
        "application/problem+json (RFC 9457).",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearerAuth": []}],
    "tags": [
        {"name": "staff", "description": "Staff sessions"},
        {"name": "patients", "description": "The patient registry (staff token)"},
        {"name": "credentials", "description": "Portal credentials (staff token)"},
        {"name": "portal", "description": "The patient's own API (patient token)"},
    ],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A session token from POST /api/v1/staff/sessions or "
                "POST /api/v1/portal/{realm}/sessions.",
            }
        },
        "schemas": SCHEMAS,
        "responses": {
            name: {
                "description": PROBLEM_TEXT[status],
                "content": {PROBLEM: {"schema": ref("Problem")}},
            }
            for status, name in PROBLEMS.items()
        },
    },
}


async def document(request: web.Request) -> web.StreamResponse:
    return web.json_response(DOCUMENT)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/openapi.json", document, allow_head=False)]
