"""The forms API's contract in process: answer values, review decisions, signatures, and what
the document declares for the forms operations (422, the PDF's media type)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.gateway import api
from services.gateway.api import openapi
from services.gateway.api.forms_models import AnswersIn, ReviewIn, SignatureIn


@pytest.mark.parametrize(
    "value",
    [
        True,
        3,
        2.5,
        "2026-03-01",
        "two\nlines",
        None,
        "",
        {"content_type": "image/png", "data": "aGk="},
    ],
)
def test_answer_values_json_can_hold(value: Any) -> None:
    AnswersIn.model_validate({"answers": {"q1": value}})


@pytest.mark.parametrize(
    "answers",
    [
        {"q1": ["a", "b"]},  # no item takes a list
        {"q1": float("nan")},
        {"q1": 2**60},  # beyond what the signed document's JSON keeps exactly
        {"q1": {"content_type": "text/html", "data": "aGk="}},
        {"q1": {"content_type": "image/png", "data": "not base64!"}},
        {"q1": "bell\x07"},
        {"-bad": 1},
        {"x" * 65: 1},
    ],
)
def test_answers_the_service_could_not_take_are_refused(answers: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AnswersIn.model_validate({"answers": answers})


def test_a_return_needs_a_reason_and_accept_does_not() -> None:
    assert ReviewIn.model_validate({"decision": "accept"}).root.note == ""
    with pytest.raises(ValidationError):
        ReviewIn.model_validate({"decision": "return"})
    with pytest.raises(ValidationError):
        ReviewIn.model_validate({"decision": "maybe"})


def test_signing_needs_the_agreement_and_a_name() -> None:
    with pytest.raises(ValidationError):
        SignatureIn.model_validate({"typed_name": "Ada", "agree_to_electronic_signature": False})
    with pytest.raises(ValidationError):
        SignatureIn.model_validate({"typed_name": "  ", "agree_to_electronic_signature": True})
    with pytest.raises(ValidationError):
        SignatureIn.model_validate({"typed_name": "Ada", "agree_to_electronic_signature": "true"})


def test_the_document_declares_422_and_the_pdf() -> None:
    document = openapi.build(api.operations())
    forms = document["paths"]["/api/v1/portal/forms/{chart_form_id}/submit"]["post"]
    assert {"200", "404", "409", "422"} <= set(forms["responses"])
    pdf = document["paths"]["/api/v1/portal/forms/{chart_form_id}/certificate.pdf"]["get"]
    assert set(pdf["responses"]["200"]["content"]) == {"application/pdf"}
    review = document["paths"]["/api/v1/chart-forms/{chart_form_id}/review"]["post"]
    assert review["parameters"][0]["schema"]["format"] == "uuid"
    assert document["components"]["responses"]["UnprocessableContent"]
