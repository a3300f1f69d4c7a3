"""Who may do what, as the gateway declares it: each API operation a service refuses by role
names those roles (and answers 403 ROLE_NOT_ALLOWED first); the refusal's words; page titles
hold no markup; list lengths are counted in good English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError

from services.gateway import api, staff_roles
from services.gateway.api.json_io import validation_problem
from services.gateway.staff_roles import ADMIN, AVAILABILITY, FORM_CATALOG, PRACTICE_SETUP

TEMPLATES = Path(__file__).parents[3] / "services" / "gateway" / "templates"

# Every operation whose RPC the service refuses to some staff roles (@requires(staff={...})).
ROLE_GUARDED = {
    "createProvider": PRACTICE_SETUP,
    "changeProvider": PRACTICE_SETUP,
    "createAppointmentType": PRACTICE_SETUP,
    "replaceWorkingHours": AVAILABILITY,
    "addTimeOff": AVAILABILITY,
    "setPortalForms": FORM_CATALOG,
    "createForm": FORM_CATALOG,
    "updateForm": FORM_CATALOG,
    "setVisitForms": FORM_CATALOG,
    "listStaffUsers": ADMIN,
    "createStaffUser": ADMIN,
    "updateStaffUser": ADMIN,
    "resetStaffPassword": ADMIN,
    "unlockStaffUser": ADMIN,
    "resetStaffUserMfa": ADMIN,
    "listStaffUserSessions": ADMIN,
    "revokeStaffUserSession": ADMIN,
    "getStaffMfaPolicy": ADMIN,
    "setStaffMfaPolicy": ADMIN,
    "verifyAuditLog": ADMIN,
}


def test_every_operation_a_service_refuses_by_role_declares_the_roles() -> None:
    declared = {op.operation_id: op.roles for op in api.operations() if op.roles}
    assert declared == ROLE_GUARDED


def test_a_refusal_names_the_roles_that_may() -> None:
    assert staff_roles.refusal(ADMIN) == "Only admin staff can do this."
    assert staff_roles.refusal(FORM_CATALOG) == "Only admin and clinician staff can do this."
    assert staff_roles.refusal(AVAILABILITY) == "Only admin and front desk staff can do this."
    page = staff_roles.forbidden(FORM_CATALOG)
    assert (page.status, page.reason) == (403, "Not allowed")
    assert page.text == "Only admin and clinician staff can do this."


def test_no_page_title_holds_markup() -> None:
    """The title block is the browser tab's text: a note in it shows as raw HTML there."""
    title = re.compile(r"{%-?\s*block title\s*-?%}(.*?){%-?\s*endblock", re.DOTALL)
    found = {
        str(path.relative_to(TEMPLATES)): text
        for path in TEMPLATES.rglob("*.html")
        for text in title.findall(path.read_text())
        if "<" in text
    }
    assert found == {}


class Lists(BaseModel):
    one: list[int] = Field(default=[0], min_length=1)
    two: list[int] = Field(default=[0, 0], min_length=2)
    at_most_one: list[int] = Field(default=[], max_length=1)
    at_most_two: list[int] = Field(default=[], max_length=2)


def test_list_lengths_read_in_the_singular_and_the_plural() -> None:
    with pytest.raises(ValidationError) as raised:
        Lists.model_validate({"one": [], "two": [1], "at_most_one": [1, 2], "at_most_two": [1] * 3})
    assert validation_problem(raised.value).errors == {
        "one": ["Must hold at least 1 item."],
        "two": ["Must hold at least 2 items."],
        "at_most_one": ["Must hold at most 1 item."],
        "at_most_two": ["Must hold at most 2 items."],
    }
