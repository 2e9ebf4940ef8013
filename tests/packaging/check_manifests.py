#!/usr/bin/env python3
"""Checks rendered Carve manifests: strict Kubernetes schemas, then the packaging invariants.

usage: check_manifests.py [--kube-version 1.30] [--kubelet-dir DIR] [--snapshots on|off]
                          [--agents VALUES.yaml] [--examples] FILE...

Every object is validated strictly (unknown fields rejected) against kubernetes-validate's
schemas, or against tests/packaging/schemas/ for the snapshot CRDs; an object without a schema is
an error. Unless --examples is given, the files together must be one rendering of the chart, and
every invariant of issue #7 is asserted on it, and with --agents (the values file it was rendered
with) those of agents mode (issue #19: a controller without host access, the agents file as the
values say, the optional carve-agent DaemonSet). Exit status 1 with one line per failure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from agents_checks import agent_hosts, check_agent_daemonset, check_agents_controller
from manifests import by_kind, component, container, env_names, flag, host_paths, rules_of, socket_path
from report import finish

HERE = Path(__file__).resolve().parent
DRIVER = "lvm-iscsi.csi.carve.dev"
SIDECAR_REGISTRY = "registry.k8s.io/sig-storage/"

# The only permissions the controller's service account may hold: (apiGroup, resource) -> verbs.
# What external-provisioner, -attacher, -resizer and -snapshotter call, and nothing else.
CONTROLLER_ALLOW = {
    ("", "persistentvolumes"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "update"},
    ("", "persistentvolumeclaims/status"): {"patch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"get", "list", "watch", "create", "update", "patch"},
    ("", "nodes"): {"get", "list", "watch"},
    ("storage.k8s.io", "storageclasses"): {"get", "list", "watch"},
    ("storage.k8s.io", "csinodes"): {"get", "list", "watch"},
    ("storage.k8s.io", "volumeattachments"): {"get", "list", "watch", "patch"},
    ("storage.k8s.io", "volumeattachments/status"): {"patch"},
    ("storage.k8s.io", "volumeattributesclasses"): {"get", "list", "watch"},
    ("snapshot.storage.k8s.io", "volumesnapshots"): {"get", "list", "watch", "update"},
    ("snapshot.storage.k8s.io", "volumesnapshotcontents"): {"get", "list", "watch", "update", "patch"},
    ("snapshot.storage.k8s.io", "volumesnapshotcontents/status"): {"update", "patch"},
    ("snapshot.storage.k8s.io", "volumesnapshotclasses"): {"get", "list", "watch"},
    ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("", "secrets"): {"get"},  # only in a Role, only with resourceNames (checked below)
    # the provisioner's --enable-capacity, only in a Role (checked below)
    ("storage.k8s.io", "csistoragecapacities"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("apps", "replicasets"): {"get"},
}
NAMESPACED_ONLY = {("", "secrets"), ("coordination.k8s.io", "leases"), ("storage.k8s.io", "csistoragecapacities"),
                   ("apps", "replicasets")}
# The oldest sidecar release each image may be (issue #18: the current releases).
SIDECAR_MINIMUM = {
    "csi-provisioner": (6, 0), "csi-attacher": (4, 12), "csi-resizer": (2, 0), "csi-snapshotter": (8, 6),
    "csi-node-driver-registrar": (2, 17), "livenessprobe": (2, 20),
    "csi-external-health-monitor-controller": (0, 18),
}
SNAPSHOT_ONLY = {
    ("snapshot.storage.k8s.io", "volumesnapshotclasses"),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents/status"),
}
# Host paths issue #7 names for each pod.
CONTROLLER_HOST_PATHS = {"/dev", "/sys/kernel/config", "/run/lvm", "/etc/lvm", "/lib/modules"}
NODE_HOST_PATHS = {"/dev", "/sys", "/etc/iscsi", "/run/udev"}
SECRET_PARAMS = (
    "csi.storage.k8s.io/controller-publish-secret-",
    "csi.storage.k8s.io/node-stage-secret-",
)
CHAP_KEYS = ("chapUsername", "chapPassword", "chapMutualUsername", "chapMutualPassword")


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return ok


def load(files: list[str]) -> list[tuple[str, dict]]:
    objects = []
    for name in files:
        for doc in yaml.safe_load_all(Path(name).read_text()):
            if doc:
                objects.append((name, doc))
    return objects


def crd_validator(doc: dict, kube_version: str) -> jsonschema.protocols.Validator | None:
    group, _, version = doc["apiVersion"].partition("/")
    path = HERE / "schemas" / f"{doc['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    if not path.exists():
        return None
    strict = f"kubernetes-json-schema/v{kube_version}.0-local-strict/_definitions.json"
    defs = kv_utils.schema_contents(strict, kube_version)
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(defs) @ Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_schemas(c: Checker, objects: list[tuple[str, dict]], kube_version: str) -> None:
    for name, doc in objects:
        what = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            validator = crd_validator(doc, kube_version)
            if not c.check(validator is not None, f"{what}: no schema for {doc['apiVersion']}"):
                continue
            for error in validator.iter_errors(doc):
                c.check(False, f"{what}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.ValidationError as error:
            c.check(False, f"{what}: {'.'.join(map(str, error.path))}: {error.message}")


def check_csidriver(c: Checker, objects) -> None:
    drivers = by_kind(objects, "CSIDriver")
    if not c.check(len(drivers) == 1, f"expected one CSIDriver, found {len(drivers)}"):
        return
    d = drivers[0]
    spec = d["spec"]
    c.check(d["metadata"]["name"] == DRIVER, f"CSIDriver name {d['metadata']['name']} != {DRIVER}")
    c.check(spec.get("attachRequired") is True, "CSIDriver: attachRequired must be true")
    c.check(spec.get("podInfoOnMount") is False, "CSIDriver: podInfoOnMount must be false")
    c.check(bool(spec.get("fsGroupPolicy")), "CSIDriver: fsGroupPolicy must be set")
    c.check(spec.get("volumeLifecycleModes") == ["Persistent"], "CSIDriver: lifecycle must be Persistent")


def check_capacity(c: Checker, objects) -> None:
    """CSIDriver storageCapacity, the provisioner's --enable-capacity, its env and its Role agree."""
    drivers = by_kind(objects, "CSIDriver")
    deployments = by_kind(objects, "Deployment")
    if not drivers or not deployments:
        return
    on = drivers[0]["spec"].get("storageCapacity") is True
    prov = container(deployments[0]["spec"]["template"]["spec"], "csi-provisioner")
    args = prov.get("args", [])
    c.check(("--enable-capacity" in args) == on, f"CSIDriver storageCapacity {on} but provisioner --enable-capacity {not on}")
    if not on:
        return
    env = env_names(prov)
    c.check(env.get("NAMESPACE") == "metadata.namespace" and env.get("POD_NAME") == "metadata.name",
            "csi-provisioner --enable-capacity needs NAMESPACE and POD_NAME from the downward API")
    c.check(flag(prov, "capacity-ownerref-level") == ["2"],
            "csi-provisioner in a Deployment: --capacity-ownerref-level=2 (pod, ReplicaSet, Deployment)")
    sa = deployments[0]["spec"]["template"]["spec"].get("serviceAccountName")
    granted = {(g, r) for kind, rule, _ in rules_of(objects, sa) if kind == "Role"
               for g in rule.get("apiGroups", []) for r in rule.get("resources", [])}
    for need in (("storage.k8s.io", "csistoragecapacities"), ("", "pods"), ("apps", "replicasets")):
        c.check(need in granted, f"RBAC: --enable-capacity needs {need[0] or 'core'}/{need[1]} in the release namespace")


