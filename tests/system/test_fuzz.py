"""schemathesis over every /api/v1 operation of a real stack, all checks on: 0 failures.

Staff operations run with a staff token, the patient's own with a signed-in patient's token
(its password already changed); sign-out is left out (it would end the fuzzer's own session),
and so is setting the staff two-factor policy (requiring it for admins would leave the fuzzer's
admin token only the enrolment). Staff operations on a patient (`/patients/{patient_id}/...`)
always name a decoy patient with credentials in both realms: the fuzzer finds the signed-in
patient's id in staff lists (their refills, bookings, profile updates), and a credentials
reset or withdrawn portal access there would end the session every patient operation needs.
The run fails unless that session outlives it and patient operations got past sign-in (a
401 only from schemathesis's invalid-token probe).
`make test` runs it with a fixed seed, so that CI repeats the same cases; `make fuzz` explores
with a random seed (or SEED=n) and a larger budget (PORTAL_FUZZ_SEED, PORTAL_FUZZ_SECONDS,
PORTAL_FUZZ_EXAMPLES); a failure it finds becomes a fix and, where it helps, a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from services.gateway import api
from tests.system.conftest import RunningStack

# A stack of its own: the fuzzer's data, sign-ins and clinic-wide changes stay out of the
# shared stack the other modules use.
pytestmark = [pytest.mark.system, pytest.mark.private_stack]

NEW_PASSWORD = "Juniper-Kettle-Morning-42"
EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("PORTAL_FUZZ_SEED") or "20261128"
SECONDS = int(os.environ.get("PORTAL_FUZZ_SECONDS", "60"))  # the whole run's time budget
# Operations whose valid-looking bodies the server may still refuse with 400 for reasons no
# schema can state: a password policy (common passwords, the username inside it) and the
# current password itself; and an upload's type, read from the file's bytes.
POLICY_CHECKED = ("changeMyPassword", "issuePortalCredentials", "addDocument")
# Requests whose rules span members, state or bytes no schema can state: an end (or a `to`)
# after its start, hours of one day that do not overlap, a type name not yet taken, ids that
# name nothing, link_ids used twice in a definition, a drawn signature that is not a whole PNG
# image.
CROSS_CHECKED = (
    "listAppointments",
    "replaceWorkingHours",
    "addTimeOff",
    "createAppointmentType",
    "createForm",
    "updateForm",
    "setPortalForms",
    "setVisitForms",
    "assignPatientForm",
    "signMyForm",
)
PATIENT_OPERATIONS = ("signMyForm",)
PROBES = 2  # 401s a patient operation may get from schemathesis's invalid-token probes
STAFF_PATHS = (
    "patients|staff|staff-users|providers|appointment-types|availability|appointments|forms|portal-forms"
    "|chart-forms|refill-requests|letter-templates|profile-updates|work-queue|audit"
)


@dataclass(frozen=True)
class Tokens:
    staff: str
    patient: str  # the session every patient operation runs with
    decoy_id: str  # the patient every staff operation on a patient names instead


async def tokens(url: str, admin_password: str) -> Tokens:
    """A staff token, the token of a signed-in patient whose password is changed, and a decoy
    patient with portal credentials in both realms (so resets, MFA resets and portal access
    changes find an account to act on)."""
    async with aiohttp.ClientSession(url) as http:

        async def post(
            path: str, token: str = "", **body: object
        ) -> tuple[int, dict[str, Any], dict[str, str]]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(path, json=body or None, headers=headers) as reply:
                data = await reply.json() if reply.status != 204 else {}
                return reply.status, data, dict(reply.headers)

        async def portal_patient(staff: str, last_name: str, realms: tuple[str, ...]) -> Any:
            _, patient, _ = await post(
                "/api/v1/patients",
                staff,
                first_name="Fuzz",
                last_name=last_name,
                date_of_birth="1970-01-01",
                sex="other",
            )
            async with http.patch(
                f"/api/v1/patients/{patient['id']}",
                json={"allow_patient_portal": True},
                headers={"Authorization": f"Bearer {staff}"},
            ) as reply:
                assert reply.status == 200
            issued: dict[str, Any] = {}
            for realm in realms:
                status, issued, _ = await post(
                    f"/api/v1/patients/{patient['id']}/portal-credentials/{realm}", staff
                )
                assert status == 201, issued
            return patient, issued

        _, session, _ = await post(
            "/api/v1/staff/sessions", username="admin", password=admin_password
        )
        staff = session["token"]
        _, issued = await portal_patient(staff, "Target", ("onsite",))
        decoy, _ = await portal_patient(staff, "Decoy", ("onsite", "offsite"))
        _, grant, _ = await post(
            "/api/v1/portal/onsite/sessions",
            username=issued["username"],
            password=issued["password"],
        )
        status, _, headers = await post(
            "/api/v1/portal/password",
            grant["token"],
            current_password=issued["password"],
            new_password=NEW_PASSWORD,
        )
        assert status == 204
        return Tokens(staff, headers["X-Session-Token"], decoy["id"])


def config(url: str, staff: str, patient: str, decoy_id: str) -> str:
    blocks = [
        f'base-url = "{url}"',
        "[cache]",
        "enabled = false",  # no state left in the working tree; a seed reproduces a run
        "[generation]",
        f"max-examples = {EXAMPLES}",
        # A fixed value wins in every phase, over generated ids and ids taken from answers.
        "[parameters]",
        f'"path.patient_id" = "{decoy_id}"',
    ]
    for operation_id, token in (
        ("changeMyPassword", patient),
        ("issuePortalCredentials", staff),
        ("addDocument", staff),
        ("changeStaffPassword", staff),
        ("createStaffUser", staff),  # a username taken or refused by the username policy
    ):
        blocks += [
            "[[operations]]",
            f'include-operation-id = "{operation_id}"',
            f'headers = {{ Authorization = "Bearer {token}" }}',
            "[operations.checks.positive_data_acceptance]",
            'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]',
        ]
    for operation_id in CROSS_CHECKED:
        token = patient if operation_id in PATIENT_OPERATIONS else staff
        blocks += [
            "[[operations]]",
            f'include-operation-id = "{operation_id}"',
            f'headers = {{ Authorization = "Bearer {token}" }}',
            "[operations.checks.positive_data_acceptance]",
            'expected-statuses = ["2xx", "400", "401", "403", "404", "409"]',
        ]
    blocks += [
        "[[operations]]",
        'include-path-regex = "^/api/v1/portal/"',  # the patient's own operations
        f'headers = {{ Authorization = "Bearer {patient}" }}',
        "[[operations]]",
        f'include-path-regex = "^/api/v1/({STAFF_PATHS})"',
        f'headers = {{ Authorization = "Bearer {staff}" }}',
    ]
    return "\n".join(blocks) + "\n"


def patient_operations() -> dict[str, re.Pattern[str]]:
    """The operations a patient session calls (sign-out excluded), by id: their path pattern."""
    found = {}
    for op in api.operations():
        if op.security in ("patient", "pending-patient") and op.operation_id != "patientSignOut":
            # aiohttp's {name} and {name:regex} both stand for one path segment here.
            pattern = re.sub(r"\{[^}]*\}", "[^/]+", op.path)
            found[op.operation_id] = re.compile(f"{op.method} {pattern}")
    return found


def patient_answers(har: Path) -> dict[str, Counter[int]]:
    """The statuses each patient operation was answered with, from the run's HAR file (requests
    without an Authorization header, schemathesis's no-credentials probes, are left out)."""
    operations = patient_operations()
    answers: dict[str, Counter[int]] = {op: Counter() for op in operations}
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request = entry["request"]
        if not any(h["name"].lower() == "authorization" for h in request["headers"]):
            continue
        line = f"{request['method']} {urlsplit(request['url']).path}"
        for operation_id, pattern in operations.items():
            if pattern.fullmatch(line):
                answers[operation_id][entry["response"]["status"]] += 1
                break
    return answers


