"""The admin audit page: filters by patient (name or chart number) and staff username, a CSV
export of the filtered rows, the hash chain's verification (page and API), and the roles of
the stack: the service's connection cannot change audit rows, a tampered row is reported."""

from __future__ import annotations

import csv
import io
import re

import aiohttp
import asyncpg
import pytest

from services.gateway.staff.admin import csv_cell
from services.runtime.verify_audit import check
from tests.system.conftest import RunningStack
from tests.system.test_api import Api, http
from tests.system.test_staff_pages import (
    CHART_LINK,
    Browser,
    add_patient,
    admin,
    browser,
    unique_last_name,
)

__all__ = ["admin", "browser", "http"]  # fixtures used here
CHART = re.compile(r">Chart (\d+)</a>")


async def test_the_audit_log_filters_by_patient_name_and_chart_number(admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Otto", last)
    await admin.get(f"/staff/patients/{patient_id}")
    await admin.get("/staff/admin/audit")
    by_name = await admin.post("/staff/admin/audit", {"patient": f"otto {last.lower()}"})
    assert by_name.status == 200
    assert "patient.read" in by_name.text and "patient.register" in by_name.text
    assert set(CHART_LINK.findall(by_name.text)) == {patient_id}
    assert last not in by_name.url  # the name travels in the body, never the address
    (chart,) = set(CHART.findall(by_name.text))
    by_chart = await admin.post("/staff/admin/audit", {"patient": chart})
    assert set(CHART_LINK.findall(by_chart.text)) == {patient_id}
    nobody = await admin.post("/staff/admin/audit", {"patient": unique_last_name()})
    assert "No events match." in nobody.text


async def test_the_audit_log_filters_by_staff_username(admin: Browser) -> None:
    page = await admin.post("/staff/admin/audit", {"staff": "ADMIN", "action": "auth"})
    assert page.status == 200 and "auth.staff_sign_in" in page.text
    assert "anonymous" not in page.text
    other = await admin.post("/staff/admin/audit", {"staff": "no-such-user"})
    assert "No events match." in other.text


async def test_the_filtered_rows_export_as_csv(admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Erna", last)
    await admin.get(f"/staff/patients/{patient_id}")
    await admin.get("/staff/admin/audit")
    await admin.post("/staff/admin/audit.csv", {"patient": last})
    assert "attachment" in admin.last_headers["Content-Disposition"]
    assert admin.last_headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(admin.last_body.decode("utf-8"))))
    assert {r["action"] for r in rows} >= {"patient.register", "patient.read"}
    assert {r["patient_id"] for r in rows} == {patient_id}
    assert {r["patient_name"] for r in rows} == {f"{last}, Erna"}


def test_csv_cells_cannot_start_a_formula() -> None:
    for dangerous in ("=HYPERLINK(1)", "+1", "-2+3", "@SUM(A1)", "\tx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("Lovelace") == "Lovelace"


async def test_verify_audit_log_on_the_page_and_in_the_api(
    admin: Browser, stack: RunningStack, http: aiohttp.ClientSession
) -> None:
    await admin.get("/staff/admin/audit")
    page = await admin.post("/staff/admin/audit/verify")
    assert page.status == 200 and "Audit log verified: valid." in page.text
    api = Api(http, stack)
    token = await api.staff_token()
    status, body, _ = await api.call("GET", "/api/v1/audit/verification", token)
    assert status == 200 and body["valid"] is True and body["rows"] > 0, body
    assert body.get("first_broken") is None


# Last in the module: it breaks the stack's audit chain.
async def test_the_service_role_cannot_change_rows_and_tampering_is_reported(
    stack: RunningStack, http: aiohttp.ClientSession
) -> None:
    env = stack.stack.child_env("identity")
    service = await asyncpg.connect(env["PORTAL_DATABASE_URL"])
    try:
        for statement in (
            "UPDATE audit_log SET detail = 'x'",
            "DELETE FROM audit_log",
            "DROP TRIGGER audit_log_append_only ON audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service.execute(statement)
    finally:
        await service.close()
    urls = [stack.stack.child_env(n)["PORTAL_MIGRATION_DATABASE_URL"] for n in ("identity",)]
    assert await check(urls) == 0
    owner = await asyncpg.connect(env["PORTAL_MIGRATION_DATABASE_URL"])
    try:
        target = await owner.fetchval("SELECT min(id) + 1 FROM audit_log")
        async with owner.transaction():
            await owner.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            await owner.execute("UPDATE audit_log SET outcome = 'edited' WHERE id = $1", target)
            await owner.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    finally:
        await owner.close()
    assert await check(urls) == 1
    api = Api(http, stack)
    status, body, _ = await api.call("GET", "/api/v1/audit/verification", await api.staff_token())
    assert status == 200 and body["valid"] is False and body["first_broken"] == target, body