def check_sidecar_versions(c: Checker, objects) -> None:
    for d in by_kind(objects, "Deployment") + by_kind(objects, "DaemonSet"):
        for cont in d["spec"]["template"]["spec"]["containers"]:
            image = cont["image"]
            if not image.startswith(SIDECAR_REGISTRY):
                continue
            name, _, tag = image[len(SIDECAR_REGISTRY):].partition(":")
            version = tuple(int(x) for x in re.findall(r"\d+", tag)[:2])
            minimum = SIDECAR_MINIMUM.get(name)
            c.check(minimum is not None and version >= minimum,
                    f"{cont['name']}: {image} is older than the supported {name} v{'.'.join(map(str, minimum or ()))}")


def check_metrics(c: Checker, objects) -> None:
    """Every Service or PodMonitor port names a container port of the pods it selects, and every
    sidecar serving --http-endpoint on the pod IP declares its port."""
    pods = by_kind(objects, "Deployment") + by_kind(objects, "DaemonSet")
    def ports_of(selector: dict) -> set[str]:
        out: set[str] = set()
        for d in pods:
            labels = d["spec"]["template"]["metadata"].get("labels", {})
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                out |= {p["name"] for cont in d["spec"]["template"]["spec"]["containers"] for p in cont.get("ports", [])}
        return out
    for svc in by_kind(objects, "Service"):
        names = ports_of(svc["spec"].get("selector", {}))
        for port in svc["spec"].get("ports", []):
            c.check(port.get("targetPort") in names, f"Service/{svc['metadata']['name']}: port {port.get('targetPort')} is no container port")
    for mon in by_kind(objects, "PodMonitor"):
        names = ports_of(mon["spec"]["selector"].get("matchLabels", {}))
        for ep in mon["spec"].get("podMetricsEndpoints", []):
            c.check(ep.get("port") in names, f"PodMonitor/{mon['metadata']['name']}: port {ep.get('port')} is no container port")
    for d in pods:
        for cont in d["spec"]["template"]["spec"]["containers"]:
            for endpoint in flag(cont, "http-endpoint"):
                if endpoint.startswith("$(POD_IP):"):
                    port = int(endpoint.rpartition(":")[2])
                    c.check(port in {p["containerPort"] for p in cont.get("ports", [])},
                            f"{cont['name']}: --http-endpoint {endpoint} without its containerPort")
                    c.check("POD_IP" in env_names(cont), f"{cont['name']}: --http-endpoint uses $(POD_IP) without POD_IP")


