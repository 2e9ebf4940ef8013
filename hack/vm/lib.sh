# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts
# lib.sh: helpers shared by hack/vm/build-image and hack/vm/run (sourced, not executed).

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$VM_DIR/../.." && pwd)
CACHE_DIR=${CARVE_VM_CACHE:-$REPO_ROOT/.cache/vm}

log() { printf '[carve-vm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# now_ms: wall clock in milliseconds (bash 5 EPOCHREALTIME, no fork).
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# phase NAME START_MS: print how long a phase took.
phase() { local d=$(($(now_ms) - $2)); log "$(printf '%-22s %6d.%03d s' "$1" $((d / 1000)) $((d % 1000)))"; }

# need_tools "cmd:package" ...: fail with the exact apt-get line for whatever is missing.
need_tools() {
  local spec missing=()
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
  done
  if ((${#missing[@]})); then
    die "missing host tools; install them with:
    sudo apt-get install -y ${missing[*]}
(or run hack/vm/setup-host)"
  fi
}

# A guest kernel's own crash report on the serial console (oops, BUG, panic), as grep -E reads it.
KERNEL_CRASH_RE='Kernel panic - not syncing|BUG: |Oops: |general protection fault'
