#!/usr/bin/env python3
"""Checks Dockerfile.controller, Dockerfile.node and Dockerfile.agent against the code and the chart.

usage: check_images.py --bin-dir target/debug --render rendered.yaml [--render another.yaml ...]

1. Every program csi-controller / csi-node can run is derived from the source (Cmd::new("..."),
   string literals naming a known program, program-name constants, programs chosen by flags) and
   must be installed by that binary's Dockerfile (program -> Debian package table below), or be
   reached on the host through nsenter. An unknown program literal is an error: add it to PACKAGES.
2. Every package the runtime stage installs is needed by something (no extras).
3. The chart's args for each binary, in every rendering given (each binary must run in one),
   are flags its --help lists, the chart sets no command (the image's ENTRYPOINT runs), and
   ENTRYPOINT is the binary the Dockerfile builds; every image serving a CSI socket carries
   carvectl, and the program of every exec probe is installed in the image.
4. Multi-stage build in a Rust image no older than the workspace's rust-version, run on a slim
   Debian image, with the org.opencontainers.image labels.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from report import finish

ROOT = Path(__file__).resolve().parents[2]

# Program -> Debian bookworm package that ships it. "host" marks programs that run on the host.
PACKAGES = {
    # lvm2
    **{p: "lvm2" for p in ("lvm", "lvs", "vgs", "pvs", "lvcreate", "lvremove", "lvchange", "lvextend",
                            "lvresize", "lvrename", "lvconvert", "vgchange", "lvdisplay", "vgdisplay")},
    "dmsetup": "dmsetup",
    "thin_check": "thin-provisioning-tools",
    "targetcli": "targetcli-fb",
    # util-linux
    **{p: "util-linux" for p in ("nsenter", "blockdev", "blkid", "blkdiscard", "fsck", "wipefs", "findmnt", "lsblk",
                                  "mount", "umount", "losetup")},
    # e2fsprogs, xfsprogs
    **{p: "e2fsprogs" for p in ("mkfs.ext4", "mke2fs", "e2fsck", "fsck.ext4", "resize2fs", "tune2fs", "dumpe2fs")},
    **{p: "xfsprogs" for p in ("mkfs.xfs", "xfs_repair", "xfs_growfs", "xfs_admin", "xfs_info", "xfs_db", "fsck.xfs")},
    "udevadm": "udev",
    "sync": "coreutils",
    # the host's open-iscsi, through nsenter (see Dockerfile.node)
    "iscsiadm": "host",
    # the host's multipath-tools, through nsenter (see Dockerfile.node)
    "multipath": "host",
    "multipathd": "host",
}
# Packages a runtime stage may install without a program of the binary naming them, and why.
SUPPORT = {
    "thin-provisioning-tools": "lvm2 runs thin_check/thin_repair on thin pools",
    "libudev1": "linked by csi-node (udev crate)",
    "util-linux": "nsenter for the host's iscsiadm; mount tools",
}
ESSENTIAL = {"coreutils", "util-linux", "bash", "dash"}  # in every debian:*-slim image

# Non-literal Cmd::new arguments that are known: a helper's parameter fed with literals (caught
# by the literal scan, e.g. report("vgs", ..)) or a program chosen by a flag (flag_programs).
DYNAMIC = [r"program", r"program\.display\(\)\.to_string\(\)", r"&?self\.(iscsiadm|targetcli|program|multipathd)(\.display\(\)\.to_string\(\))?", r"multipathd"]

# Each binary: its Dockerfile, the crates whose source runs its programs (carve-agent runs
# csi-controller's storage host runtime), programs chosen by flags, and whether it serves a CSI
# socket (then carvectl, the chart's liveness probe, is in its image).
BINARIES = {
    "csi-controller": {"dockerfile": "Dockerfile.controller", "crates": ["csi-controller", "carve-storage"],
                       "flag_programs": {"targetcli": "targetcli"}, "csi": True},
    "csi-node": {"dockerfile": "Dockerfile.node", "crates": ["csi-node"],
                 "flag_programs": {"iscsiadm": "iscsiadm", "multipath-program": "multipath",
                                   "multipathd-program": "multipathd"}, "csi": True},
    "carve-agent": {"dockerfile": "Dockerfile.agent", "crates": ["carve-agent", "csi-controller", "carve-storage"],
                    "flag_programs": {"targetcli": "targetcli"}, "csi": False},
}


def crate_sources(crate: str) -> dict[Path, str]:
    """The crate's non-test source: test modules and files declared under #[cfg(test)] dropped."""
    src = ROOT / "crates" / crate / "src"
    test_files: set[Path] = set()
    texts = {p: p.read_text() for p in src.rglob("*.rs")}
    for path, text in texts.items():
        for m in re.finditer(
            r'#\[cfg\(test\)\]\s*(?:#\[path\s*=\s*"([^"]+)"\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', text
        ):
            if m.group(1):
                # `#[path = "x_tests.rs"]`: relative to the declaring file's directory.
                test_files.add(path.parent / m.group(1))
                continue
            base = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
            test_files |= {base / f"{m.group(2)}.rs", base / m.group(2) / "mod.rs"}
    out = {}
    for path, text in texts.items():
        if path in test_files:
            continue
        cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*mod\s+\w+\s*\{", text, re.M)
        out[path] = text[: cut.start()] if cut else text
    return out


def call_args(text: str, call: str) -> list[str]:
    """The (balanced-parenthesis) argument text of every `call(` in text."""
    out = []
    for m in re.finditer(re.escape(call), text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(" ".join(text[m.end(): i - 1].split()))
    return out


def programs_of(binary: str, errors: list[str]) -> dict[str, str]:
    """Program -> where it was found."""
    found: dict[str, str] = {}
    sources = {p: t for crate in BINARIES[binary]["crates"] for p, t in crate_sources(crate).items()}
    for path, text in sources.items():
        rel = path.relative_to(ROOT)
        for m in re.finditer(r'Cmd::new\(\s*"([^"]+)"', text):
            found.setdefault(m.group(1), f"{rel}: Cmd::new")
            if m.group(1) not in PACKAGES:
                errors.append(f"{rel}: Cmd::new(\"{m.group(1)}\"): unknown program, add it to PACKAGES")
        for arg in call_args(text, "Cmd::new("):
            if not arg.startswith('"') and not any(re.fullmatch(ok, arg) for ok in DYNAMIC):
                errors.append(f"{rel}: Cmd::new({arg}): program chosen at run time; map it in DYNAMIC")
        for m in re.finditer(r'Cmd::new\(\s*&?format!\(\s*"([^"]*)"', text):
            errors.append(f"{rel}: Cmd::new(format!(\"{m.group(1)}\")): program built at run time, list it explicitly")
        # A known program name as a call's first argument (e.g. report("vgs", ...)) or as a
        # string constant; not any literal (a mount option "sync" is no program).
        for m in re.finditer(r'(?:\w\(\s*|const\s+\w+\s*:\s*&str\s*=\s*)"([A-Za-z0-9_.+-]+)"', text):
            if m.group(1) in PACKAGES:
                found.setdefault(m.group(1), f"{rel}: literal")
    for flag, program in BINARIES[binary]["flag_programs"].items():
        found.setdefault(program, f"--{flag} default")
    return found


def dockerfile(name: str) -> dict:
    text = (ROOT / name).read_text()
    text = re.sub(r"\\\n", " ", text)
    stages = re.split(r"^FROM\s+", text, flags=re.M)
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    runtime = stages[-1]
    packages: set[str] = set()
    for run in re.findall(r"^RUN\s+(.*)$", runtime, re.M):
        for m in re.finditer(r"apt-get install\s+((?:-\S+\s+)*)([^&;]*)", run):
            packages |= {p for p in m.group(2).split() if not p.startswith("-")}
    entry = re.search(r'^ENTRYPOINT\s+\[\s*"([^"]+)"', runtime, re.M)
    return {
        "text": text, "froms": froms, "runtime": runtime, "packages": packages,
        "entrypoint": entry.group(1) if entry else None,
        "labels": set(re.findall(r"(org\.opencontainers\.image\.[a-z]+)=", runtime)),
        "args": dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M)),
    }