def check_sidecars_dial_the_driver(c: Checker, pod: dict, driver_name: str, what: str) -> None:
    driver = container(pod, driver_name)
    sock = socket_path(driver)
    c.check(sock.startswith("/"), f"{what}: {driver_name} --endpoint must be a unix socket path")
    sock_dir = str(Path(sock).parent)
    mounts = {m["mountPath"]: m["name"] for m in driver.get("volumeMounts", [])}
    c.check(sock_dir in mounts, f"{what}: {driver_name} does not mount its socket dir {sock_dir}")
    for side in pod["containers"]:
        if side["name"] == driver_name:
            continue
        addr = flag(side, "csi-address")
        c.check(addr == [sock], f"{what}: {side['name']} --csi-address {addr} != driver socket {sock}")
        side_mounts = {m["mountPath"]: m["name"] for m in side.get("volumeMounts", [])}
        c.check(side_mounts.get(sock_dir) == mounts.get(sock_dir),
                f"{what}: {side['name']} does not share the driver's socket volume at {sock_dir}")
        c.check(side["image"].startswith(SIDECAR_REGISTRY), f"{what}: {side['name']} image {side['image']}")


def check_probes(c: Checker, pod: dict, driver_name: str, what: str) -> None:
    """Readiness is the livenessprobe sidecar's /healthz (Probe); liveness is only that the gRPC
    server answers (carvectl identity info on the driver's socket), never Probe: a plugin that is
    up but not ready must show NotReady, not restart. The sidecar's --probe-timeout is longer than
    its 1s default and shorter than the readiness probe's timeoutSeconds."""
    probe = container(pod, "livenessprobe")
    if not c.check(bool(probe), f"{what}: livenessprobe sidecar missing"):
        return
    endpoint = flag(probe, "http-endpoint")
    driver = container(pod, driver_name)
    http = driver.get("readinessProbe", {}).get("httpGet", {})
    if not c.check(bool(endpoint) and bool(http), f"{what}: {driver_name} has no /healthz readiness probe"):
        return
    host, _, port = endpoint[0].rpartition(":")
    # The sidecar's own Probe timeout (default 1s) must be set, and shorter than the kubelet's
    # readiness timeout: the controller's Probe reads LVM and can take seconds at scale. The last
    # one counts (Go's flag package keeps the last value; extraArgs come after the chart's).
    timeout = flag(probe, "probe-timeout")
    last = timeout[-1] if timeout else ""
    readiness_s = driver.get("readinessProbe", {}).get("timeoutSeconds", 1)
    c.check(last.endswith("s") and last[:-1].isdigit() and 1 < int(last[:-1]) < readiness_s,
            f"{what}: livenessprobe --probe-timeout {last or '(unset: 1s)'} must be whole seconds, "
            f"2 or more and under the readiness probe's timeoutSeconds ({readiness_s})")
    ports = {p["name"]: p["containerPort"] for p in driver.get("ports", [])}
    c.check(http.get("path") == "/healthz", f"{what}: readiness path must be /healthz")
    c.check(str(ports.get(http.get("port"), http.get("port"))) == port,
            f"{what}: readiness port {http.get('port')} != livenessprobe {endpoint[0]}")
    c.check(http.get("host", host) == host, f"{what}: readiness host {http.get('host')} != {host}")
    liveness = driver.get("livenessProbe", {})
    command = liveness.get("exec", {}).get("command", [])
    c.check("httpGet" not in liveness, f"{what}: liveness must not be Probe (/healthz): a not-ready plugin would restart")
    c.check(bool(command) and command[0].endswith("/carvectl") and command[-2:] == ["identity", "info"]
            and f"--endpoint=unix://{socket_path(driver)}" in command,
            f"{what}: liveness must be carvectl identity info on the driver's socket, is {command}")


