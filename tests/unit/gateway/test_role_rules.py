"""Page templates and the API's validation problems: titles hold no markup, list lengths are
counted in good English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError

from services.gateway.api.json_io import validation_problem

TEMPLATES = Path(__file__).parents[3] / "services" / "gateway" / "templates"


def test_no_page_title_holds_markup() -> None:
    """The title block is the browser tab's text: a note in it shows as raw HTML there."""
    title = re.compile(r"{%-?\s*block title\s*-?%}(.*?){%-?\s*endblock", re.DOTALL)
    found = {
        str(path.relative_to(TEMPLATES)): text
        for path in TEMPLATES.rglob("*.html")
        for text in title.findall(path.read_text())
        if "<" in text
    }
    assert found == {}


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
