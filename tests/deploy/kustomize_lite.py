"""Render our kustomizations without the kustomize binary (none can be installed here).

Only the subset `deploy/` uses is implemented, and anything else is refused rather than
ignored, so that a manifest cannot silently mean one thing to kustomize and another to the
tests:

* `resources` (files and folders) and `components` (a Component's resources and generators join
  the parent's, and its transformers then apply to everything gathered so far);
* `secretGenerator` / `configMapGenerator` with `literals`, only when name-suffix hashes are
  disabled (kustomize would otherwise rename the object and rewrite references to it);
* `patches`: strategic-merge patches (one document, matched by group, kind and name; lists of
  objects carrying a `name` merge by name, other lists are replaced, `null` deletes) and JSON
  6902 patches (`add`, `replace`, `remove`) with a `target` of group, version, kind and name.
  A patch that matches nothing is an error;
* `labels` (metadata and, with `includeTemplates`, pod templates; never selectors);
* `images` (`newName`, `newTag`, `digest`), `replicas`, `namespace`.

    rendered = render(Path("deploy/overlays/dev"))
    rendered.documents  # the objects, in kustomize's order
    rendered.sources    # every file that was read
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

_KINDS = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "components",
        "namespace",
        "labels",
        "images",
        "replicas",
        "patches",
        "generatorOptions",
        "secretGenerator",
        "configMapGenerator",
    }
)
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_SCALABLE = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


class KustomizeError(Exception):
    """The kustomization is broken, or uses something this renderer does not implement."""


@dataclass
class Rendered:
    documents: list[Doc]
    sources: list[Path] = field(default_factory=list)


def render(directory: Path) -> Rendered:
    """Build the kustomization in `directory`, as `kustomize build` would."""
    builder = _Builder()
    documents = builder.build(directory.resolve(), "Kustomization", [])
    return Rendered(documents, builder.sources)


def group_of(api_version: str) -> str:
    """`apps/v1` -> `apps`; `v1` -> `` (the core group)."""
    return api_version.rpartition("/")[0]


def pod_templates(doc: Doc) -> Iterator[Doc]:
    """The pod template of a workload (nothing for other kinds)."""
    if doc.get("kind") in WORKLOADS:
        template = doc.get("spec", {}).get("template")
        if isinstance(template, dict):
            yield template


def containers(doc: Doc) -> Iterator[Doc]:
    """Every container and init container of a workload's pod template."""
    for template in pod_templates(doc):
        spec = template.get("spec", {})
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


class _Builder:
    def __init__(self) -> None:
        self.sources: list[Path] = []

    def build(self, directory: Path, kind: str, gathered: list[Doc]) -> list[Doc]:
        kustomization = self._kustomization(directory, kind)
        docs = list(gathered)
        for entry in _strings(kustomization, "resources"):
            path = (directory / entry).resolve()
            if path.is_dir():
                docs += self.build(path, "Kustomization", [])
            elif path.is_file():
                docs += self._read_documents(path)
            else:
                raise KustomizeError(f"{directory}: resource {entry!r} does not exist")
        for entry in _strings(kustomization, "components"):
            path = (directory / entry).resolve()
            if not path.is_dir():
                raise KustomizeError(f"{directory}: component {entry!r} is not a folder")
            docs = self.build(path, "Component", docs)
        docs += _generate(kustomization, directory)
        for patch in kustomization.get("patches", []):
            self._patch(docs, patch, directory)
        for spec in kustomization.get("labels", []):
            _label(docs, spec)
        for spec in kustomization.get("images", []):
            _set_image(docs, spec)
        for spec in kustomization.get("replicas", []):
            _set_replicas(docs, spec)
        if "namespace" in kustomization:
            for doc in docs:
                if doc["kind"] not in CLUSTER_SCOPED:
                    doc["metadata"]["namespace"] = kustomization["namespace"]
        _check_unique(docs, directory)
        return docs

    def _kustomization(self, directory: Path, kind: str) -> Doc:
        for name in KUSTOMIZATION_FILES:
            path = directory / name
            if path.is_file():
                break
        else:
            raise KustomizeError(f"{directory}: no kustomization file")
        self.sources.append(path)
        kustomization = yaml.safe_load(path.read_text())
        if not isinstance(kustomization, dict):
            raise KustomizeError(f"{path}: not a mapping")
        if (kustomization.get("apiVersion"), kustomization.get("kind")) != (_KINDS[kind], kind):
            raise KustomizeError(f"{path}: expected apiVersion {_KINDS[kind]}, kind {kind}")
        unknown = set(kustomization) - _FIELDS
        if unknown:
            raise KustomizeError(f"{path}: not implemented here: {sorted(unknown)}")
        return kustomization

    def _read_documents(self, path: Path) -> list[Doc]:
        self.sources.append(path)
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for doc in docs:
            if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
                raise KustomizeError(f"{path}: a document without apiVersion, kind or metadata")
            if not doc["metadata"].get("name"):
                raise KustomizeError(f"{path}: a {doc['kind']} without a name")
        return docs

    def _patch(self, docs: list[Doc], spec: Doc, directory: Path) -> None:
        if set(spec) - {"path", "patch", "target"}:
            raise KustomizeError(f"{directory}: unsupported patch fields {sorted(spec)}")
        if "path" in spec:
            path = (directory / spec["path"]).resolve()
            if not path.is_file():
                raise KustomizeError(f"{directory}: patch {spec['path']!r} does not exist")
            self.sources.append(path)
            text = path.read_text()
        else:
            text = spec["patch"]
        parsed = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        if len(parsed) != 1:
            raise KustomizeError(f"{directory}: a patch must be exactly one document")
        patch = parsed[0]
        target = spec.get("target")
        if isinstance(patch, list):
            if target is None:
                raise KustomizeError(f"{directory}: a JSON 6902 patch needs a target")
            matched = [doc for doc in docs if _matches(doc, target)]
            for doc in matched:
                _json6902(doc, patch)
        else:
            if target is not None:
                raise KustomizeError(f"{directory}: targeted strategic-merge patches unsupported")
            matched = [doc for doc in docs if _same_object(doc, patch)]
            for doc in matched:
                _merge(doc, patch)
        if not matched:
            raise KustomizeError(f"{directory}: a patch matched nothing ({target or patch})")


