#!/usr/bin/env python3
"""Proves check_manifests.py can fail: each mutation of a good rendering must be caught.

usage: selftest.py RENDERED.yaml   (the chart's default rendering, which must pass)
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from report import finish

HERE = Path(__file__).resolve().parent


def kind(docs, k):
    return next(d for d in docs if d["kind"] == k)


def pod(docs, k):
    return kind(docs, k)["spec"]["template"]["spec"]


def cont(docs, k, name):
    return next(c for c in pod(docs, k)["containers"] if c["name"] == name)


def set_arg(c, prefix, value):
    c["args"] = [value if a.startswith(prefix) else a for a in c["args"]]


MUTATIONS = {
    "attachRequired false": lambda d: kind(d, "CSIDriver")["spec"].update(attachRequired=False),
    "wildcard portal": lambda d: set_arg(cont(d, "Deployment", "csi-controller"), "--portal=", "--portal=0.0.0.0:3260"),
    "inlined secret": lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "chap"},
                                          "stringData": {"chapPassword": "x"}}),
    "inlined secret parameter": lambda d: kind(d, "StorageClass")["parameters"].update(chapPassword="x"),
    "wildcard verb": lambda d: kind(d, "ClusterRole")["rules"][0].update(verbs=["*"]),
    "cluster-wide secrets": lambda d: kind(d, "ClusterRole")["rules"].append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}),
    "node permissions": lambda d: d.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                                            "metadata": {"name": "n"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                            "kind": "ClusterRole", "name": kind(d, "ClusterRole")["metadata"]["name"]},
                                            "subjects": [{"kind": "ServiceAccount", "name": pod(d, "DaemonSet")["serviceAccountName"],
                                                          "namespace": "carve-system"}]}),
    "sidecar dials another socket": lambda d: set_arg(cont(d, "Deployment", "csi-attacher"), "--csi-address=",
                                                      "--csi-address=/run/csi/socket"),
    "controller not pinned": lambda d: pod(d, "Deployment").pop("nodeSelector"),
    "controller not on host network": lambda d: pod(d, "Deployment").update(hostNetwork=False),
    "node not privileged": lambda d: cont(d, "DaemonSet", "csi-node")["securityContext"].update(privileged=False),
    "kubelet dir not Bidirectional": lambda d: next(m for m in cont(d, "DaemonSet", "csi-node")["volumeMounts"]
                                                    if m["name"] == "kubelet-dir").update(mountPropagation="HostToContainer"),
    "no livenessprobe": lambda d: pod(d, "DaemonSet").update(
        containers=[c for c in pod(d, "DaemonSet")["containers"] if c["name"] != "livenessprobe"]),
    "state dir elsewhere": lambda d: set_arg(cont(d, "DaemonSet", "csi-node"), "--state-dir=", "--state-dir=/var/lib/carve"),
    "iscsi node records not the host's": lambda d: set_arg(cont(d, "DaemonSet", "csi-node"), "--iscsi-nodes-dir=",
                                                          "--iscsi-nodes-dir=/var/lib/iscsi/nodes"),
    "unknown field": lambda d: kind(d, "StorageClass").update(bogus=1),
    "no claim metadata": lambda d: cont(d, "Deployment", "csi-provisioner")["args"].remove("--extra-create-metadata"),
    "no leader election": lambda d: cont(d, "Deployment", "csi-provisioner")["args"].remove("--leader-election"),
    "missing host path": lambda d: pod(d, "Deployment").update(
        volumes=[v for v in pod(d, "Deployment")["volumes"] if v["name"] != "etc-lvm"]),
    "liveness is Probe": lambda d: cont(d, "DaemonSet", "csi-node").update(
        livenessProbe=cont(d, "DaemonSet", "csi-node")["readinessProbe"]),
    "no readiness": lambda d: cont(d, "Deployment", "csi-controller").pop("readinessProbe"),
    "capacity without the driver's storageCapacity": lambda d: kind(d, "CSIDriver")["spec"].update(storageCapacity=False),
    "capacity without POD_NAME": lambda d: cont(d, "Deployment", "csi-provisioner").update(
        env=[e for e in cont(d, "Deployment", "csi-provisioner")["env"] if e["name"] != "POD_NAME"]),
    "capacity without its Role": lambda d: next(r for r in d if r["kind"] == "Role")["rules"].pop(1),
    "old sidecar": lambda d: cont(d, "Deployment", "csi-resizer").update(image="registry.k8s.io/sig-storage/csi-resizer:v1.14.0"),
    "metrics port without container port": lambda d: kind(d, "Service")["spec"]["ports"].append(
        {"name": "x", "port": 1, "targetPort": "x"}),
}


def run(docs) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(docs, f)
        f.flush()
        return subprocess.run([sys.executable, str(HERE / "check_manifests.py"), f.name],
                              capture_output=True, text=True).returncode


def main() -> int:
    good = [d for d in yaml.safe_load_all(Path(sys.argv[1]).read_text()) if d]
    failures = []
    if run(good) != 0:
        failures.append("the unmutated rendering fails")
    for name, mutate in MUTATIONS.items():
        docs = copy.deepcopy(good)
        mutate(docs)
        if run(docs) == 0:
            failures.append(f"mutation not caught: {name}")
    return finish(failures, f"ok: all {len(MUTATIONS)} mutations caught")


if __name__ == "__main__":
    sys.exit(main())
