"""A refusal with thousands of field errors still fits gRPC's metadata cap (found by fuzzing:
a form with 500 bad items came back RESOURCE_EXHAUSTED, then 429, instead of 400)."""

from __future__ import annotations

import base64

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from services.runtime.errors import DETAILS_BUDGET, _within_budget

Violation = error_details_pb2.BadRequest.FieldViolation


def test_thousands_of_violations_are_cut_to_the_budget_and_say_how_many_more() -> None:
    violations = [
        Violation(field=f"items[{n}].link_id", description="Link ids must be unique in a form.")
        for n in range(2000)
    ]
    kept = _within_budget(violations)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=kept))
    trailer = base64.b64encode(status_pb2.Status(code=3, details=[detail]).SerializeToString())
    assert len(trailer) < 8192  # gRPC's soft limit for all trailing metadata
    assert kept[:-1] == violations[: len(kept) - 1]
    more = len(violations) - (len(kept) - 1)
    assert kept[-1].description == f"And {more} more problems like these."
    assert kept[-1].field == violations[len(kept) - 1].field
    assert sum(v.ByteSize() + 4 for v in kept[:-1]) <= DETAILS_BUDGET


def test_a_few_violations_pass_unchanged() -> None:
    violations = [Violation(field="title", description="Enter a title.")] * 3
    assert _within_budget(violations) == violations
