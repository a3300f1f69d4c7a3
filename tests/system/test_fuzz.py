"""schemathesis over every /api/v1 operation of a real stack, all checks on: 0 failures.

Staff operations run with a staff token, the patient's own with a signed-in patient's token
(its password already changed); sign-out is left out (it would end the fuzzer's own session),
and so is setting the staff two-factor policy (requiring it for admins would leave the fuzzer's
admin token only the enrolment).
`make test` runs it with a fixed seed, so that CI repeats the same cases; `make fuzz` explores
with a random seed (or SEED=n) and a larger budget (PORTAL_FUZZ_SEED, PORTAL_FUZZ_SECONDS,
PORTAL_FUZZ_EXAMPLES); a failure it finds becomes a fix and, where it helps, a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

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
# Bodies whose rules span members, state or bytes no schema can state: an end after its
# start, hours of one day that do not overlap, a type name not yet taken, ids that name nothing,
# link_ids used twice in a definition, a drawn signature that is not a whole PNG image.
CROSS_CHECKED = (
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
STAFF_PATHS = (
    "patients|staff|staff-users|providers|appointment-types|availability|appointments|forms|portal-forms"
    "|chart-forms|refill-requests|letter-templates|profile-updates|work-queue|audit"
)


async def tokens(url: str, admin_password: str) -> tuple[str, str]:
    """A staff token, and the token of a signed-in patient whose password is changed."""
    async with aiohttp.ClientSession(url) as http:

        async def post(
            path: str, token: str = "", **body: object
        ) -> tuple[int, dict[str, Any], dict[str, str]]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(path, json=body or None, headers=headers) as reply:
                data = await reply.json() if reply.status != 204 else {}
                return reply.status, data, dict(reply.headers)

        _, session, _ = await post(
            "/api/v1/staff/sessions", username="admin", password=admin_password
        )
        staff = session["token"]
        _, patient, _ = await post(
            "/api/v1/patients",
            staff,
            first_name="Fuzz",
            last_name="Target",
            date_of_birth="1970-01-01",
            sex="other",
        )
        async with http.patch(
            f"/api/v1/patients/{patient['id']}",
            json={"allow_patient_portal": True},
            headers={"Authorization": f"Bearer {staff}"},
        ) as reply:
            assert reply.status == 200
        status, issued, _ = await post(
            f"/api/v1/patients/{patient['id']}/portal-credentials/onsite", staff
        )
        assert status == 201, issued
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
        return staff, headers["X-Session-Token"]


def config(url: str, staff: str, patient: str) -> str:
    blocks = [
        f'base-url = "{url}"',
        "[cache]",
        "enabled = false",  # no state left in the working tree; a seed reproduces a run
        "[generation]",
        f"max-examples = {EXAMPLES}",
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


@pytest.mark.timeout(SECONDS * 3 + 300)
def test_fuzz_every_operation(stack: RunningStack, tmp_path: Path) -> None:
    staff, patient = asyncio.run(tokens(stack.url, stack.admin_password))
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(config(stack.url, staff, patient))
    report = tmp_path / "report.json"
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
        "json",
        "--report-json-path",
        str(report),
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
        print(json.dumps(json.loads(report.read_text()).get("summary", {}))[:2000])
    assert result.returncode == 0, f"seed {SEED}\n" + summary + result.stderr[-3000:]
