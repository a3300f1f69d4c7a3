"""Each work-queue row's decision link opens that item, not just its kind's list."""

from __future__ import annotations

from services.gateway.staff.work_queue import decision_url
from services.gateway.work_queue import Item

PATIENT = "6f1c1f9e-7d59-4a43-9a4e-0d4b8a1f0c11"
ITEM = "0b7f5b8e-2c1e-4a57-9a0e-8f3c2f0d1a01"


def item(kind: str, status: str) -> Item:
    return Item(kind, ITEM, PATIENT, "summary", None, status)


def test_each_kind_links_to_its_item() -> None:
    assert decision_url(item("portal_booking", "booked")) == f"/staff/appointments/{ITEM}"
    assert decision_url(item("form_review", "completed")) == (
        f"/staff/patients/{PATIENT}/forms/{ITEM}"
    )
    assert decision_url(item("profile_update", "pending")) == (
        f"/staff/profile-updates#update-{ITEM}"
    )
    # The refill page filtered to the patient and the row's status, scrolled to the row.
    assert decision_url(item("refill_request", "approved")) == (
        f"/staff/refills?status=approved&patient_id={PATIENT}#refill-{ITEM}"
    )


def test_a_status_the_refill_page_does_not_filter_by_shows_every_status() -> None:
    assert decision_url(item("refill_request", "mystery")) == (
        f"/staff/refills?status=&patient_id={PATIENT}#refill-{ITEM}"
    )
    assert decision_url(item("unknown_kind", "pending")) == ""