def _strings(kustomization: Doc, key: str) -> list[str]:
    values = kustomization.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise KustomizeError(f"{key} must be a list of paths")
    return values


def _generate(kustomization: Doc, directory: Path) -> list[Doc]:
    generators = [("Secret", spec) for spec in kustomization.get("secretGenerator", [])] + [
        ("ConfigMap", spec) for spec in kustomization.get("configMapGenerator", [])
    ]
    if not generators:
        return []
    if not kustomization.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise KustomizeError(f"{directory}: name-suffix hashes are not implemented")
    docs = []
    for kind, spec in generators:
        if set(spec) - {"name", "literals", "type"}:
            raise KustomizeError(f"{directory}: unsupported generator fields {sorted(spec)}")
        pairs = dict(_literal(literal) for literal in spec.get("literals", []))
        doc: Doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
        if kind == "Secret":
            doc["type"] = spec.get("type", "Opaque")
            doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in pairs.items()}
        else:
            doc["data"] = pairs
        docs.append(doc)
    return docs


def _literal(literal: str) -> tuple[str, str]:
    key, sep, value = literal.partition("=")
    if not sep or not key:
        raise KustomizeError(f"a literal must be key=value: {literal!r}")
    return key, value


def _matches(doc: Doc, target: Doc) -> bool:
    if set(target) - {"group", "version", "kind", "name"}:
        raise KustomizeError(f"unsupported target fields {sorted(target)}")
    group, _, version = doc["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": doc["kind"]}
    actual["name"] = doc["metadata"]["name"]
    return all(actual[key] == value for key, value in target.items())


def _same_object(doc: Doc, patch: Doc) -> bool:
    return (
        group_of(doc["apiVersion"]) == group_of(patch.get("apiVersion", ""))
        and doc["kind"] == patch.get("kind")
        and doc["metadata"]["name"] == patch.get("metadata", {}).get("name")
    )


def _merge(base: Any, patch: Any) -> Any:
    """A strategic merge, simplified: see the module docstring."""
    if isinstance(base, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            if key.startswith("$"):
                raise KustomizeError(f"patch directive {key} is not implemented")
            if value is None:
                base.pop(key, None)
            elif key in base:
                base[key] = _merge(base[key], value)
            else:
                base[key] = copy.deepcopy(value)
        return base
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            if item["name"] in by_name:
                _merge(by_name[item["name"]], item)
            else:
                base.append(copy.deepcopy(item))
        return base
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _json6902(doc: Doc, operations: list[Doc]) -> None:
    for operation in operations:
        op, pointer = operation.get("op"), operation.get("path", "")
        if op not in {"add", "replace", "remove"} or not pointer.startswith("/"):
            raise KustomizeError(f"unsupported JSON patch operation {operation}")
        *parents, last = [
            part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")
        ]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op == "add":
                node.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                node[index] = copy.deepcopy(operation["value"])
            else:
                del node[index]
        else:
            if op != "add" and last not in node:
                raise KustomizeError(f"JSON patch path {pointer} does not exist")
            if op == "remove":
                del node[last]
            else:
                node[last] = copy.deepcopy(operation["value"])


def _label(docs: Iterable[Doc], spec: Doc) -> None:
    if set(spec) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise KustomizeError(f"unsupported labels fields {sorted(spec)}")
    if spec.get("includeSelectors"):
        raise KustomizeError("labels with includeSelectors are not implemented")
    pairs = spec["pairs"]
    for doc in docs:
        doc["metadata"].setdefault("labels", {}).update(pairs)
        if not spec.get("includeTemplates"):
            continue
        for template in pod_templates(doc):
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if doc["kind"] == "StatefulSet":
            for claim in doc["spec"].get("volumeClaimTemplates", []):
                claim.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`host:5000/a/b:1.2@sha256:..` -> (`host:5000/a/b`, `1.2`, `sha256:..`)."""
    name, _, digest = image.partition("@")
    repository, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        return repository, tag, digest or None
    return name, None, digest or None


def _set_image(docs: Iterable[Doc], spec: Doc) -> None:
    if set(spec) - {"name", "newName", "newTag", "digest"}:
        raise KustomizeError(f"unsupported images fields {sorted(spec)}")
    for doc in docs:
        for container in containers(doc):
            name, tag, digest = split_image(container["image"])
            if name != spec["name"]:
                continue
            image = spec.get("newName", name)
            if "digest" in spec:
                image += "@" + spec["digest"]
            elif "newTag" in spec:
                image += ":" + str(spec["newTag"])
            elif tag or digest:
                image += (":" + tag if tag else "") + ("@" + digest if digest else "")
            container["image"] = image


def _set_replicas(docs: Iterable[Doc], spec: Doc) -> None:
    matched = [
        doc for doc in docs if doc["kind"] in _SCALABLE and doc["metadata"]["name"] == spec["name"]
    ]
    if not matched:
        raise KustomizeError(f"replicas: no workload named {spec['name']!r}")
    for doc in matched:
        doc["spec"]["replicas"] = int(spec["count"])


def _check_unique(docs: Iterable[Doc], directory: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        meta = doc["metadata"]
        key = (group_of(doc["apiVersion"]), doc["kind"], meta.get("namespace", ""), meta["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)