def the_workload(c: Checker, objects, kind: str, role: str) -> tuple[dict, dict, str] | None:
    """The one `kind` object (the `role`'s workload), its pod spec and its name for messages."""
    found = component(objects, kind, role)
    if not c.check(len(found) == 1, f"expected one {role} {kind}, found {len(found)}"):
        return None
    workload = found[0]
    return workload, workload["spec"]["template"]["spec"], f"{kind}/{workload['metadata']['name']}"


def check_controller(c: Checker, objects, snapshots: bool, agents: list | None) -> None:
    found = the_workload(c, objects, "Deployment", "controller")
    if found is None:
        return
    dep, pod, what = found
    c.check(dep["spec"].get("replicas") == 1, f"{what}: one replica per storage host")
    driver = container(pod, "csi-controller")
    if agents is None:
        check_single_host_controller(c, pod, driver, what)
    else:
        check_agents_controller(c, objects, pod, driver, what, agents)
    names = {x["name"] for x in pod["containers"]}
    want = {"csi-controller", "csi-provisioner", "csi-attacher", "csi-resizer", "livenessprobe"}
    want |= {"csi-snapshotter"} if snapshots else set()
    want |= names & {"csi-external-health-monitor-controller"}  # optional (healthMonitor.enabled)
    c.check(names == want, f"{what}: containers {sorted(names)} != {sorted(want)}")
    for side in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter",
                 "csi-external-health-monitor-controller"):
        if side in names:
            c.check("--leader-election" in container(pod, side).get("args", []), f"{what}: {side} without leader election")
    c.check("--extra-create-metadata" in container(pod, "csi-provisioner").get("args", []),
            f"{what}: csi-provisioner without --extra-create-metadata (LVs would not record their PVC)")
    check_sidecars_dial_the_driver(c, pod, "csi-controller", what)
    check_probes(c, pod, "csi-controller", what)


