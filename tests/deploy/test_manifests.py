"""Offline checks of the Kubernetes manifests under deploy/.

Each overlay is rendered with the small kustomize in `kustomize_lite` (no kustomize or kubectl
binary is needed), every object is validated against the Kubernetes schemas that
kubernetes-validate ships, and the properties the design asks for are asserted: hardened
containers, native gRPC probes, selectors that meet, NetworkPolicies that let each gRPC service
hear only the gateway, no secret values outside the dev overlay, and every setting wired.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from services.runtime.nats_users import authorization
from services.runtime.principal_keys import load_public_keys, load_signing_key

from .kustomize_lite import Doc, Rendered, containers, pod_templates, render, split_image

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# The oldest Kubernetes the manifests need (the preStop `sleep` handler is on by default from
# 1.30) and a recent one; both schemas ship with kubernetes-validate.
KUBERNETES_VERSIONS = ("1.30", "1.33")

ENVIRONMENTS = ("dev", "prod")
OVERLAYS = ("overlays/dev", "overlays/prod")
TARGETS = ("base", *OVERLAYS)

GRPC_SERVICES = {
    "identity": (50051, "portal.identity.v1.IdentityService"),
    "forms": (50052, "portal.forms.v1.FormsService"),
    "scheduling": (50053, "portal.scheduling.v1.SchedulingService"),
}
GATEWAY_PORT = 8080
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - pods listen on their own network namespace's address
COMPONENTS = (*GRPC_SERVICES, "gateway")

# Custom resources, which kubernetes-validate has no schema for; checked field by field below.
CUSTOM_KINDS = {("postgresql.cnpg.io/v1", "Cluster")}

# The secrets contract (deploy/README.md): what prod must create before `kubectl apply -k`.
PORTAL_SECRET = "portal-secrets"
PORTAL_SECRET_KEYS = {
    "principal-private-key",
    "principal-public-keys",
    "gateway-secret",
    "admin-password",
    *(f"{name}-database-url" for name in GRPC_SERVICES),
    *(f"{name}-migration-database-url" for name in GRPC_SERVICES),
    *(f"{name}-nats-password" for name in GRPC_SERVICES),
}
# The database owners (initdb) and the services' runtime roles (managed roles).
OWNER_SECRETS = {f"{name}-db-{who}" for name in GRPC_SERVICES for who in ("owner", "app")}
OWNER_SECRET_KEYS = {"username", "password"}

# The services' default PORTAL_SHUTDOWN_GRACE (services/runtime/settings.py), in seconds.
SHUTDOWN_GRACE = 20

# Field names of CloudNativePG's Cluster (postgresql.cnpg.io/v1), to catch typos.
CLUSTER_SPEC_FIELDS = {
    "affinity", "backup", "bootstrap", "certificates", "description", "enablePDB",
    "enableSuperuserAccess", "env", "envFrom", "ephemeralVolumeSource",
    "ephemeralVolumesSizeLimit", "externalClusters", "failoverDelay", "imageCatalogRef",
    "imageName", "imagePullPolicy", "imagePullSecrets", "inheritedMetadata", "instances",
    "livenessProbeTimeout", "logLevel", "managed", "maxSyncReplicas", "minSyncReplicas",
    "monitoring", "nodeMaintenanceWindow", "plugins", "podSecurityContext", "postgresGID",
    "postgresUID", "postgresql", "primaryUpdateMethod", "primaryUpdateStrategy",
    "priorityClassName", "probes", "projectedVolumeTemplate", "replica", "replicationSlots",
    "resources", "schedulerName", "seccompProfile", "securityContext", "serviceAccountTemplate",
    "smartShutdownTimeout", "startDelay", "stopDelay", "storage", "superuserSecret",
    "switchoverDelay", "tablespaces", "topologySpreadConstraints", "walStorage",
}  # fmt: skip
INITDB_FIELDS = {
    "builtinLocale", "dataChecksums", "database", "encoding", "icuLocale", "icuRules",
    "import", "locale", "localeCType", "localeCollate", "localeProvider", "options", "owner",
    "postInitApplicationSQL", "postInitApplicationSQLRefs", "postInitSQL", "postInitSQLRefs",
    "postInitTemplateSQL", "postInitTemplateSQLRefs", "secret", "walSegmentSize",
}  # fmt: skip
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")


@functools.cache
def rendered(target: str) -> Rendered:
    return render(DEPLOY / target)


def documents(env: str) -> list[Doc]:
    return rendered(f"overlays/{env}").documents


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
    return matches[0]


def workloads(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if any(pod_templates(doc))]


def template_of(workload: Doc) -> Doc:
    template: Doc = workload["spec"]["template"]
    return template


def only_container(docs: list[Doc], component: str) -> Doc:
    pod = template_of(find(docs, "Deployment", component))["spec"]
    assert [c["name"] for c in pod["containers"]] == [component]
    container: Doc = pod["containers"][0]
    return container


def pod_labels(docs: list[Doc]) -> list[dict[str, str]]:
    """The labels of every kind of pod the objects create, CloudNativePG's instances included."""
    labels = [dict(template_of(w)["metadata"].get("labels", {})) for w in workloads(docs)]
    for cluster in of_kind(docs, "Cluster"):
        inherited = cluster["spec"].get("inheritedMetadata", {}).get("labels", {})
        name = cluster["metadata"]["name"]
        labels.append({**inherited, "cnpg.io/cluster": name, "cnpg.io/podRole": "instance"})
    return labels


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) matches `labels`."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "In":
            matched = labels.get(key) in expression["values"]
        elif operator == "NotIn":
            matched = labels.get(key) not in expression["values"]
        else:
            matched = (key in labels) == (operator == "Exists")
        if not matched:
            return False
    return True


