#!/usr/bin/env python3
"""Proves check_manifests.py can fail: each mutation of a good rendering must be caught.

usage: selftest.py RENDERED.yaml [--agents AGENTS.yaml VALUES.yaml]
  RENDERED.yaml: the chart's default rendering, which must pass; with --agents, a rendering in
  agents mode with the carve-agent DaemonSet and the values it was rendered with: the agents
  mode invariants (check_manifests.py --agents) are proven on it.
"""

from __future__ import annotations

import argparse
import copy
import json
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


def ds(docs, role):
    """The DaemonSet of a component (node, agent)."""
    return next(d for d in docs if d["kind"] == "DaemonSet"
                and d["metadata"]["labels"]["app.kubernetes.io/component"] == role)["spec"]["template"]["spec"]


def agent(docs):
    return next(c for c in ds(docs, "agent")["containers"] if c["name"] == "carve-agent")


def mount(c, name):
    return next(m for m in c["volumeMounts"] if m["name"] == name)


def volume(p, name):
    return next(v for v in p["volumes"] if v["name"] == name)


def emptied(vol):
    """The volume, now an emptyDir (its source dropped)."""
    for source in [k for k in vol if k != "name"]:
        vol.pop(source)
    vol["emptyDir"] = {}


def agents_file(docs, change):
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cm["data"]["agents.json"] = change(cm["data"]["agents.json"])


def drop_agent(text):
    data = json.loads(text)
    data["agents"].pop()
    return json.dumps(data)


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
    "probe timeout left at its 1s default": lambda d: cont(d, "Deployment", "livenessprobe")["args"].remove(
        next(a for a in cont(d, "Deployment", "livenessprobe")["args"] if a.startswith("--probe-timeout="))),
    "probe timeout set back to 1s by extraArgs": lambda d: cont(d, "Deployment", "livenessprobe")["args"].append(
        "--probe-timeout=1s"),
    "probe timeout past the readiness timeout": lambda d: set_arg(cont(d, "DaemonSet", "livenessprobe"),
                                                                  "--probe-timeout=", "--probe-timeout=9s"),
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

# Agents mode (check_manifests.py --agents): the controller with no host access, its agents file
# and TLS files, and the carve-agent DaemonSet.
AGENT_MUTATIONS = {
    "agents: controller on the host network": lambda d: pod(d, "Deployment").update(hostNetwork=True),
    "agents: controller with host PID": lambda d: pod(d, "Deployment").update(hostPID=True),
    "agents: controller with host IPC": lambda d: pod(d, "Deployment").update(hostIPC=True),
    "agents: controller mounts /dev": lambda d: pod(d, "Deployment")["volumes"].append(
        {"name": "dev", "hostPath": {"path": "/dev", "type": "Directory"}}),
    "agents: controller mounts a harmless host path": lambda d: pod(d, "Deployment")["volumes"].append(
        {"name": "tmp", "hostPath": {"path": "/tmp", "type": "Directory"}}),
    "agents: controller privileged": lambda d: cont(d, "Deployment", "csi-controller")["securityContext"].update(
        privileged=True),
    "agents: a sidecar may escalate": lambda d: cont(d, "Deployment", "csi-attacher")["securityContext"].update(
        allowPrivilegeEscalation=True),
    "agents: writable root filesystem": lambda d: cont(d, "Deployment", "csi-controller")["securityContext"].update(
        readOnlyRootFilesystem=False),
    "agents: capabilities not dropped": lambda d: cont(d, "Deployment", "livenessprobe")["securityContext"].update(
        capabilities={}),
    "agents: a capability added": lambda d: cont(d, "Deployment", "csi-controller")["securityContext"]["capabilities"].update(
        add=["SYS_ADMIN"]),
    "agents: runs as root": lambda d: pod(d, "Deployment")["securityContext"].update(runAsUser=0),
    "agents: root allowed": lambda d: pod(d, "Deployment")["securityContext"].pop("runAsNonRoot"),
    "agents: no seccomp profile": lambda d: pod(d, "Deployment")["securityContext"].pop("seccompProfile"),
    "agents: a host port": lambda d: cont(d, "Deployment", "csi-controller")["ports"][0].update(hostPort=29652),
    "agents: readiness probe on loopback": lambda d: cont(d, "Deployment", "csi-controller")["readinessProbe"][
        "httpGet"].update(host="127.0.0.1"),
    "agents: a local storage host flag": lambda d: cont(d, "Deployment", "csi-controller")["args"].append(
        "--volume-group=vg0"),
    "agents: no --agents": lambda d: cont(d, "Deployment", "csi-controller").update(
        args=[a for a in cont(d, "Deployment", "csi-controller")["args"] if not a.startswith("--agents=")]),
    "agents: TLS secret mounted writable": lambda d: mount(cont(d, "Deployment", "csi-controller"), "agent-tls").update(
        readOnly=False),
    "agents: TLS dir not a Secret": lambda d: emptied(volume(pod(d, "Deployment"), "agent-tls")),
    "agents: agents file mounted writable": lambda d: mount(cont(d, "Deployment", "csi-controller"), "agents").update(
        readOnly=False),
    "agents: agents file not JSON": lambda d: agents_file(d, lambda text: text[:-3]),
    "agents: agents file differs from the values": lambda d: agents_file(d, drop_agent),
    "agent: not privileged": lambda d: agent(d)["securityContext"].update(privileged=False),
    "agent: on every node": lambda d: ds(d, "agent").pop("nodeSelector"),
    "agent: off the host network": lambda d: ds(d, "agent").update(hostNetwork=False),
    "agent: with host PID": lambda d: ds(d, "agent").update(hostPID=True),
    "agent: /etc/lvm not mounted": lambda d: ds(d, "agent").update(
        volumes=[v for v in ds(d, "agent")["volumes"] if v["name"] != "etc-lvm"]),
    "agent: listens on every address": lambda d: set_arg(agent(d), "--listen=", "--listen=0.0.0.0:9811"),
    "agent: a fixed portal": lambda d: set_arg(agent(d), "--portal=", "--portal=192.0.2.10:3260"),
    "agent: TLS secret mounted writable": lambda d: mount(agent(d), "agent-tls").update(readOnly=False),
    "agent: an API token": lambda d: ds(d, "agent").update(automountServiceAccountToken=True),
}


def run(docs, *options: str) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(docs, f)
        f.flush()
        return subprocess.run([sys.executable, str(HERE / "check_manifests.py"), *options, f.name],
                              capture_output=True, text=True).returncode


def prove(rendering: str, mutations: dict, failures: list[str], *options: str) -> None:
    """The rendering passes, and each mutation of it fails, check_manifests.py `options`."""
    good = [d for d in yaml.safe_load_all(Path(rendering).read_text()) if d]
    if run(good, *options) != 0:
        failures.append(f"the unmutated rendering {rendering} fails")
    for name, mutate in mutations.items():
        docs = copy.deepcopy(good)
        mutate(docs)
        if run(docs, *options) == 0:
            failures.append(f"mutation not caught: {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendering")
    parser.add_argument("--agents", nargs=2, metavar=("RENDERING", "VALUES"))
    args = parser.parse_args()
    failures: list[str] = []
    prove(args.rendering, MUTATIONS, failures)
    count = len(MUTATIONS)
    if args.agents:
        prove(args.agents[0], AGENT_MUTATIONS, failures, "--agents", args.agents[1])
        count += len(AGENT_MUTATIONS)
    return finish(failures, f"ok: all {count} mutations caught")


if __name__ == "__main__":
    sys.exit(main())