def check_single_host_controller(c: Checker, pod: dict, driver: dict, what: str) -> None:
    """The controller driving its own storage host: pinned there, privileged, host network, the
    host paths LVM and LIO need."""
    affinity = pod.get("affinity", {}).get("nodeAffinity", {})
    c.check(bool(pod.get("nodeSelector")) or bool(affinity.get("requiredDuringSchedulingIgnoredDuringExecution")),
            f"{what}: not pinned to the storage host (nodeSelector or required node affinity)")
    c.check(pod.get("hostNetwork") is True, f"{what}: hostNetwork must be true (portals are the host's)")
    c.check(driver.get("securityContext", {}).get("privileged") is True, f"{what}: csi-controller not privileged")
    c.check(not flag(driver, "agents"), f"{what}: --agents without the agents values (check with --agents VALUES)")
    portals = flag(driver, "portal")
    c.check(bool(portals), f"{what}: no --portal")
    for p in portals:
        c.check(not re.match(r"^(0\.0\.0\.0|\[::\]|\[0*(:0*)*\])(:|$)", p), f"{what}: wildcard portal {p}")
    paths = set(host_paths(pod).values())
    c.check(CONTROLLER_HOST_PATHS <= paths, f"{what}: host paths missing: {sorted(CONTROLLER_HOST_PATHS - paths)}")
    saveconfig = flag(driver, "saveconfig")
    c.check(bool(saveconfig) and str(Path(saveconfig[0]).parent) in paths,
            f"{what}: the saveconfig directory is not mounted from the host")


def check_node(c: Checker, objects, kubelet_dir: str) -> None:
    found = the_workload(c, objects, "DaemonSet", "node")
    if found is None:
        return
    _, pod, what = found
    kubelet_dir = kubelet_dir.rstrip("/")
    c.check(pod.get("hostNetwork") is True, f"{what}: hostNetwork must be true")
    driver = container(pod, "csi-node")
    c.check(driver.get("securityContext", {}).get("privileged") is True, f"{what}: csi-node not privileged")
    names = {x["name"] for x in pod["containers"]}
    want = {"csi-node", "node-driver-registrar", "livenessprobe"}
    c.check(names == want, f"{what}: containers {sorted(names)} != {sorted(want)}")
    nsenter = any("nsenter" in a for a in flag(driver, "command-prefix")) or flag(driver, "iscsiadm") != ["iscsiadm"]
    if nsenter:
        c.check(pod.get("hostPID") is True, f"{what}: nsenter --target 1 needs hostPID")
    paths = host_paths(pod)
    values = set(paths.values())
    c.check(NODE_HOST_PATHS <= values, f"{what}: host paths missing: {sorted(NODE_HOST_PATHS - values)}")
    mounts = {m["mountPath"]: m for m in driver.get("volumeMounts", [])}
    kubelet_mount = mounts.get(kubelet_dir, {})
    c.check(paths.get(kubelet_mount.get("name")) == kubelet_dir,
            f"{what}: csi-node does not mount the kubelet dir {kubelet_dir} at the same path")
    c.check(kubelet_mount.get("mountPropagation") == "Bidirectional",
            f"{what}: the kubelet dir mount must be Bidirectional")
    for m in driver.get("volumeMounts", []):
        if m is not kubelet_mount:
            c.check(m.get("mountPropagation") != "Bidirectional", f"{what}: only the kubelet dir is Bidirectional")
    plugin_dir = f"{kubelet_dir}/plugins/{DRIVER}"
    c.check(flag(driver, "state-dir") == [plugin_dir], f"{what}: --state-dir {flag(driver, 'state-dir')} != {plugin_dir}")
    sock_dir = str(Path(socket_path(driver)).parent)
    sock_volume = {m["mountPath"]: m["name"] for m in driver.get("volumeMounts", [])}.get(sock_dir)
    c.check(paths.get(sock_volume) == plugin_dir, f"{what}: socket dir is not {plugin_dir} on the host")
    registrar = container(pod, "node-driver-registrar")
    c.check(flag(registrar, "kubelet-registration-path") == [f"{plugin_dir}/csi.sock"],
            f"{what}: registrar --kubelet-registration-path != {plugin_dir}/csi.sock")
    reg_mount = {m["mountPath"]: m["name"] for m in registrar.get("volumeMounts", [])}.get("/registration")
    c.check(paths.get(reg_mount) == f"{kubelet_dir}/plugins_registry",
            f"{what}: registrar does not mount {kubelet_dir}/plugins_registry at /registration")
    for name, path in paths.items():
        if "kubelet" in path or "k0s" in path or "microk8s" in path:
            c.check(path.startswith(kubelet_dir), f"{what}: volume {name} {path} is outside {kubelet_dir}")
    for nodes_dir in flag(driver, "iscsi-nodes-dir"):
        c.check(any(nodes_dir == m or nodes_dir.startswith(m.rstrip("/") + "/")
                    for m, mount in mounts.items() if paths.get(mount["name"]) == m),
                f"{what}: --iscsi-nodes-dir {nodes_dir} is not the host's directory at the same path")
    check_sidecars_dial_the_driver(c, pod, "csi-node", what)
    check_probes(c, pod, "csi-node", what)