def labels_of(docs: list[Doc], component: str) -> dict[str, str]:
    """The pod labels of a component's Deployment."""
    labels: dict[str, str] = template_of(find(docs, "Deployment", component))["metadata"]["labels"]
    return labels


def environment(docs: list[Doc], container: Doc) -> dict[str, Any]:
    """A container's variables: a literal value, ("secret", name, key) or ("field", path)."""
    variables: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"unexpected envFrom {source}"
        variables.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        name, value_from = variable["name"], variable.get("valueFrom")
        if value_from is None:
            variables[name] = variable["value"]
        elif "secretKeyRef" in value_from:
            reference = value_from["secretKeyRef"]
            variables[name] = ("secret", reference["name"], reference["key"])
        elif "configMapKeyRef" in value_from:
            reference = value_from["configMapKeyRef"]
            variables[name] = find(docs, "ConfigMap", reference["name"])["data"][reference["key"]]
        else:
            variables[name] = ("field", value_from["fieldRef"]["fieldPath"])
    return variables


def secret_references(docs: list[Doc]) -> Iterator[tuple[str, str]]:
    """(Secret name, key) for every Secret the objects read; key "*" for a whole Secret."""
    for workload in workloads(docs):
        for container in containers(workload):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    yield reference["name"], reference["key"]
        for volume in template_of(workload)["spec"].get("volumes", []):
            if "secret" in volume:
                yield volume["secret"]["secretName"], "*"
    for cluster in of_kind(docs, "Cluster"):
        secret = cluster["spec"]["bootstrap"]["initdb"].get("secret")
        if secret:
            yield secret["name"], "*"
        for role in cluster["spec"].get("managed", {}).get("roles", []):
            yield role["passwordSecret"]["name"], "*"


def decoded(secret: Doc) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def probe_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"{container['name']} has no port named {port}"
    return int(numbers[0])


def ingress_rules(docs: list[Doc], labels: dict[str, str]) -> list[Doc]:
    policies = [
        policy
        for policy in of_kind(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], labels)
        and "Ingress" in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    return [rule for policy in policies for rule in policy["spec"].get("ingress", [])]


def egress_rules(docs: list[Doc], labels: dict[str, str]) -> list[Doc] | None:
    """The egress rules that apply to a pod, or None when its egress is not restricted at all."""
    policies = [
        policy
        for policy in of_kind(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], labels)
        and "Egress" in policy["spec"].get("policyTypes", [])
    ]
    if not policies:
        return None
    return [rule for policy in policies for rule in policy["spec"].get("egress", [])]


# --- 1. the files exist and every object is valid ------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_renders_from_files_that_exist(target: str) -> None:
    result = rendered(target)
    assert result.documents
    missing = [str(path) for path in result.sources if not path.is_file()]
    assert missing == []


def test_every_manifest_is_part_of_an_overlay() -> None:
    used = {path for target in TARGETS for path in rendered(target).sources}
    on_disk = {path.resolve() for path in DEPLOY.rglob("*.y*ml")}
    assert sorted(map(str, on_disk - used)) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", OVERLAYS)
