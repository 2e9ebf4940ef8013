#!/usr/bin/env python3
"""Compares the sidecar images of an older chart's rendering with this chart's.

usage: check_upgrade.py OLD.yaml NEW.yaml

Prints every image an upgrade changes, per workload and container, and fails when an upgrade
would move a sidecar to an older release or drop one (a container of the old rendering that the
new one lacks). Both renderings use the same values file: what `helm upgrade -f values.yaml`
(or --reset-then-reuse-values) applies; `--reuse-values` would keep the old defaults instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from report import finish

SIDECAR_REGISTRY = "registry.k8s.io/sig-storage/"


def images(path: str) -> dict[tuple[str, str], str]:
    out = {}
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if doc and doc.get("kind") in ("Deployment", "DaemonSet"):
            for cont in doc["spec"]["template"]["spec"]["containers"]:
                out[(doc["kind"], cont["name"])] = cont["image"]
    return out


def version(image: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", image.rpartition(":")[2]))


def main() -> int:
    old, new = images(sys.argv[1]), images(sys.argv[2])
    failures = []
    for key, before in sorted(old.items()):
        after = new.get(key)
        where = f"{key[0]}/{key[1]}"
        if after is None:
            failures.append(f"{where}: in the old rendering, gone from the new one")
        elif after != before:
            print(f"{where}: {before} -> {after}")
            if before.startswith(SIDECAR_REGISTRY) and version(after) < version(before):
                failures.append(f"{where}: {before} -> {after} is a downgrade")
    for key in sorted(new.keys() - old.keys()):
        print(f"{key[0]}/{key[1]}: new, {new[key]}")
    return finish(failures, f"ok: {len(old)} containers compared")


if __name__ == "__main__":
    sys.exit(main())
