"""A profile update end to end through the real stack: the patient asks for a new phone number
on the Profile page, staff accept it on the Profile updates page, the chart shows it."""

from __future__ import annotations

import html
import re

import aiohttp

from tests.system.conftest import RunningStack
from tests.system.test_patient_portal import client, own_password, page, submit
from tests.system.test_staff_pages import Browser

NEW_PHONE = "555 0199"
DECISION_FORM = re.compile(r'action="/staff/profile-updates/([0-9a-f-]{36})/decision"')


async def signed_in_patient(stack: RunningStack, http: aiohttp.ClientSession) -> dict[str, str]:
    """A new patient signed in to the onsite portal with a password of their own."""
    patient, _ = await own_password(http, stack)
    return dict(patient)


async def test_patient_proposes_a_phone_staff_accept_and_the_chart_shows_it(
    stack: RunningStack,
) -> None:
    profile = "/portal/onsite/profile"
    async with client() as http:
        patient = await signed_in_patient(stack, http)
        await propose_phone(stack, http)
        await staff_accepts(stack, patient)
        # The patient sees the decision, the clinic's note and the new phone in the profile.
        status, text, _ = await page(http, stack.url + profile)
        assert status == 200
        assert "Accepted" in text and "Thanks, updated." in text
        assert f"<dd>{NEW_PHONE}</dd>" in text


async def propose_phone(stack: RunningStack, http: aiohttp.ClientSession) -> None:
    """Ask for a new phone on the Profile page (after a refused try)."""
    profile = "/portal/onsite/profile"
    status, text, _ = await page(http, stack.url + profile)
    assert status == 200
    assert 'for="f-phone"' in text and 'for="f-address"' in text  # labelled controls
    assert "You have not asked for any changes." in text

    # A control character is refused at the edge, beside its field.
    status, text, _ = await submit(
        http, stack, profile, profile, phone="555\x010199", email="grace@example.org"
    )
    assert status == 400 and 'id="f-phone-error"' in text

    # The form sends every field; only the phone differs from the record.
    status, _, location = await submit(
        http,
        stack,
        profile,
        profile,
        address="",
        phone=NEW_PHONE,
        email="grace@example.org",
        preferred_contact="",
    )
    assert (status, location) == (303, profile + "?notice=profile-update-sent")
    status, text, _ = await page(http, stack.url + location)
    assert "pending review" in text and "Pending review" in text
    assert f'value="{NEW_PHONE}"' in text  # the form starts from the pending request


async def staff_accepts(stack: RunningStack, patient: dict[str, str]) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        staff = Browser(http, stack.url)
        await staff.sign_in("admin", stack.admin_password)
        queue = await staff.get("/staff/profile-updates")
        assert queue.status == 200
        assert 'href="/staff/profile-updates"' in queue.text  # in the staff navigation
        name = f"{patient['first_name']} {patient['last_name']}"
        assert html.escape(name) in queue.text
        assert '<th scope="col">Current value</th>' in queue.text
        section = queue.text[queue.text.index(f'href="/staff/patients/{patient["id"]}"') :]
        assert NEW_PHONE in section
        found = DECISION_FORM.search(section)
        assert found, "no decision form for the patient"
        update_id = found[1]
        accepted = await staff.post(
            f"/staff/profile-updates/{update_id}/decision",
            {"decision": "accept", "note": "Thanks, updated."},
        )
        assert accepted.status == 200 and "Change accepted" in accepted.text
        assert f"/staff/profile-updates/{update_id}/decision" not in accepted.text

        # The chart's demographics show the new phone.
        chart = await staff.get(f"/staff/patients/{patient['id']}")
        assert f"<dt>Phone</dt><dd>{NEW_PHONE}</dd>" in chart.text

        # Deciding again is refused with identity's sentence.
        again = await staff.post(
            f"/staff/profile-updates/{update_id}/decision", {"decision": "reject"}
        )
        assert again.status == 409
        assert "This change request has already been accepted." in again.text
