"""Why identity refuses a request (FAILED_PRECONDITION): one sentence per type, for people.

The staff pages, the patient pages and the API all show the sentence as it is, so it names no
page and no API member. The types themselves (the keys) are what programs compare.
"""

from __future__ import annotations

DUPLICATE_PATIENT = (
    "A patient with the same name and date of birth already exists. Register a new patient "
    "only if this is a different person."
)
PORTAL_NOT_ALLOWED = (
    "Allow Patient Portal is No for this patient. Set it to Yes before creating or resetting "
    "portal credentials."
)
TEMPORARY_PASSWORD_EXPIRED = (
    "Your temporary password has expired. Please ask the clinic for a new one."  # noqa: S105
)


def account_exists(realm: str) -> str:
    return (
        f"The patient already has {realm} portal credentials. Reset them instead of creating "
        "them again."
    )


def no_account(realm: str) -> str:
    return f"The patient has no {realm} portal credentials yet. Create them instead."


def profile_update_decided(status: str) -> str:
    if status == "replaced":
        return (
            "The patient replaced this change request with a newer one. Decide on the newer "
            "one instead."
        )
    return f"This change request has already been {status}."


LAST_ADMIN = "At least one enabled admin must remain."
