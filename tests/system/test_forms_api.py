"""The forms JSON API on the real stack: the portal catalog in order, consent forms reaching a
patient with portal access, answering, submitting (422 naming what is missing), eSigning (once),
staff review and verification, the certificate PDF, and patient isolation on every route.
Every JSON answer is checked against the served OpenAPI document."""

from __future__ import annotations

import base64
import re
import struct
import uuid
import zlib
from typing import Any

import pytest

from tests.integration.events import eventually
from tests.system.test_api import NEW_PASSWORD, Api, api, http, unique_letters

pytestmark = pytest.mark.system
__all__ = ["api", "http"]  # the fixtures used here: a client of its own loopback address

USER_AGENT = "FormsApiTest/1.0 (system test)"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def tiny_png() -> bytes:
    """A whole 1x1 PNG: signature, IHDR, IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


async def create_form(api: Api, staff: str, title: str, kind: str, items: list[Any]) -> str:
    status, form, headers = await api.call(
        "POST", "/api/v1/forms", staff, json={"title": title, "kind": kind, "items": items}
    )
    assert status == 201, form
    assert headers["Location"] == f"/api/v1/forms/{form['id']}"
    assert form["definition"]["title"] == title and form["version"] == 1
    return str(form["id"])


async def portal_token(api: Api, staff: str) -> tuple[str, str]:
    """A patient with portal access, signed in with the password changed: (id, token)."""
    patient, issued = await api.portal_patient(staff)
    first = await api.patient_token("onsite", issued["username"], issued["password"])
    _, _, token = await api.change_password(first, issued["password"], NEW_PASSWORD)
    assert token
    return str(patient["id"]), token


async def my_forms(api: Api, token: str) -> list[dict[str, Any]]:
    status, body, _ = await api.call("GET", "/api/v1/portal/forms", token)
    assert status == 200, body
    return list(body["items"])


async def test_forms_api_end_to_end(api: Api) -> None:
    staff = await api.staff_token()
    tag = unique_letters()
    agree = {
        "link_id": "agree",
        "text": "I agree.",
        "type": "boolean",
        "required": True,
        "agreement": True,
    }
    first = await create_form(
        api,
        staff,
        f"API consent first {tag}",
        "consent",
        [{"link_id": "read", "text": "Please read this.", "type": "display"}, agree],
    )
    second = await create_form(
        api,
        staff,
        f"API consent second {tag}",
        "consent",
        [agree, {"link_id": "remark", "text": "Anything to add?", "type": "string"}],
    )
    visit = await create_form(
        api,
        staff,
        f"API visit {tag}",
        "visit",
        [
            {"link_id": "reason", "text": "Why do you come?", "type": "text", "required": True},
            {"link_id": "days", "text": "For how many days?", "type": "integer"},
            {
                "link_id": "when",
                "text": "Morning or afternoon?",
                "type": "choice",
                "options": [{"value": "am", "display": "Morning"}, {"value": "pm"}],
            },
        ],
    )

    # The Update button: exactly these forms, in this order.
    order = [second, first, visit]
    status, listed, _ = await api.call(
        "PUT", "/api/v1/portal-forms", staff, json={"form_ids": order}
    )
    assert status == 200, listed
    portal = [(f["id"], f["position"]) for f in listed["items"] if f["available_in_portal"]]
    assert portal == [(second, 1), (first, 2), (visit, 3)]
    status, listed, _ = await api.call("GET", "/api/v1/forms", staff)
    assert status == 200
    assert [f["id"] for f in listed["items"] if f["available_in_portal"]] == order
    assert {f["kind"] for f in listed["items"] if f["id"] in order} == {"consent", "visit"}
    status, problem, _ = await api.call(
        "PUT", "/api/v1/portal-forms", staff, json={"form_ids": [first, first]}
    )
    assert status == 400 and "form_ids" in problem["errors"]

    # A patient with portal access gets the consent forms, in portal order.
    patient_id, token = await portal_token(api, staff)
    items = await eventually(lambda: my_forms(api, token), lambda f: len(f) >= 2)
    mine = [i for i in items if i["form_id"] in order]
    assert [i["form_id"] for i in mine] == [second, first]
    assert {i["status"] for i in mine} == {"not-started"} and {i["kind"] for i in mine} == {
        "consent"
    }
    by_form = {i["form_id"]: i["id"] for i in mine}

    # Staff add the visit form to the chart.
    status, added, headers = await api.call(
        "POST", f"/api/v1/patients/{patient_id}/forms", staff, json={"form_id": visit}
    )
    assert status == 201, added
    visit_cf = added["id"]
    assert headers["Location"] == f"/api/v1/chart-forms/{visit_cf}"
    status, chart, _ = await api.call("GET", f"/api/v1/patients/{patient_id}/forms", staff)
    assert status == 200 and visit_cf in {i["id"] for i in chart["items"]}

    # The visit form: save part, submit (422 naming what is missing), finish.
    base = f"/api/v1/portal/forms/{visit_cf}"
    status, form, _ = await api.call("GET", base, token)
    assert status == 200 and [i["link_id"] for i in form["items"]] == ["reason", "days", "when"]
    assert form["answers"] == {} and form["status"] == "not-started"
    status, form, _ = await api.call("PUT", base + "/answers", token, json={"answers": {"days": 3}})
    assert status == 200, form
    assert form["status"] == "in-progress" and form["answers"] == {"days": 3}
    status, problem, _ = await api.call(
        "PUT", base + "/answers", token, json={"answers": {"days": "three", "when": "noon"}}
    )
    assert status == 400 and set(problem["errors"]) == {"answers.days", "answers.when"}
    status, problem, _ = await api.call("PUT", base + "/answers", token, json={"answers": [1]})
    assert status == 400 and "answers" in problem["errors"]
    status, problem, _ = await api.call("POST", base + "/submit", token)
    assert status == 422, problem
    assert list(problem["errors"]) == ["reason"]
    answers = {"reason": "A cough.", "days": 3, "when": "am"}
    status, form, _ = await api.call("PUT", base + "/answers", token, json={"answers": answers})
    assert status == 200 and form["answers"] == answers
    status, form, _ = await api.call("POST", base + "/submit", token)
    assert status == 200 and form["status"] == "completed"
    status, problem, _ = await api.call("PUT", base + "/answers", token, json={"answers": {}})
    assert status == 409 and problem["code"] == "NOT_EDITABLE"

    # Staff return it with a reason; the patient sees it and can edit again.
    status, problem, _ = await api.call(
        "POST", f"/api/v1/chart-forms/{visit_cf}/review", staff, json={"decision": "return"}
    )
    assert status == 400 and problem["errors"]
    status, reviewed, _ = await api.call(
        "POST",
        f"/api/v1/chart-forms/{visit_cf}/review",
        staff,
        json={"decision": "return", "note": "Please say since when."},
    )
    assert status == 200 and reviewed["status"] == "returned"
    status, form, _ = await api.call("GET", base, token)
    assert form["status"] == "returned" and form["return_reason"] == "Please say since when."

    # A consent form is completed by signing it, once.
    consent = by_form[first]
    base = f"/api/v1/portal/forms/{consent}"
    status, problem, _ = await api.call("POST", base + "/submit", token)
    assert status == 409 and problem["code"] == "SIGNATURE_REQUIRED"
    png = base64.b64encode(tiny_png()).decode()
    signing = {
        "typed_name": "Ada Tester",
        "agree_to_electronic_signature": True,
        "drawn_signature_png": png,
    }
    headers = {"User-Agent": USER_AGENT}
    status, problem, _ = await api.call(
        "POST", base + "/signature", token, json=signing, headers=headers
    )
    assert status == 422 and list(problem["errors"]) == ["agree"]
    status, problem, _ = await api.call(
        "POST",
        base + "/signature",
        token,
        json={**signing, "agree_to_electronic_signature": False},
    )
    assert status == 400 and "agree_to_electronic_signature" in problem["errors"]
    status, problem, _ = await api.call(
        "POST", base + "/signature", token, json={**signing, "drawn_signature_png": "aGVsbG8="}
    )
    assert status == 400 and list(problem["errors"]) == ["agree", "drawn_signature_png"]
    status, form, _ = await api.call(
        "PUT", base + "/answers", token, json={"answers": {"agree": False}}
    )
    assert status == 200 and form["items"][1]["agreement"] is True, form
    status, problem, _ = await api.call(
        "POST", base + "/signature", token, json=signing, headers=headers
    )
    assert status == 409 and problem["code"] == "CONSENT_DECLINED", problem
    assert list(problem["errors"]) == ["agree"]
    status, form, _ = await api.call(
        "PUT", base + "/answers", token, json={"answers": {"agree": True}}
    )
    assert status == 200 and form["status"] == "in-progress"
    status, receipt, _ = await api.call(
        "POST", base + "/signature", token, json=signing, headers=headers
    )
    assert status == 201, receipt
    assert SHA256.match(receipt["document_sha256"]) and receipt["signed_at"]
    assert receipt["has_drawn_signature"] is True
    status, problem, _ = await api.call(
        "POST", base + "/signature", token, json=signing, headers=headers
    )
    assert status == 409 and problem["code"] == "ALREADY_SIGNED"
    status, problem, _ = await api.call(
        "PUT", base + "/answers", token, json={"answers": {"agree": False}}
    )
    assert status == 409 and problem["code"] == "ALREADY_SIGNED"
    status, form, _ = await api.call("GET", base, token)
    assert form["status"] == "signed" and form["signed_at"] == receipt["signed_at"]

    # Staff read the signature record (signer from the session, user agent from the header),
    # verify it and accept the form.
    status, chart_form, _ = await api.call("GET", f"/api/v1/chart-forms/{consent}", staff)
    assert status == 200
    signature = chart_form["signature"]
    assert signature["signer_kind"] == "patient" and signature["signer_id"] == patient_id
    assert signature["user_agent"] == USER_AGENT and signature["typed_name"] == "Ada Tester"
    assert signature["document_sha256"] == receipt["document_sha256"]
    assert chart_form["answers"] == {"agree": True}
    assert chart_form["definition"]["items"][0]["type"] == "display"
    status, verified, _ = await api.call(
        "GET", f"/api/v1/chart-forms/{consent}/verification", staff
    )
    assert status == 200
    assert verified["valid"] is True
    assert verified["document_sha256"] == receipt["document_sha256"]
    status, problem, _ = await api.call(
        "GET", f"/api/v1/chart-forms/{visit_cf}/verification", staff
    )
    assert status == 409 and problem["code"] == "NOT_SIGNED"
    status, reviewed, _ = await api.call(
        "POST", f"/api/v1/chart-forms/{consent}/review", staff, json={"decision": "accept"}
    )
    assert status == 200 and reviewed["status"] == "accepted"

    # The signature certificate is a PDF, as documented.
    contract = await api.contract()
    path = base + "/certificate.pdf"
    async with api.http.get(
        f"{api.stack.url}{path}", headers={"Authorization": f"Bearer {token}"}
    ) as reply:
        assert reply.status == 200
        assert reply.content_type == "application/pdf"
        assert (await reply.read()).startswith(b"%PDF-")
    documented = contract.operation("GET", path)
    assert documented is not None and "application/pdf" in documented["responses"]["200"]["content"]
    status, problem, _ = await api.call(
        "GET", f"/api/v1/portal/forms/{by_form[second]}/certificate.pdf", token
    )
    assert status == 409 and problem["code"] == "NOT_SIGNED"

    # Tokens of the wrong kind.
    status, _, _ = await api.call("GET", "/api/v1/forms", token)
    assert status == 401
    status, _, _ = await api.call("GET", "/api/v1/portal/forms", staff)
    assert status == 401

    # Patient B reaches none of A's forms, whatever the route (and learns nothing).
    _, other = await portal_token(api, staff)
    theirs = {i["id"] for i in await my_forms(api, other)}
    assert not theirs & {consent, visit_cf, by_form[second]}
    for target in (consent, visit_cf, by_form[second], str(uuid.uuid4()), "not-an-id"):
        base = f"/api/v1/portal/forms/{target}"
        for method, route, body in (
            ("GET", base, None),
            ("PUT", base + "/answers", {"answers": {"agree": True}}),
            ("POST", base + "/submit", None),
            ("POST", base + "/signature", {**signing, "drawn_signature_png": ""}),
            ("GET", base + "/certificate.pdf", None),
        ):
            status, problem, _ = await api.call(method, route, other, json=body)
            assert status == 404, (method, route, problem)
    # Nothing of A's changed.
    status, form, _ = await api.call("GET", f"/api/v1/portal/forms/{by_form[second]}", token)
    assert form["status"] == "not-started" and form["answers"] == {}