def check_rbac(c: Checker, objects, snapshots: bool) -> None:
    sas = {d["metadata"]["name"]: d for d in by_kind(objects, "ServiceAccount")}
    pods = {role: d["spec"]["template"]["spec"] for role, kind in (("controller", "Deployment"), ("node", "DaemonSet"))
            for d in component(objects, kind, role)}
    controller_sa = pods.get("controller", {}).get("serviceAccountName")
    node_sa = pods.get("node", {}).get("serviceAccountName")
    c.check(controller_sa in sas and node_sa in sas and controller_sa != node_sa,
            "controller and node need their own service accounts")
    granted: set[tuple[str, str]] = set()
    for kind, rule, ns in rules_of(objects, controller_sa):
        if not c.check("missing" not in rule, f"RBAC: binding to a missing {kind} {rule.get('missing')}"):
            continue
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                verbs = set(rule.get("verbs", []))
                allowed = CONTROLLER_ALLOW.get((group, res))
                c.check("*" not in verbs and "*" not in res and group != "*", f"RBAC: wildcard in {rule}")
                if not c.check(allowed is not None, f"RBAC: controller may not touch {group or 'core'}/{res}"):
                    continue
                c.check(verbs <= allowed, f"RBAC: controller {group or 'core'}/{res} verbs {sorted(verbs - allowed)} beyond the allow-list")
                granted.add((group, res))
                if res == "secrets":
                    c.check(kind == "Role" and bool(rule.get("resourceNames")),
                            "RBAC: secrets only through a namespaced Role with resourceNames")
                if (group, res) in NAMESPACED_ONLY:
                    c.check(kind == "Role", f"RBAC: {res} only in a namespace (Role)")
    if not snapshots:
        c.check(not (granted & SNAPSHOT_ONLY), "RBAC: snapshotter permissions granted with snapshots off")
    node_rules = rules_of(objects, node_sa)
    c.check(not node_rules, f"RBAC: the node service account must hold no permissions, has {node_rules}")
    node_pod = pods.get("node", {})
    c.check(node_pod.get("automountServiceAccountToken") is False or sas.get(node_sa, {}).get("automountServiceAccountToken") is False,
            "RBAC: the node plugin needs no API token")


