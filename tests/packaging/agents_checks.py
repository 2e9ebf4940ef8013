"""The packaging invariants of agents mode (issue #19), for check_manifests.py --agents VALUES.

With agents the controller only dials its agents (mutual TLS) and serves a unix socket to its
sidecars, so its pod must hold no host access at all: each way a pod reaches its host is checked
on its own, so that one left behind is named. The agents file it reads must be exactly what the
values list, and the TLS files come read-only from a Secret. The optional carve-agent DaemonSet
is the storage host runtime, so it needs exactly the single-host controller's host access, on
the storage nodes only, and never a token for the API.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from manifests import by_kind, component, container, flag, host_paths, rules_of

# What the storage host runtime mounts from the host (the single-host controller's and the
# agent's); none of it may reach the agents-mode controller.
STORAGE_HOST_PATHS = {"/dev", "/sys/kernel/config", "/run/lvm", "/etc/lvm", "/lib/modules"}
# The agents file's fields (docs/agents.md); false or empty optional ones are left out.
AGENT_FIELDS = ("name", "address", "serverName", "segments", "pools", "default")


def agent_hosts(values_file: str) -> list[dict]:
    """agents.hosts of the values file, as the agents file should hold them."""
    values = yaml.safe_load(Path(values_file).read_text()) or {}
    hosts = values.get("agents", {}).get("hosts") or []
    return [{k: h[k] for k in AGENT_FIELDS if h.get(k)} for h in hosts]


def mounted_from(pod: dict, cont: dict, path: str) -> tuple[dict, dict]:
    """The mount of `cont` at `path` and the pod volume behind it ({} when none)."""
    mount = next((m for m in cont.get("volumeMounts", []) if m["mountPath"] == path.rstrip("/")), {})
    volume = next((v for v in pod.get("volumes", []) if v["name"] == mount.get("name")), {})
    return mount, volume


def check_agents_controller(c, objects, pod: dict, driver: dict, what: str, hosts: list[dict]) -> None:
    """The controller over agents: no host access, the agents file as the values say, the
    client TLS files read-only from a Secret."""
    c.check(bool(hosts), f"{what}: checked as agents mode but the values list no agents.hosts")
    # No host access, each field on its own.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        c.check(pod.get(field) is not True, f"{what}: {field} with agents (the controller needs no host access)")
    paths = host_paths(pod)
    c.check(not paths, f"{what}: hostPath volumes with agents: {sorted(paths.values())}")
    c.check(not (STORAGE_HOST_PATHS & set(paths.values())), f"{what}: storage host paths mounted with agents")
    pod_sc = pod.get("securityContext", {})
    c.check(pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser", 0) != 0,
            f"{what}: with agents the pod must run as a non-root user (runAsNonRoot, runAsUser)")
    c.check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{what}: seccomp must be RuntimeDefault")
    for cont in pod["containers"]:
        sc = cont.get("securityContext", {})
        name = f"{what}: {cont['name']}"
        c.check(sc.get("privileged") is not True, f"{name} privileged with agents")
        c.check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation must be false")
        c.check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem must be true")
        caps = sc.get("capabilities", {})
        c.check("ALL" in caps.get("drop", []) and not caps.get("add"), f"{name}: capabilities must drop ALL and add none")
        c.check(not any("hostPort" in p for p in cont.get("ports", [])), f"{name}: hostPort with agents")
    # Probes on the pod's own address: the kubelet cannot reach the pod's loopback.
    c.check(driver.get("readinessProbe", {}).get("httpGet", {}).get("host") in (None, ""),
            f"{what}: readiness probe on a fixed host: off the host network the kubelet probes the pod IP")
    # The flags: the agents file and the TLS directory; nothing of a local host.
    for local in ("volume-group", "portal", "accessible-topology", "saveconfig"):
        c.check(not flag(driver, local), f"{what}: --{local} with agents (the controller drives no host)")
    tls_dir = flag(driver, "agent-tls-dir")
    if c.check(len(tls_dir) == 1, f"{what}: --agent-tls-dir missing"):
        mount, volume = mounted_from(pod, driver, tls_dir[0])
        c.check("secret" in volume, f"{what}: --agent-tls-dir {tls_dir[0]} is not mounted from a Secret")
        c.check(mount.get("readOnly") is True, f"{what}: the agent TLS Secret must be mounted read-only")
    agents_file = flag(driver, "agents")
    if not c.check(len(agents_file) == 1, f"{what}: --agents missing"):
        return
    mount, volume = mounted_from(pod, driver, str(Path(agents_file[0]).parent))
    c.check(mount.get("readOnly") is True, f"{what}: the agents file must be mounted read-only")
    cm_name = volume.get("configMap", {}).get("name")
    maps = [m for m in by_kind(objects, "ConfigMap") if m["metadata"]["name"] == cm_name]
    if not c.check(len(maps) == 1, f"{what}: --agents {agents_file[0]} is not from a rendered ConfigMap"):
        return
    text = maps[0].get("data", {}).get(Path(agents_file[0]).name, "")
    try:
        rendered = json.loads(text)
    except json.JSONDecodeError as error:
        c.check(False, f"ConfigMap/{cm_name}: the agents file is not JSON: {error}")
        return
    c.check(rendered == {"agents": hosts}, f"ConfigMap/{cm_name}: agents file {rendered} != the values' {hosts}")


def check_agent_daemonset(c, objects, hosts: list[dict] | None) -> None:
    """The optional carve-agent DaemonSet."""
    found = component(objects, "DaemonSet", "agent")
    if not found:
        return
    ds = found[0]
    what = f"DaemonSet/{ds['metadata']['name']}"
    c.check(hosts is not None, f"{what} without agents mode: a single-host controller would drive the same host")
    pod = ds["spec"]["template"]["spec"]
    agent = container(pod, "carve-agent")
    c.check(bool(pod.get("nodeSelector")), f"{what}: no nodeSelector (it must run on the storage nodes only)")
    c.check(pod.get("hostNetwork") is True, f"{what}: hostNetwork must be true (its portals and listener are the node's)")
    c.check(pod.get("hostPID") is not True, f"{what}: hostPID is not needed")
    c.check(agent.get("securityContext", {}).get("privileged") is True, f"{what}: carve-agent not privileged")
    paths = set(host_paths(pod).values())
    c.check(STORAGE_HOST_PATHS <= paths, f"{what}: host paths missing: {sorted(STORAGE_HOST_PATHS - paths)}")
    saveconfig = flag(agent, "saveconfig")
    c.check(bool(saveconfig) and str(Path(saveconfig[0]).parent) in paths,
            f"{what}: the saveconfig directory is not mounted from the host")
    for name in ("listen", "portal"):
        for address in flag(agent, name) or [""]:
            c.check(address.startswith("$(POD_IP):"), f"{what}: --{name} {address!r} is not the node's address $(POD_IP):PORT")
    tls_dir = flag(agent, "tls-dir")
    if c.check(len(tls_dir) == 1, f"{what}: --tls-dir missing"):
        mount, volume = mounted_from(pod, agent, tls_dir[0])
        c.check("secret" in volume and mount.get("readOnly") is True,
                f"{what}: --tls-dir {tls_dir[0]} is not a read-only Secret mount")
    sa = pod.get("serviceAccountName")
    c.check(pod.get("automountServiceAccountToken") is False, f"{what}: the agent needs no API token")
    c.check(not rules_of(objects, sa), f"{what}: the agent's service account must hold no permissions")