async def session_alive(url: str, token: str) -> bool:
    async with (
        aiohttp.ClientSession(url) as http,
        http.get("/api/v1/portal/me", headers={"Authorization": f"Bearer {token}"}) as reply,
    ):
        return reply.status == 200


def test_patient_operations_are_matched() -> None:
    """The HAR count below sees each patient operation (a pattern that matched nothing would let
    a run where patients only got 401 pass)."""
    operations = patient_operations()
    assert {"getMyProfile", "saveMyAnswers", "changeMyPassword", "requestRefill"} <= set(operations)
    assert "listForms" not in operations and "patientSignOut" not in operations
    assert operations["saveMyAnswers"].fullmatch("PUT /api/v1/portal/forms/abc/answers")
    assert not operations["getMyProfile"].fullmatch("GET /api/v1/portal/me/x")


@pytest.mark.timeout(SECONDS * 3 + 300)
def test_fuzz_every_operation(stack: RunningStack, tmp_path: Path) -> None:
    given = asyncio.run(tokens(stack.url, stack.admin_password))
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(config(stack.url, given.staff, given.patient, given.decoy_id))
    report, har = tmp_path / "report.json", tmp_path / "run.har"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(settings),
        "run",
        f"{stack.url}/api/v1/openapi.json",
        "--checks",
        "all",
        "--exclude-operation-id",
        "staffSignOut",
        "--exclude-operation-id",
        "patientSignOut",
        "--exclude-operation-id",
        "setStaffMfaPolicy",
        "--report",
        "json,har",
        "--report-json-path",
        str(report),
        "--report-har-path",
        str(har),
        "--max-time",
        str(SECONDS),
        "--workers",
        "2",
        "--no-color",
    ]
    if SEED:
        command += ["--seed", SEED]
    started = time.monotonic()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=SECONDS * 3 + 120, check=False
    )
    elapsed = time.monotonic() - started
    summary = result.stdout[-20000:]
    print(summary, f"\nfuzz step: {elapsed:.1f} s, seed {SEED} (make fuzz SEED={SEED} repeats it)")
    if report.exists():
        document = json.loads(report.read_text())
        print(json.dumps({k: document.get(k) for k in ("operations", "test_cases")}))
    assert result.returncode == 0, f"seed {SEED}\n" + summary + result.stderr[-3000:]
    answers = patient_answers(har)
    print("patient operations:", {op: dict(counts) for op, counts in answers.items()})
    # The patient's session outlived the run: no staff operation reached this patient.
    assert asyncio.run(session_alive(stack.url, given.patient)), f"seed {SEED}: session ended"
    called = {op: counts for op, counts in answers.items() if counts}
    assert len(called) >= len(answers) // 2, f"seed {SEED}: few patient operations ran: {called}"
    # A 401 with a token is schemathesis's invalid-token probe (once per operation and run);
    # more mean the session had ended, and the operation was no longer exercised.
    refused = {op: counts[401] for op, counts in called.items() if counts[401] > PROBES}
    assert not refused, f"seed {SEED}: patient operations answered 401: {refused}"