def check_secrets(c: Checker, objects, text: str) -> None:
    c.check(not by_kind(objects, "Secret"), "a Secret is rendered: secrets are referenced, never inlined")
    for key in CHAP_KEYS:
        c.check(key not in text, f"{key} appears in the rendered manifests: CHAP credentials are never inlined")
    for sc in by_kind(objects, "StorageClass"):
        params = sc.get("parameters", {})
        refs = {k: v for k, v in params.items() if k.startswith(SECRET_PARAMS)}
        for k in params:
            if "secret" in k:
                c.check(k in refs and (k.endswith("-name") or k.endswith("-namespace")),
                        f"StorageClass/{sc['metadata']['name']}: {k} is not a secret reference")
        if refs:
            for prefix in SECRET_PARAMS:
                for suffix in ("name", "namespace"):
                    c.check(f"{prefix}{suffix}" in refs, f"StorageClass/{sc['metadata']['name']}: {prefix}{suffix} missing")
    for _, doc in objects:
        for pod in [doc.get("spec", {}).get("template", {}).get("spec", {})]:
            for cont in pod.get("containers", []):
                for env in cont.get("env", []):
                    c.check("value" not in env or not re.search(r"(?i)pass|secret|chap", env["name"]),
                            f"{cont['name']}: env {env['name']} inlines a secret")


def check_classes(c: Checker, objects, snapshots: bool, defaults: bool) -> None:
    classes = by_kind(objects, "StorageClass")
    kinds = set()
    for sc in classes:
        name = sc["metadata"]["name"]
        params = sc.get("parameters", {})
        c.check(sc["provisioner"] == DRIVER, f"StorageClass/{name}: provisioner {sc['provisioner']}")
        c.check(sc.get("allowVolumeExpansion") is True, f"StorageClass/{name}: allowVolumeExpansion must be true")
        fs = params.get("csi.storage.k8s.io/fstype")
        c.check(fs in ("ext4", "xfs"), f"StorageClass/{name}: fstype {fs}")
        c.check(params.get("thin") in ("true", "false"), f"StorageClass/{name}: thin {params.get('thin')!r}")
        kinds.add("thin" if params.get("thin") == "true" else fs)
    if defaults:
        c.check({"ext4", "xfs", "thin"} <= kinds, f"StorageClasses for ext4, xfs and thin expected, found {sorted(kinds)}")
    vsc = by_kind(objects, "VolumeSnapshotClass")
    c.check(len(vsc) == (1 if snapshots else 0), f"{len(vsc)} VolumeSnapshotClass with snapshots {'on' if snapshots else 'off'}")
    for cls in vsc:
        c.check(cls["driver"] == DRIVER, f"VolumeSnapshotClass driver {cls['driver']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", default="1.30")
    parser.add_argument("--kubelet-dir", default="/var/lib/kubelet")
    parser.add_argument("--snapshots", choices=["on", "off"], default="off")
    parser.add_argument("--examples", action="store_true", help="schemas only (deploy/examples)")
    parser.add_argument("--not-defaults", action="store_true", help="custom StorageClasses")
    parser.add_argument("--agents", metavar="VALUES", help="agents mode: the values file rendered (its agents.hosts)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    c = Checker()
    objects = load(args.files)
    c.check(bool(objects), "no objects")
    validate_schemas(c, objects, args.kube_version)
    if not args.examples:
        text = "\n".join(Path(f).read_text() for f in args.files)
        snapshots = args.snapshots == "on"
        c.check("0.0.0.0" not in text, "0.0.0.0 appears in the rendered manifests")
        check_csidriver(c, objects)
        hosts = agent_hosts(args.agents) if args.agents else None
        check_controller(c, objects, snapshots, hosts)
        check_agent_daemonset(c, objects, hosts)
        check_node(c, objects, args.kubelet_dir)
        check_rbac(c, objects, snapshots)
        check_capacity(c, objects)
        check_sidecar_versions(c, objects)
        check_metrics(c, objects)
        check_secrets(c, objects, text)
        check_classes(c, objects, snapshots, not args.not_defaults)
    checked = f"{len(objects)} objects in {', '.join(args.files)}"
    return finish(c.failures, f"ok: {checked}", f"FAILED: {checked}")


if __name__ == "__main__":
    sys.exit(main())
