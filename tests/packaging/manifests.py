"""Small readers of rendered manifests, shared by the packaging checks."""

from __future__ import annotations


def by_kind(objects: list[tuple[str, dict]], kind: str) -> list[dict]:
    return [doc for _, doc in objects if doc["kind"] == kind]


def container(pod: dict, name: str) -> dict:
    return next((c for c in pod["containers"] if c["name"] == name), {})


def flag(cont: dict, name: str) -> list[str]:
    prefix = f"--{name}="
    return [a[len(prefix):] for a in cont.get("args", []) if a.startswith(prefix)]


def host_paths(pod: dict) -> dict[str, str]:
    return {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v}


def socket_path(driver: dict) -> str:
    endpoint = flag(driver, "endpoint")
    return endpoint[0].removeprefix("unix://") if endpoint else ""


def env_names(cont: dict) -> dict[str, str]:
    """Env name -> the fieldRef path (or value) it is set from."""
    return {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", e.get("value", ""))
            for e in cont.get("env", [])}


def component(objects, kind: str, role: str) -> list[dict]:
    """The `kind` objects of one component (label app.kubernetes.io/component)."""
    return [d for d in by_kind(objects, kind) if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == role]


def rules_of(objects, sa_name: str) -> list[tuple[str, dict, str]]:
    """(kind of role, rule, role namespace) of every rule bound to the service account."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in by_kind(objects, "ClusterRole") + by_kind(objects, "Role")}
    out = []
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa_name for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        ns = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], ns, ref["name"]))
        if role is None:
            out.append((ref["kind"], {"missing": ref["name"]}, ns))
            continue
        out.extend((ref["kind"], rule, ns) for rule in role.get("rules", []))
    return out
