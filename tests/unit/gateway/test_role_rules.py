"""How the API's validation problems read: list lengths counted in good English."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from services.gateway.api.json_io import validation_problem


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
