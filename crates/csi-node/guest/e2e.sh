#!/bin/bash
# e2e.sh: csi-node end to end in the lab guest, driven with carvectl over a unix socket.
#   cargo build -p csi-node -p carvectl && flock /tmp/carve-vm.lock hack/vm/run --no-build \
#     --share /tmp/nodeshare -- bash crates/csi-node/guest/e2e.sh [SCENARIO...]
# Scenarios: ext4 block xfs serial parts otherfs chap (default: all). Targets are exported by
# raw configfs (lib.sh) because this must not depend on the controller. Every step is timed;
# the run fails on the first failed step; a leak check follows every scenario.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
SOCK=/tmp/n.sock EP=unix:///tmp/n.sock STATE=/var/lib/carve-node LOG=/tmp/csi-node.log
OUT=${OUT:-/mnt/share/e2e}; mkdir -p "$OUT"
fails=0
step() { # step NAME CMD...
  local name=$1 t0 rc=0 out; shift; t0=$(ms)
  out=$("$@" 2>&1) || rc=$?
  printf '%-4s %6d ms  %s\n' "$( ((rc == 0)) && echo ok || echo FAIL)" $(($(ms) - t0)) "$name"
  if ((rc)); then printf '     rc=%d: %s\n' "$rc" "${out//$'\n'/$'\n'     }"; fails=$((fails + 1)); tail -20 "$LOG"; exit 1; fi
}
expect_rc() { local want=$1 rc=0; shift; "$@" || rc=$?; ((rc == want)) || { echo "expected rc $want, got $rc"; return 1; }; }
start_node() {
  RUST_LOG=info,csi_common=debug csi-node --endpoint "$EP" --state-dir "$STATE" --device-timeout 30 >>"$LOG" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 100); do [[ -S $SOCK ]] && return 0; sleep 0.1; done
  echo "csi-node did not start"; return 1
}
stop_node() { kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null; true; }
ctl() { carvectl --endpoint "$EP" --timeout 120 "$@"; }
ctx() { # ctx VOL SERIAL -> publish-context flags
  echo "--publish-context targetIqn=iqn.2024-01.dev.carve:$1 --publish-context portals=$PORTAL --publish-context lun=0 --publish-context serial=$2"
}
no_leaks() {
  local bad=0
  iscsiadm -m session >/dev/null 2>&1 && { echo "session left:"; iscsiadm -m session; bad=1; }
  iscsiadm -m node >/dev/null 2>&1 && { echo "node record left:"; iscsiadm -m node; bad=1; }
  ls /sys/class/scsi_disk/* >/dev/null 2>&1 && { echo "SCSI disk left:"; ls /sys/class/scsi_disk; bad=1; }
  grep -E ' /(stage|pods)/' /proc/self/mountinfo && { echo "mount left"; bad=1; }
  ls "$STATE"/*.json >/dev/null 2>&1 && { echo "stage record left:"; ls "$STATE"; bad=1; }
  return $bad
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
write_file() { head -c 16M /dev/urandom >"$1/data" && sync && sha_of "$1/data" >"/tmp/$2.sha"; }
check_file() { echo 3 >/proc/sys/vm/drop_caches; [[ $(sha_of "$1/data") == "$(cat "/tmp/$2.sha")" ]]; }
write_block() { head -c 4M /dev/urandom >/tmp/$2.bin && dd if=/tmp/$2.bin of="$1" bs=1M oflag=direct status=none && sha_of /tmp/$2.bin >/tmp/$2.sha; }
check_block() { [[ $(head -c 4M "$1" | sha256sum | cut -d' ' -f1) == "$(cat /tmp/$2.sha)" ]]; }

fs_scenario() { # fs_scenario VOL FSTYPE SIZE
  local v=$1 fs=$2 size=$3 ser=5a0c1e00-0000-4000-8000-0000000000$((RANDOM % 90 + 10))
  step "[$fs] export $v ($size)" export_lv "$v" "$size" "$ser"
  mkdir -p "/stage/$v" /pods
  step "[$fs] stage (new volume: format)" ctl node stage "$v" --staging-path "/stage/$v" --fs-type "$fs" $(ctx "$v" "$ser")
  step "[$fs] stage again: idempotent" ctl node stage "$v" --staging-path "/stage/$v" --fs-type "$fs" $(ctx "$v" "$ser")
  step "[$fs] stage at another path: ALREADY_EXISTS" expect_rc 16 ctl node stage "$v" --staging-path /stage/other --fs-type "$fs" $(ctx "$v" "$ser")
  step "[$fs] staging mount is $fs" bash -c "findmnt -n -o FSTYPE /stage/$v | grep -qx $fs"
  step "[$fs] publish" ctl node publish "$v" --staging-path "/stage/$v" --target-path "/pods/$v" --fs-type "$fs"
  step "[$fs] publish again: idempotent" ctl node publish "$v" --staging-path "/stage/$v" --target-path "/pods/$v" --fs-type "$fs"
  step "[$fs] publish again read-only: ALREADY_EXISTS" expect_rc 16 ctl node publish "$v" --staging-path "/stage/$v" --target-path "/pods/$v" --fs-type "$fs" --readonly
  step "[$fs] write 16 MiB + sha256 via the pod path" write_file "/pods/$v" "$v"
  step "[$fs] stats" ctl node stats "$v" --volume-path "/pods/$v" --staging-path "/stage/$v"
  ctl --json node stats "$v" --volume-path "/pods/$v" >"$OUT/stats-$fs.json"
  step "[$fs] unstage while published: FAILED_PRECONDITION" expect_rc 19 ctl node unstage "$v" --staging-path "/stage/$v"
  step "[$fs] publish read-only at a second path" ctl node publish "$v" --staging-path "/stage/$v" --target-path "/pods/$v-ro" --fs-type "$fs" --readonly
  step "[$fs] second path is read-only" expect_rc 1 touch "/pods/$v-ro/x"
  step "[$fs] unpublish both" bash -c "carvectl --endpoint $EP node unpublish $v --target-path /pods/$v && carvectl --endpoint $EP node unpublish $v --target-path /pods/$v-ro"
  step "[$fs] unpublish again: idempotent" ctl node unpublish "$v" --target-path "/pods/$v"
  step "[$fs] target paths removed" bash -c "[[ ! -e /pods/$v && ! -e /pods/$v-ro ]]"
  step "[$fs] unstage" ctl node unstage "$v" --staging-path "/stage/$v"
  step "[$fs] unstage again: idempotent" ctl node unstage "$v" --staging-path "/stage/$v"
  step "[$fs] no session, record, disk, mount or stage record left" no_leaks
  step "[$fs] restage (existing $fs: must not reformat)" ctl node stage "$v" --staging-path "/stage/$v" --fs-type "$fs" $(ctx "$v" "$ser")
  step "[$fs] data survived unstage + restage" check_file "/stage/$v" "$v"
  local t0; t0=$(ms)
  stop_node; start_node || exit 1 # not through step: NODE_PID must stay in this shell
  printf 'ok   %6d ms  %s\n' $(($(ms) - t0)) "[$fs] csi-node restarted (SIGTERM + start) between stage and unstage"
  step "[$fs] stats after restart" ctl node stats "$v" --volume-path "/stage/$v"
  step "[$fs] unstage after restart" ctl node unstage "$v" --staging-path "/stage/$v"
  step "[$fs] no leaks after restart + unstage" no_leaks
  step "[$fs] unexport" unexport_lv "$v"
}

block_scenario() {
  local v=csi-b1 ser=5a0c1e00-0000-4000-8000-0000000000b1
  step "[block] export $v (64M)" export_lv "$v" 64M "$ser"
  mkdir -p "/stage/$v" /pods
  step "[block] stage block (login + verify only)" ctl node stage "$v" --staging-path "/stage/$v" --block $(ctx "$v" "$ser")
  step "[block] stage block again: idempotent" ctl node stage "$v" --staging-path "/stage/$v" --block $(ctx "$v" "$ser")
  step "[block] stage as mount now: ALREADY_EXISTS" expect_rc 16 ctl node stage "$v" --staging-path "/stage/$v" --fs-type ext4 $(ctx "$v" "$ser")
  step "[block] nothing mounted at the staging path" bash -c "! mountpoint -q /stage/$v"
  step "[block] no filesystem was made" bash -c "! blkid -p /dev/disk/by-path/ip-$PORTAL-iscsi-iqn.2024-01.dev.carve:$v-lun-0"
  step "[block] publish" ctl node publish "$v" --staging-path "/stage/$v" --target-path "/pods/$v" --block
  step "[block] publish again: idempotent" ctl node publish "$v" --staging-path "/stage/$v" --target-path "/pods/$v" --block
  step "[block] target is a block device" test -b "/pods/$v"
  step "[block] write 4 MiB + sha256 through the target" write_block "/pods/$v" "$v"
  step "[block] stats (size)" ctl node stats "$v" --volume-path "/pods/$v"
  ctl --json node stats "$v" --volume-path "/pods/$v" >"$OUT/stats-block.json"
  step "[block] unpublish" ctl node unpublish "$v" --target-path "/pods/$v"
  step "[block] unstage" ctl node unstage "$v" --staging-path "/stage/$v"
  step "[block] no leaks" no_leaks
  step "[block] restage + publish" bash -c "carvectl --endpoint $EP node stage $v --staging-path /stage/$v --block $(ctx "$v" "$ser") && carvectl --endpoint $EP node publish $v --staging-path /stage/$v --target-path /pods/$v --block"
  step "[block] data survived" check_block "/pods/$v" "$v"
  step "[block] unpublish + unstage" bash -c "carvectl --endpoint $EP node unpublish $v --target-path /pods/$v && carvectl --endpoint $EP node unstage $v --staging-path /stage/$v"
  step "[block] no leaks" no_leaks
  step "[block] unexport" unexport_lv "$v"
}

serial_scenario() {
  local v=csi-w1
  step "[serial] export $v with serial ...0001" export_lv "$v" 64M 5a0c1e00-0000-4000-8000-000000000001
  mkdir -p "/stage/$v"
  step "[serial] stage with serial ...0002: FAILED_PRECONDITION" expect_rc 19 ctl node stage "$v" --staging-path "/stage/$v" --fs-type ext4 $(ctx "$v" 5a0c1e00-0000-4000-8000-000000000002)
  grep -h "serial" "$LOG" | tail -2
  step "[serial] nothing was written (LV still has no signature)" expect_rc 2 blkid -p "/dev/$VG/$v"
  step "[serial] failed stage rolled back: no leaks" no_leaks
  step "[serial] unexport" unexport_lv "$v"
}

chap_scenario() {
  local v=csi-c1 ser=5a0c1e00-0000-4000-8000-0000000000c3 secret=chap-secret-0123456
  step "[chap] export $v with CHAP on the ACL" export_lv "$v" 64M "$ser" chapuser "$secret"
  mkdir -p "/stage/$v"
  printf 'chapUsername=chapuser\nchapPassword=%s\n' "$secret" >/tmp/chap-ok
  printf 'chapUsername=chapuser\nchapPassword=wrong-secret-999\n' >/tmp/chap-bad
  step "[chap] stage with a wrong secret: refused (FAILED_PRECONDITION)" expect_rc 19 ctl node stage "$v" --staging-path "/stage/$v" --fs-type ext4 $(ctx "$v" "$ser") --secrets-file /tmp/chap-bad
  step "[chap] refused stage left nothing" no_leaks
  step "[chap] stage with the right secret" ctl node stage "$v" --staging-path "/stage/$v" --fs-type ext4 $(ctx "$v" "$ser") --secrets-file /tmp/chap-ok
  step "[chap] node record is 0600 and holds CHAP" bash -c "f=\$(find /etc/iscsi/nodes -type f); stat -c %a \$f | grep -qx 600 && grep -q 'authmethod = CHAP' \$f"
  step "[chap] unstage" ctl node unstage "$v" --staging-path "/stage/$v"
  step "[chap] no leaks" no_leaks
  step "[chap] the secret appears in no log line" bash -c "! grep -q -e '$secret' -e wrong-secret-999 $LOG"
  step "[chap] unexport" unexport_lv "$v"
}

existing_scenario() { # a volume that already holds a filesystem or partition table is never reformatted
  local v=$1 kind=$2 ser=5a0c1e00-0000-4000-8000-0000000000e$3
  step "[$kind] lvcreate $v and put $kind on it before export" bash -c "lvcreate -y -q -V 512M -T $VG/$POOL -n $v >/dev/null && udevadm settle && $4"
  blkid -p -o export "/dev/$VG/$v" >"$OUT/blkid-lv-$kind.txt"; echo "# exit code $?" >>"$OUT/blkid-lv-$kind.txt"
  local before; before=$(head -c 8M "/dev/$VG/$v" | sha256sum)
  step "[$kind] export the same LV" bash -c "
    t=\$(source $(dirname "$0")/lib.sh; lvcreate() { :; }; export -f lvcreate; export_lv $v 512M $ser)"
  step "[$kind] stage ext4: refused" expect_rc 19 ctl node stage "$v" --staging-path "/stage/$v" --fs-type ext4 $(ctx "$v" "$ser")
  grep -h "format decision" "$LOG" | tail -1
  step "[$kind] no leaks" no_leaks
  step "[$kind] first 8 MiB unchanged" bash -c "[[ \"\$(head -c 8M /dev/$VG/$v | sha256sum)\" == '$before' ]]"
  step "[$kind] unexport" unexport_lv "$v"
}

echo "e2e: $(uname -r), portal $PORTAL, initiator $INIT1"
: >"$LOG"
start_node || exit 1
echo "csi-node started (pid $NODE_PID)"
step "NodeGetInfo (node id = initiator IQN)" bash -c "carvectl --endpoint $EP node info | tee /dev/stderr | grep -q '$INIT1'"
step "NodeGetCapabilities" ctl node capabilities
scenarios=${*:-ext4 block xfs serial chap parts otherfs}
for s in $scenarios; do
  case $s in
    ext4) fs_scenario csi-e1 ext4 1G ;;
    xfs) fs_scenario csi-x1 xfs 512M ;;
    block) block_scenario ;;
    serial) serial_scenario ;;
    chap) chap_scenario ;;
    parts) mkdir -p /stage/csi-p1; existing_scenario csi-p1 dospart 1 "python3 -c \"
import struct
mbr=bytearray(512); mbr[446+4]=0x83; mbr[446+8:446+12]=struct.pack('<I',2048); mbr[446+12:446+16]=struct.pack('<I',65536); mbr[510]=0x55; mbr[511]=0xaa
f=open('/dev/$VG/csi-p1','r+b'); f.write(mbr); f.close()\" && sync" ;;
    otherfs) mkdir -p /stage/csi-f1; existing_scenario csi-f1 xfs-on-ext4-request 2 "mkfs.xfs -q /dev/$VG/csi-f1 && mkdir -p /mnt/f1 && mount /dev/$VG/csi-f1 /mnt/f1 && echo precious >/mnt/f1/keep && umount /mnt/f1" ;;
  esac
done
stop_node
cp "$LOG" "$OUT/csi-node.log"
echo "e2e: PASSED ($scenarios)"
