"""Check a response against the generated OpenAPI document: its status is documented for the
operation, and its JSON body matches that status's schema (jsonschema + referencing)."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

ROOT = "urn:portal:openapi"


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self.registry: Registry[Any] = Registry().with_resource(ROOT, resource)
        self.paths = [(self._pattern(path, item), path) for path, item in document["paths"].items()]

    @staticmethod
    def _pattern(path: str, item: dict[str, Any]) -> re.Pattern[str]:
        """The path as a regular expression; a parameter with an enum matches only its values."""
        enums = {
            parameter["name"]: parameter["schema"]["enum"]
            for operation in item.values()
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "path" and "enum" in parameter["schema"]
        }

        def part(match: re.Match[str]) -> str:
            name = match.group(1)
            return "(?:" + "|".join(map(re.escape, enums[name])) + ")" if name in enums else "[^/]+"

        return re.compile("^" + re.sub(r"\{(\w+)\}", part, path) + "$")

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        bare = path.split("?", 1)[0]
        for pattern, template in self.paths:
            if pattern.match(bare):
                found: dict[str, Any] | None = self.document["paths"][template].get(method.lower())
                return found
        return None

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        """AssertionError when the answer is not the documented one."""
        operation = self.operation(method, path)
        if operation is None:
            assert status in (404, 405), f"{method} {path}: {status} for no documented operation"
            return
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {path}: {status} is not documented"
        response = self._resolve(responses[str(status)])
        content = response.get("content", {})
        if body is None:
            assert not content, f"{method} {path}: {status} should have a body"
            return
        (media,) = content.values()
        schema = {"$ref": ROOT + media["schema"]["$ref"]} if "$ref" in media["schema"] else {}
        validator = Draft202012Validator(schema, registry=self.registry)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, f"{method} {path} {status}: {errors}"

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            section, name = node["$ref"].removeprefix("#/components/").split("/")
            node = self.document["components"][section][name]
        return node
