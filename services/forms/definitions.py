"""Form definitions: items after FHIR Questionnaire, checked before they are stored.

A definition is stored as JSON (form_versions.items); `Item.to_json`/`Item.from_json` are the
only way in and out, so stored rows and requests share one shape.

An `agreement` item is the yes/no question of a consent form that states what the signer agrees
to: the form is signed only when every such item that is shown is answered Yes (a consent the
patient declines is never recorded as a signed consent).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.runtime.errors import FieldErrors
from services.runtime.text import TextError, clean

Json = Any  # a value json.loads returns

KINDS = ("consent", "visit", "appointment", "refill")
ITEM_TYPES = (
    "group",
    "display",
    "boolean",
    "decimal",
    "integer",
    "date",
    "dateTime",
    "time",
    "string",
    "text",
    "choice",
    "open-choice",
    "attachment",
)
NO_ANSWER_TYPES = frozenset({"group", "display"})
CHOICE_TYPES = frozenset({"choice", "open-choice"})
OPERATORS = ("exists", "=", "!=", ">", "<", ">=", "<=")
LINK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_ITEMS = 500
MAX_TEXT = 4000
MAX_TITLE = 200


@dataclass(frozen=True)
class Option:
    value: str
    display: str = ""

    @property
    def label(self) -> str:
        return self.display or self.value


@dataclass(frozen=True)
class Condition:
    question: str
    operator: str
    answer: Json = True


@dataclass(frozen=True)
class Item:
    link_id: str
    text: str
    type: str
    required: bool = False
    options: tuple[Option, ...] = ()
    help_text: str = ""
    items: tuple[Item, ...] = ()
    enable_when: tuple[Condition, ...] = ()
    enable_when_any: bool = False
    agreement: bool = False  # a consent form's yes/no question that signing needs answered Yes

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {"link_id": self.link_id, "text": self.text, "type": self.type}
        if self.required:
            out["required"] = True
        if self.options:
            out["options"] = [{"value": o.value, "display": o.display} for o in self.options]
        if self.help_text:
            out["help_text"] = self.help_text
        if self.items:
            out["items"] = [child.to_json() for child in self.items]
        if self.enable_when:
            out["enable_when"] = [
                {"question": c.question, "operator": c.operator, "answer": c.answer}
                for c in self.enable_when
            ]
        if self.enable_when_any:
            out["enable_when_any"] = True
        if self.agreement:
            out["agreement"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> Item:
        return cls(
            link_id=data["link_id"],
            text=data.get("text", ""),
            type=data["type"],
            required=bool(data.get("required", False)),
            options=tuple(
                Option(o["value"], o.get("display", "")) for o in data.get("options", ())
            ),
            help_text=data.get("help_text", ""),
            items=tuple(cls.from_json(child) for child in data.get("items", ())),
            enable_when=tuple(
                Condition(c["question"], c["operator"], c.get("answer"))
                for c in data.get("enable_when", ())
            ),
            enable_when_any=bool(data.get("enable_when_any", False)),
            agreement=bool(data.get("agreement", False)),
        )


@dataclass(frozen=True)
class Definition:
    title: str
    kind: str
    items: tuple[Item, ...]
    description: str = ""

    def items_json(self) -> list[dict[str, Json]]:
        return [item.to_json() for item in self.items]


def items_from_json(data: list[dict[str, Json]]) -> tuple[Item, ...]:
    return tuple(Item.from_json(item) for item in data)


def walk(items: tuple[Item, ...]) -> Iterator[Item]:
    """Every item, depth first, groups before their children."""
    for item in items:
        yield item
        yield from walk(item.items)


def question_items(items: tuple[Item, ...]) -> dict[str, Item]:
    """The items that take an answer, by link_id."""
    return {i.link_id: i for i in walk(items) if i.type not in NO_ANSWER_TYPES}


@dataclass
class _Checker:
    errors: FieldErrors = field(default_factory=dict)

    def add(self, where: str, message: str) -> None:
        self.errors.setdefault(where, []).append(message)

    def text(self, where: str, value: str, *, limit: int, multiline: bool = False) -> str:
        try:
            value = clean(value, multiline=multiline).strip()
        except TextError as exc:
            self.add(where, str(exc))
            return value
        if len(value) > limit:
            self.add(where, f"Must be at most {limit} characters.")
        return value


def validate(definition: Definition) -> tuple[Definition, FieldErrors]:
    """The definition with its text cleaned, and what is wrong with it (field -> messages)."""
    check = _Checker()
    title = check.text("title", definition.title, limit=MAX_TITLE)
    if not title:
        check.add("title", "Enter a title.")
    if definition.kind not in KINDS:
        check.add("kind", "Kind must be consent, visit, appointment or refill.")
    description = check.text("description", definition.description, limit=MAX_TEXT, multiline=True)
    if not definition.items:
        check.add("items", "A form needs at least one item.")
    seen: set[str] = set()
    items = tuple(
        _item(check, f"items[{n}]", item, seen) for n, item in enumerate(definition.items)
    )
    if definition.kind != "consent":
        for item in walk(items):
            if item.agreement:
                check.add(item.link_id, "Only consent forms have an agreement question.")
    if len(seen) > MAX_ITEMS:
        check.add("items", f"A form has at most {MAX_ITEMS} items.")
    answerable = question_items(items)
    for item in walk(items):
        for condition in item.enable_when:
            target = answerable.get(condition.question)
            if target is None or target.link_id == item.link_id:
                check.add(
                    item.link_id, f"enable_when refers to no question {condition.question!r}."
                )
    cleaned = Definition(title=title, kind=definition.kind, items=items, description=description)
    return cleaned, check.errors


def _item(check: _Checker, where: str, item: Item, seen: set[str]) -> Item:
    if not LINK_ID.match(item.link_id):
        check.add(where, "link_id: letters, digits, '.', '_' or '-', at most 64.")
    elif item.link_id in seen:
        check.add(where, f"link_id {item.link_id!r} is used twice.")
    seen.add(item.link_id)
    if item.type not in ITEM_TYPES:
        check.add(where, f"Unknown item type {item.type!r}.")
    text = check.text(where, item.text, limit=MAX_TEXT, multiline=True)
    if not text and item.type != "group":
        check.add(where, "Enter the item's text.")
    help_text = check.text(where, item.help_text, limit=MAX_TEXT, multiline=True)
    if item.required and item.type in NO_ANSWER_TYPES:
        check.add(where, f"A {item.type} item cannot be required.")
    if item.agreement and item.type != "boolean":
        check.add(where, "Only a yes/no (boolean) item can be the agreement.")
    if item.type in CHOICE_TYPES and not item.options:
        check.add(where, "A choice item needs options.")
    if item.options and item.type not in CHOICE_TYPES:
        check.add(where, "Only choice items have options.")
    options = tuple(
        Option(
            check.text(where, o.value, limit=200),
            check.text(where, o.display, limit=MAX_TITLE),
        )
        for o in item.options
    )
    values = [o.value for o in options]
    if any(not v for v in values) or len(set(values)) != len(values):
        check.add(where, "Options need distinct, non-empty values.")
    if item.type == "group" and not item.items:
        check.add(where, "A group needs items.")
    if item.items and item.type != "group":
        check.add(where, "Only groups have child items.")
    for condition in item.enable_when:
        if condition.operator not in OPERATORS:
            check.add(where, f"Unknown enable_when operator {condition.operator!r}.")
    children = tuple(
        _item(check, f"{where}.items[{n}]", child, seen) for n, child in enumerate(item.items)
    )
    return Item(
        link_id=item.link_id,
        text=text,
        type=item.type,
        required=item.required,
        options=options,
        help_text=help_text,
        items=children,
        enable_when=item.enable_when,
        enable_when_any=item.enable_when_any,
        agreement=item.agreement,
    )