def test_objects_validate_strictly(target: str, version: str) -> None:
    skipped: set[tuple[str, str]] = set()
    errors = []
    for doc in rendered(target).documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            skipped.add((doc["apiVersion"], doc["kind"]))
        except kubernetes_validate.ValidationError as error:
            where = "/".join(map(str, error.path))
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {error.message}")
    assert errors == []
    assert skipped == CUSTOM_KINDS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_postgres_clusters_have_the_required_fields(env: str) -> None:
    clusters = {c["metadata"]["name"]: c for c in of_kind(documents(env), "Cluster")}
    assert set(clusters) == {f"{name}-db" for name in GRPC_SERVICES}
    for service in GRPC_SERVICES:
        cluster = clusters[f"{service}-db"]
        assert (cluster["apiVersion"], cluster["kind"]) in CUSTOM_KINDS
        spec = cluster["spec"]
        assert set(spec) <= CLUSTER_SPEC_FIELDS, set(spec) - CLUSTER_SPEC_FIELDS
        assert isinstance(spec["instances"], int)
        assert spec["instances"] >= 1
        assert QUANTITY.fullmatch(str(spec["storage"]["size"]))
        assert set(spec["bootstrap"]) == {"initdb"}
        initdb = spec["bootstrap"]["initdb"]
        assert set(initdb) <= INITDB_FIELDS, set(initdb) - INITDB_FIELDS
        assert initdb["database"] == service
        assert initdb["owner"] == service
        assert initdb["secret"] == {"name": f"{service}-db-owner"}
    initdb = clusters["scheduling-db"]["spec"]["bootstrap"]["initdb"]
    statements = initdb.get("postInitApplicationSQL", []) + initdb.get("postInitTemplateSQL", [])
    assert any(
        re.fullmatch(r"create extension (if not exists )?btree_gist;?", s.strip(), re.IGNORECASE)
        for s in statements
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_replica_counts_suit_the_environment(env: str) -> None:
    docs = documents(env)
    deployments = {
        doc["metadata"]["name"]: doc["spec"]["replicas"] for doc in of_kind(docs, "Deployment")
    }
    assert set(deployments) == set(COMPONENTS)
    instances = [cluster["spec"]["instances"] for cluster in of_kind(docs, "Cluster")]
    if env == "dev":
        assert set(deployments.values()) == {1}
        assert set(instances) == {1}
    else:
        assert min(deployments.values()) >= 2
        assert min(instances) >= 2
        hpa = find(docs, "HorizontalPodAutoscaler", "gateway")["spec"]
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
        assert hpa["scaleTargetRef"] == target
        assert hpa["minReplicas"] >= 2
        assert hpa["maxReplicas"] > hpa["minReplicas"]


# --- 2. hardened containers and their probes -----------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_container_is_hardened(env: str) -> None:
    docs = documents(env)
    problems = []
    for workload in workloads(docs):
        pod = template_of(workload)["spec"]
        pod_context = pod.get("securityContext", {})
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        account = find(docs, "ServiceAccount", pod["serviceAccountName"])
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service-account token")
        if account.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: its ServiceAccount mounts a token by default")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{where}: shares a host namespace")
        for container in containers(workload):
            context = container.get("securityContext", {})
            name = f"{where}/{container['name']}"

            def effective(key: str, context: Doc = context, pod_context: Doc = pod_context) -> Any:
                return context.get(key, pod_context.get(key))

            if effective("runAsNonRoot") is not True or effective("runAsUser") == 0:
                problems.append(f"{name}: may run as root")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: writable root filesystem")
            if context.get("allowPrivilegeEscalation") is not False or context.get("privileged"):
                problems.append(f"{name}: may escalate privileges")
            capabilities = context.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{name}: keeps capabilities")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{name}: no RuntimeDefault seccomp profile")
            resources = container.get("resources", {})
            if {"cpu", "memory"} - set(resources.get("limits", {})):
                problems.append(f"{name}: no cpu and memory limits")
            if {"cpu", "memory"} - set(resources.get("requests", {})):
                problems.append(f"{name}: no cpu and memory requests")
            is_init = container in pod.get("initContainers", [])
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container and not is_init:
                    problems.append(f"{name}: no {probe}")
    assert problems == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_portal_processes_have_a_writable_tmp_and_stop_gracefully(env: str, component: str) -> None:
    docs = documents(env)
    pod = template_of(find(docs, "Deployment", component))["spec"]
    container = only_container(docs, component)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert split_image(container["image"])[0].endswith("patient-portal")
    assert container["command"] == ["python", "-m", f"services.{component}"]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause + SHUTDOWN_GRACE <= pod["terminationGracePeriodSeconds"] <= 60


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_grpc_services_use_native_grpc_probes(env: str, service: str) -> None:
    port, qualified_name = GRPC_SERVICES[service]
    container = only_container(documents(env), service)
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("grpc", port)]
    assert container["livenessProbe"]["grpc"] == {"port": port, "service": "liveness"}
    assert container["readinessProbe"]["grpc"] == {"port": port, "service": qualified_name}
    assert container["startupProbe"]["grpc"] == {"port": port, "service": qualified_name}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_gateway_uses_http_health_endpoints(env: str) -> None:
    container = only_container(documents(env), "gateway")
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", GATEWAY_PORT)]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        action = container[probe]["httpGet"]
        assert action["path"] == path
        assert probe_port(container, action["port"]) == GATEWAY_PORT


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nats_runs_jetstream_on_a_volume_with_an_http_health_probe(env: str) -> None:
    docs = documents(env)
    statefulset = find(docs, "StatefulSet", "nats")
    (container,) = template_of(statefulset)["spec"]["containers"]
    config = find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    store = re.search(r"jetstream\s*\{[^}]*store_dir:\s*(\S+)", config)
    assert store, "JetStream is not enabled with a store_dir"
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[store.group(1)] in claims
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        action = container[probe]["httpGet"]
        assert action["path"].startswith("/healthz")
        assert probe_port(container, action["port"]) == 8222
    assert find(docs, "Service", statefulset["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    client = find(docs, "Service", "nats")["spec"]
    assert [port["port"] for port in client["ports"]] == [4222]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nats_has_one_user_per_service_as_make_run_does(env: str) -> None:
    docs = documents(env)
    config = find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    references = {name: f"${name.upper()}_NATS_PASSWORD" for name in GRPC_SERVICES}
    # The block services/runtime/nats_users.py renders, as the embedded server of `make run` has.
    assert authorization(references) in config
    (container,) = template_of(find(docs, "StatefulSet", "nats"))["spec"]["containers"]
    variables = environment(docs, container)
    for name, reference in references.items():
        expected = ("secret", PORTAL_SECRET, f"{name}-nats-password")
        assert variables[reference.removeprefix("$")] == expected


def test_dev_principal_keys_are_a_pair() -> None:
    values = decoded(find(documents("dev"), "Secret", PORTAL_SECRET))
    private = load_signing_key(values["principal-private-key"])
    assert set(load_public_keys(values["principal-public-keys"])) == {private.kid}


# --- 3. selectors meet, and the network is closed by default ------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_selectors_meet(env: str) -> None:
    docs = documents(env)
    services = of_kind(docs, "Service")
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        labels = template_of(workload)["metadata"]["labels"]
        assert selects(workload["spec"]["selector"], labels), f"{name}: selector misses template"
        mine = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
        assert mine, f"no Service selects {name}"
        exposed = {
            value
            for container in containers(workload)
            for port in container.get("ports", [])
            for value in (port.get("name"), port["containerPort"])
        }
        for service in mine:
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in exposed, f"{service['metadata']['name']}: no target port {target}"
    all_pods = [template_of(w)["metadata"]["labels"] for w in workloads(docs)]
    for service in services:
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in all_pods), service
    for budget in of_kind(docs, "PodDisruptionBudget"):
        assert any(selects(budget["spec"]["selector"], labels) for labels in all_pods), budget
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        find(docs, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pod_a_network_policy_names_exists(env: str) -> None:
    docs = documents(env)
    pods = pod_labels(docs)
    for policy in of_kind(docs, "NetworkPolicy"):
        name = policy["metadata"]["name"]
        selector = policy["spec"]["podSelector"]
        assert any(selects(selector, labels) for labels in pods), f"{name}: selects no pod"
        rules = policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
        for rule in rules:
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(selects(peer["podSelector"], labels) for labels in pods), (
                        f"{name}: a peer selects no pod: {peer}"
                    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_ingress_is_denied_by_default(env: str) -> None:
    defaults = [
        policy["spec"]
        for policy in of_kind(documents(env), "NetworkPolicy")
        if policy["spec"]["podSelector"] == {}
    ]
    assert defaults == [{"podSelector": {}, "policyTypes": ["Ingress"]}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_grpc_services_accept_only_the_gateway(env: str, service: str) -> None:
    docs = documents(env)
    port = GRPC_SERVICES[service][0]
    gateway = labels_of(docs, "gateway")
    others = [labels for labels in pod_labels(docs) if labels != gateway]
    rules = ingress_rules(docs, labels_of(docs, service))
    assert rules
    for rule in rules:
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        assert rule["from"]
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, peer
            assert selects(peer["podSelector"], gateway)
            assert not any(selects(peer["podSelector"], labels) for labels in others)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_gateway_accepts_http_only(env: str) -> None:
    docs = documents(env)
    rules = ingress_rules(docs, labels_of(docs, "gateway"))
    assert [rule["ports"] for rule in rules] == [[{"port": GATEWAY_PORT, "protocol": "TCP"}]]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_egress_is_limited_to_what_each_process_needs(env: str, component: str) -> None:
    docs = documents(env)
    if component == "gateway":
        allowed = {53} | {port for port, _ in GRPC_SERVICES.values()}
    else:
        allowed = {53, 4222, 5432}
    rules = egress_rules(docs, labels_of(docs, component))
    assert rules is not None, f"{component}: egress is not restricted"
    ports = set()
    for rule in rules:
        assert rule.get("to"), f"{component}: an egress rule to anywhere"
        assert rule.get("ports"), f"{component}: an egress rule on every port"
        ports |= {port["port"] for port in rule["ports"]}
    assert ports == allowed
    if component in GRPC_SERVICES:
        database = next(rule for rule in rules if rule["ports"][0]["port"] == 5432)
        own_cluster = {"matchLabels": {"cnpg.io/cluster": f"{component}-db"}}
        assert database["to"] == [{"podSelector": own_cluster}]


# --- 4. secrets stay out of the repository, and every setting is wired --------------------------


@pytest.mark.parametrize("target", ["base", "overlays/prod"])
def test_no_secret_carries_values_outside_dev(target: str) -> None:
    for secret in of_kind(rendered(target).documents, "Secret"):
        assert not secret.get("data"), secret["metadata"]["name"]
        assert not secret.get("stringData"), secret["metadata"]["name"]


def test_no_credentials_in_files_outside_the_dev_overlay() -> None:
    credentials = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
    dev = DEPLOY / "overlays" / "dev"
    leaks = [
        str(path)
        for path in DEPLOY.rglob("*")
        if path.is_file()
        and dev not in path.parents
        and path.suffix in {".yaml", ".yml", ""}
        and credentials.search(path.read_text())
    ]
    assert leaks == []


def test_dev_secrets_are_obviously_not_real() -> None:
    secrets = {s["metadata"]["name"]: decoded(s) for s in of_kind(documents("dev"), "Secret")}
    assert set(secrets) == {PORTAL_SECRET, *OWNER_SECRETS}
    for name, values in secrets.items():
        for key, value in values.items():
            if key != "username":
                assert "dev-only" in value, f"{name}/{key} does not look like a dev value"


def test_dev_database_urls_match_the_postgres_clusters() -> None:
    docs = documents("dev")
    urls = decoded(find(docs, "Secret", PORTAL_SECRET))
    for service in GRPC_SERVICES:
        # The service connects as its runtime role; its init container migrates as the owner.
        for key, who, role in (
            ("database-url", "app", f"{service}_app"),
            ("migration-database-url", "owner", service),
        ):
            url = urlsplit(urls[f"{service}-{key}"])
            secret = decoded(find(docs, "Secret", f"{service}-db-{who}"))
            assert find(docs, "Secret", f"{service}-db-{who}")["type"] == "kubernetes.io/basic-auth"
            assert url.scheme in {"postgresql", "postgres"}
            assert (url.hostname, url.port, url.path) == (f"{service}-db-rw", 5432, f"/{service}")
            assert (url.username, url.password) == (secret["username"], secret["password"])
            assert secret["username"] == role


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_secret_references_follow_the_contract(env: str) -> None:
    docs = documents(env)
    references = set(secret_references(docs))
    contract = {(PORTAL_SECRET, key) for key in PORTAL_SECRET_KEYS}
    contract |= {(name, "*") for name in OWNER_SECRETS}
    assert references == contract
    provided = {s["metadata"]["name"]: set(s.get("data", {})) for s in of_kind(docs, "Secret")}
    if env == "dev":
        assert provided == {
            PORTAL_SECRET: PORTAL_SECRET_KEYS,
            **{name: OWNER_SECRET_KEYS for name in OWNER_SECRETS},
        }
    else:
        assert provided == {}
    readme = (DEPLOY / "README.md").read_text()
    for name in {PORTAL_SECRET, *PORTAL_SECRET_KEYS, *OWNER_SECRETS}:
        assert f"`{name}`" in readme, f"deploy/README.md does not document {name}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_environment_is_wired(env: str, component: str) -> None:
    docs = documents(env)
    variables = environment(docs, only_container(docs, component))
    assert "PORTAL_PRINCIPAL_KEY" not in variables
    assert variables["PORTAL_LOG_LEVEL"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
    if component in GRPC_SERVICES:
        # Public keys only, and a NATS user of its own.
        public_keys = ("secret", PORTAL_SECRET, "principal-public-keys")
        assert variables["PORTAL_PRINCIPAL_PUBLIC_KEYS"] == public_keys
        assert not {"PORTAL_PRINCIPAL_PRIVATE_KEY", "PORTAL_GATEWAY_SECRET"} & set(variables)
        assert variables["PORTAL_NATS_USER"] == component
        nats_password = ("secret", PORTAL_SECRET, f"{component}-nats-password")
        assert variables["PORTAL_NATS_PASSWORD"] == nats_password
        port = GRPC_SERVICES[component][0]
        database_url = ("secret", PORTAL_SECRET, f"{component}-database-url")
        assert variables["PORTAL_DATABASE_URL"] == database_url
        # The owner's URL only in the init container that migrates.
        assert "PORTAL_MIGRATION_DATABASE_URL" not in variables
        pod = template_of(find(docs, "Deployment", component))["spec"]
        (migrate,) = pod["initContainers"]
        assert migrate["command"] == ["python", "-m", "services.runtime.migrate", component]
        init_variables = environment(docs, migrate)
        owner_url = ("secret", PORTAL_SECRET, f"{component}-migration-database-url")
        assert init_variables["PORTAL_MIGRATION_DATABASE_URL"] == owner_url
        assert init_variables["PORTAL_DATABASE_URL"] == database_url
        assert variables["PORTAL_GRPC_LISTEN"] == f"{ALL_INTERFACES}:{port}"
        nats = urlsplit(variables["PORTAL_NATS_URL"])
        assert nats.scheme == "nats"
        nats_service = find(docs, "Service", str(nats.hostname))
        assert nats.port in {p["port"] for p in nats_service["spec"]["ports"]}
        return
    private_key = ("secret", PORTAL_SECRET, "principal-private-key")
    assert variables["PORTAL_PRINCIPAL_PRIVATE_KEY"] == private_key
    assert variables["PORTAL_GATEWAY_SECRET"] == ("secret", PORTAL_SECRET, "gateway-secret")
    assert not {"PORTAL_PRINCIPAL_PUBLIC_KEYS", "PORTAL_NATS_USER"} & set(variables)
    assert variables["PORTAL_GATEWAY_HOST"] == ALL_INTERFACES
    assert int(variables["PORTAL_GATEWAY_PORT"]) == GATEWAY_PORT
    assert variables["PORTAL_COOKIE_SECURE"] == "true"
    for service, (port, _) in GRPC_SERVICES.items():
        host, _, address_port = variables[f"PORTAL_{service.upper()}_ADDR"].partition(":")
        assert host == service
        assert int(address_port) == port
        assert port in {p["port"] for p in find(docs, "Service", host)["spec"]["ports"]}
    onsite = urlsplit(variables["PORTAL_ONSITE_URL"])
    offsite = urlsplit(variables["PORTAL_OFFSITE_URL"])
    assert onsite.hostname and offsite.hostname
    assert onsite.hostname != offsite.hostname
    schemes = {"https"} if env == "prod" else {"http", "https"}
    assert {onsite.scheme, offsite.scheme} <= schemes


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_portal_image_is_set_by_the_overlay(env: str) -> None:
    docs = documents(env)
    images = {only_container(docs, component)["image"] for component in COMPONENTS}
    assert len(images) == 1, "the four processes must run one image"
    _, tag, digest = split_image(images.pop())
    assert digest or tag
    if env == "prod":
        assert digest or (tag and re.fullmatch(r"v?\d+\.\d+\.\d+", tag)), "pin a release"
    for workload in workloads(docs):
        for container in containers(workload):
            assert split_image(container["image"])[1] not in {None, "latest"}, container["image"]


# --- 5. edges: ingress and hosts, trusted proxies, the NATS cluster ------------------------------

REALM_URLS = {"onsite": "PORTAL_ONSITE_URL", "offsite": "PORTAL_OFFSITE_URL"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_realm_addresses_name_the_realm_routes(env: str) -> None:
    variables = environment(documents(env), only_container(documents(env), "gateway"))
    for realm, name in REALM_URLS.items():
        # Credentials letters print these; the realm's pages live under /portal/<realm>/.
        assert urlsplit(variables[name]).path == f"/portal/{realm}/", name


def test_prod_ingress_serves_the_configured_hosts_over_tls() -> None:
    docs = documents("prod")
    variables = environment(docs, only_container(docs, "gateway"))
    (ingress,) = of_kind(docs, "Ingress")
    spec = ingress["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    expected = {str(urlsplit(variables[name]).hostname) for name in REALM_URLS.values()}
    expected.add(variables["PORTAL_STAFF_HOST"])
    assert hosts == expected
    assert {host for tls in spec["tls"] for host in tls["hosts"]} >= hosts
    assert all(tls["secretName"] for tls in spec["tls"])
    gateway_ports = {p["name"] for p in find(docs, "Service", "gateway")["spec"]["ports"]}
    for rule in spec["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "gateway"
            assert backend["port"]["name"] in gateway_ports
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert variables["PORTAL_COOKIE_SECURE"] == "true"  # so the gateway sends HSTS


def test_prod_trusts_only_the_ingress_controller_as_a_proxy() -> None:
    docs = documents("prod")
    variables = environment(docs, only_container(docs, "gateway"))
    networks = [ip_network(part.strip()) for part in variables["PORTAL_TRUSTED_PROXIES"].split(",")]
    assert networks and all(network.is_private for network in networks)
    # Only the controller's namespace reaches the gateway, so no other pod can forge the header.
    (rule,) = ingress_rules(docs, labels_of(docs, "gateway"))
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_reflection_is_off_and_stream_replicas_match_the_nats_nodes(env: str, service: str) -> None:
    docs = documents(env)
    variables = environment(docs, only_container(docs, service))
    assert variables.get("PORTAL_GRPC_REFLECTION", "false") == "false"
    nodes = find(docs, "StatefulSet", "nats")["spec"]["replicas"]
    assert int(variables["PORTAL_STREAM_REPLICAS"]) == nodes
    assert nodes == (3 if env == "prod" else 1)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nats_nodes_route_to_each_other(env: str) -> None:
    docs = documents(env)
    statefulset = find(docs, "StatefulSet", "nats")
    data = find(docs, "ConfigMap", "nats-config")["data"]
    assert "include ./cluster.conf" in data["nats.conf"]
    nodes = statefulset["spec"]["replicas"]
    routes = re.findall(r"nats://([\w.-]+):(\d+)", data["cluster.conf"])
    if nodes == 1:
        assert not routes
        return
    headless = statefulset["spec"]["serviceName"]
    assert routes == [(f"nats-{i}.{headless}", "6222") for i in range(nodes)]
    (container,) = template_of(statefulset)["spec"]["containers"]
    assert probe_port(container, "cluster") == 6222
    peers = [
        r
        for r in ingress_rules(docs, {"app.kubernetes.io/name": "nats"})
        if r["ports"][0]["port"] == 6222
    ]
    assert peers == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}}],
            "ports": [{"port": 6222, "protocol": "TCP"}],
        }
    ]
    budget = find(docs, "PodDisruptionBudget", "nats")["spec"]
    assert selects(budget["selector"], dict(template_of(statefulset)["metadata"]["labels"]))
    assert budget["maxUnavailable"] == 1 and nodes - 1 > nodes // 2  # a quorum survives a drain
    spread = template_of(statefulset)["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"
