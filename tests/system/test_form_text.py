"""The text rule guards the staff and patient HTML forms (issue 6, item 2): through the real
gateway and identity, a control character re-renders the form with a 400 beside the field and
nothing reaches the database."""

from __future__ import annotations

import html
import re

import asyncpg
import pytest

from services.runtime.db import with_database
from services.runtime.text import CONTROL_MESSAGE
from tests.system.conftest import RunningStack
from tests.system.test_staff_pages import Browser, add_patient, input_value, unique_last_name
from tests.system.test_staff_pages import admin as admin  # the fixtures
from tests.system.test_staff_pages import browser as browser


async def _patients_named(pg_server_url: str, stack: RunningStack, last_name: str) -> int:
    conn = await asyncpg.connect(with_database(pg_server_url, stack.stack.database("identity")))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM patients WHERE last_name LIKE $1 || '%'", last_name
            )
        )
    finally:
        await conn.close()


def _field_errors(text: str, name: str) -> list[str]:
    """The messages shown beside the field `name` (macros.field's error list)."""
    found = re.search(rf'<ul class="field-errors" id="f-{name}-error">(.*?)</ul>', text, re.S)
    if not found:
        return []
    return [
        html.unescape(m).strip()
        for m in re.findall(r'<span class="visually-hidden">Error:</span>([^<]*)</li>', found[1])
    ]


async def test_a_nul_in_the_last_name_is_a_400_beside_the_field_and_registers_nobody(
    admin: Browser, stack: RunningStack, pg_server_url: str
) -> None:
    last = unique_last_name()
    await admin.get("/staff/patients/new")
    page = await admin.post(
        "/staff/patients/new",
        {
            "first_name": "Ada",
            "last_name": f"{last}\x00",
            "date_of_birth": "1980-04-23",
            "sex": "female",
        },
        follow=False,
    )
    assert page.status == 400, page.text[:1000]
    assert _field_errors(page.text, "last_name") == [CONTROL_MESSAGE]
    assert _field_errors(page.text, "first_name") == []
    assert "\x00" not in page.text and "&#0;" not in page.text
    assert input_value(page, "last_name") == last  # shown again, without the NUL
    assert await _patients_named(pg_server_url, stack, last) == 0


async def test_free_text_keeps_its_lines_and_names_are_stored_in_nfc(
    admin: Browser, stack: RunningStack, pg_server_url: str
) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Zoe\u0308", last)  # e + combining diaeresis
    page = await admin.get(f"/staff/patients/{patient_id}/demographics?tab=contact")
    page = await admin.post(
        f"/staff/patients/{patient_id}/demographics?tab=contact",
        {"email": "", "phone": "", "address": "1 Main Street\r\nLondon"},
        follow=False,
    )
    assert page.status == 303, page.text[:1000]
    conn = await asyncpg.connect(with_database(pg_server_url, stack.stack.database("identity")))
    try:
        row = await conn.fetchrow(
            "SELECT first_name, address FROM patients WHERE id = $1::uuid", patient_id
        )
    finally:
        await conn.close()
    assert row is not None and (row["first_name"], row["address"]) == (
        "Zoë",
        "1 Main Street\nLondon",
    )
    # A control character other than newline and tab is refused in free text too.
    page = await admin.post(
        f"/staff/patients/{patient_id}/demographics?tab=contact",
        {"email": "", "phone": "", "address": "1 Main Street\x0bLondon"},
    )
    assert page.status == 400
    assert _field_errors(page.text, "address") == [CONTROL_MESSAGE]


@pytest.mark.parametrize("field", ["username", "password"])
async def test_staff_sign_in_refuses_control_characters_and_never_echoes_a_password(
    browser: Browser, stack: RunningStack, field: str
) -> None:
    sent = {"username": "admin", "password": stack.admin_password}
    sent[field] += "\x07"
    await browser.get("/staff/login")
    page = await browser.post("/staff/login", sent, follow=False)
    assert page.status == 400
    assert _field_errors(page.text, field) == [CONTROL_MESSAGE]
    assert stack.admin_password not in page.text
    signed_in = await browser.get("/staff/patients", follow=False)
    assert (signed_in.status, signed_in.url) == (303, "/staff/login")


async def test_patient_sign_in_refuses_control_characters_and_never_echoes_a_password(
    browser: Browser,
) -> None:
    await browser.get("/portal/onsite/login")
    page = await browser.post(
        "/portal/onsite/login", {"username": "ada\x00", "password": "Secret-Password-1\x1b"}
    )
    assert page.status == 400
    assert _field_errors(page.text, "username") == [CONTROL_MESSAGE]
    assert _field_errors(page.text, "password") == [CONTROL_MESSAGE]
    assert "Secret-Password-1" not in page.text
    assert input_value(page, "username") == "ada"