def help_flags(binary: Path) -> set[str]:
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^\s+(?:-\w,\s+)?--([a-z0-9-]+)", out, re.M))


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:2])


def check_container(errors: list[str], binary: str, where: str, df: dict, flags: set[str],
                    container: dict, pod: dict) -> None:
    """3. for one container running `binary`: its args, command, image and exec probes."""
    if "command" in container:
        errors.append(f"chart: {binary} sets command; the image's ENTRYPOINT must run")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = container.get(kind, {}).get("exec", {}).get("command", [])
        if command and not re.search(rf"^COPY\s.*\s{re.escape(command[0])}\s*$", df["runtime"], re.M):
            errors.append(f"chart: {binary} {kind} runs {command[0]}, which {where} does not install")
    if not container["image"].rsplit(":", 1)[0].endswith(f"/{binary}"):
        errors.append(f"chart: {binary} runs image {container['image']}")
    for arg in container.get("args", []):
        name = re.match(r"--([a-z0-9-]+)", arg)
        if not name or name.group(1) not in flags:
            errors.append(f"chart: {binary} arg {arg!r} is not a flag of {binary} --help")
    for arg in container.get("args", []):
        if arg.startswith("--iscsiadm=/"):
            path = arg.split("=", 1)[1]
            if path not in df["runtime"]:
                errors.append(f"chart: --iscsiadm {path} is not created by {where}")
            if pod.get("hostPID") is not True:
                errors.append("chart: the iscsiadm wrapper enters PID 1's namespaces: the node needs hostPID")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "debug"))
    parser.add_argument("--render", required=True, action="append",
                        help="a rendering of the chart (repeat: every binary must run in one)")
    args = parser.parse_args()
    errors: list[str] = []
    # Container name -> every (container, pod spec) of that name across the renderings.
    pods: dict[str, list[tuple[dict, dict]]] = {}
    for render in args.render:
        for d in yaml.safe_load_all(Path(render).read_text()):
            if d and d["kind"] in ("Deployment", "DaemonSet"):
                for c in d["spec"]["template"]["spec"]["containers"]:
                    pods.setdefault(c["name"], []).append((c, d["spec"]["template"]["spec"]))
    rust_version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]

    for binary, spec in BINARIES.items():
        crate = binary
        df = dockerfile(spec["dockerfile"])
        where = spec["dockerfile"]
        # 4. shape
        if len(df["froms"]) < 2 or not df["froms"][0].startswith("rust:") or "slim" not in df["froms"][-1]:
            errors.append(f"{where}: want a rust:* build stage and a debian slim runtime stage, got {df['froms']}")
        if version_tuple(df["args"].get("RUST_VERSION", "0")) < version_tuple(rust_version):
            errors.append(f"{where}: RUST_VERSION {df['args'].get('RUST_VERSION')} < rust-version {rust_version}")
        if f"-p {crate}" not in df["text"]:
            errors.append(f"{where}: does not build -p {crate}")
        for label in ("title", "description", "version", "licenses", "source"):
            if f"org.opencontainers.image.{label}" not in df["labels"]:
                errors.append(f"{where}: label org.opencontainers.image.{label} missing")
        # 1. programs
        programs = programs_of(binary, errors)
        needed: set[str] = set()
        for program, found in sorted(programs.items()):
            package = PACKAGES.get(program)
            if package is None:
                continue  # reported as unknown above
            if package == "host":
                if "nsenter" not in df["runtime"] or "util-linux" not in df["packages"]:
                    errors.append(f"{where}: {program} ({found}) runs on the host but nsenter is not installed")
                continue
            needed.add(package)
            if package not in df["packages"] and package not in ESSENTIAL:
                errors.append(f"{where}: {program} ({found}) needs package {package}, not installed")
        # 2. nothing extra
        for package in sorted(df["packages"] - needed - set(SUPPORT)):
            errors.append(f"{where}: installs {package}, which no program of {binary} needs")
        listing = ", ".join(f"{p}({PACKAGES.get(p, 'unknown')})" for p in sorted(programs))
        print(f"{binary}: programs {listing}; "
              f"installs {' '.join(sorted(df['packages']))}")
        # 3. chart vs --help and ENTRYPOINT
        if df["entrypoint"] != f"/usr/local/bin/{binary}" or f"/usr/local/bin/{binary}" not in df["runtime"]:
            errors.append(f"{where}: ENTRYPOINT {df['entrypoint']} is not the installed /usr/local/bin/{binary}")
        if spec["csi"] and ("-p carvectl" not in df["text"] or "/usr/local/bin/carvectl" not in df["runtime"]):
            errors.append(f"{where}: does not build and install carvectl as /usr/local/bin/carvectl")
        if not pods.get(binary):
            errors.append(f"chart: no container named {binary} in {', '.join(args.render)}")
            continue
        flags = help_flags(Path(args.bin_dir) / binary)
        for container, pod in pods[binary]:
            check_container(errors, binary, where, df, flags, container, pod)
    return finish(errors, "ok: Dockerfiles match the code and the chart")


if __name__ == "__main__":
    sys.exit(main())
