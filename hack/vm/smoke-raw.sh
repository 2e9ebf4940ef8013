#!/bin/bash
# smoke-raw.sh: raw-tools smoke test of the lab data path (vm-lab.md §3), run INSIDE the guest:
#   hack/vm/run --no-build -- hack/vm/smoke-raw.sh
# thin LV -> LIO export by direct configfs (rtslib layout, ACL for node1 only) -> iscsiadm node
# record + login (no discovery) -> by-path disk -> ext4 + 16 MiB sha256 round trip across a
# logout/login -> node2 is refused (rc 24) -> teardown -> leak check. Every step is timed;
# exits 1 on the first failed step (after a best-effort teardown) or on any leak.
set -euo pipefail
: "${CARVE_LAB_VG:?not in the lab guest: run it through hack/vm/run}"
VG=$CARVE_LAB_VG POOL=$CARVE_LAB_POOL PORTAL=$CARVE_LAB_PORTAL
INIT1=$CARVE_LAB_INITIATOR IFACE2=$CARVE_LAB_IFACE2
LV=smoke1 TGT=iqn.2024-01.dev.carve:smoke1 SERIAL=5a0c1e00-0000-4000-8000-000000000001
CFG=/sys/kernel/config/target MNT=/mnt/smoke1
T=$CFG/iscsi/$TGT/tpgt_1
DEV=/dev/disk/by-path/ip-$PORTAL-iscsi-$TGT-lun-0
HBA=$CFG/core/iblock_0
while [[ -e $HBA ]]; do HBA=$CFG/core/iblock_$((${HBA##*_} + 1)); done # first free HBA index
B=$HBA/$LV

ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
t_start=$(ms) failed=0
# step NAME CMD...: run, time and report; abort (with teardown) on failure.
step() {
  local name=$1 t0 out rc=0
  shift
  t0=$(ms)
  out=$("$@" 2>&1) || rc=$?
  printf '%-4s %6d ms  %s\n' "$( ((rc == 0)) && echo ok || echo FAIL)" $(($(ms) - t0)) "$name"
  if ((rc != 0)); then
    printf '     rc=%d: %s\n' "$rc" "${out//$'\n'/$'\n'     }"
    exit 1
  fi
}
# expect_rc WANT CMD...: succeed iff CMD exits with WANT.
expect_rc() {
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  ((rc == want)) || { echo "expected rc $want, got $rc"; return 1; }
}
# check NAME CMD...: like step, but only counts the failure (used by the leak check).
check() {
  local name=$1 t0 out rc=0
  shift
  t0=$(ms)
  out=$("$@" 2>&1) || rc=$?
  printf '%-4s %6d ms  %s\n' "$( ((rc == 0)) && echo ok || echo LEAK)" $(($(ms) - t0)) "$name"
  ((rc == 0)) || { failed=$((failed + 1)); printf '     %s\n' "${out//$'\n'/$'\n'     }"; }
}

export_configfs() {
  mkdir -p "$B"
  printf 'udev_path=%s' "/dev/$VG/$LV" >"$B/control"
  printf '%s' "$SERIAL" >"$B/wwn/vpd_unit_serial"
  echo 1 >"$B/enable"
  echo 1 >"$B/attrib/emulate_tpu" # thin LV: let the initiator UNMAP
  mkdir -p "$T/lun/lun_0"
  ln -s "$B" "$T/lun/lun_0/$LV"
  mkdir "$T/np/$PORTAL"
  mkdir -p "$T/acls/$INIT1/lun_0"
  ln -s "$T/lun/lun_0" "$T/acls/$INIT1/lun_0/mapped_lun0"
  echo 0 >"$T/attrib/generate_node_acls"
  echo 0 >"$T/attrib/authentication"
  echo 1 >"$T/enable"
}
unexport_configfs() { # tolerant: removes whatever exists, in reverse order
  [[ -e $T/enable ]] && echo 0 >"$T/enable"
  rm -f "$T/acls/$INIT1/lun_0/mapped_lun0"
  rmdir "$T/acls/$INIT1/lun_0" "$T/acls/$INIT1" "$T/np/$PORTAL" 2>/dev/null || true
  rm -f "$T/lun/lun_0/$LV"
  rmdir "$T/lun/lun_0" "$T" "$CFG/iscsi/$TGT" 2>/dev/null || true
  rmdir "$B" "$HBA" 2>/dev/null || true
  [[ ! -e $CFG/iscsi/$TGT && ! -e $B ]]
}
wait_dev() { # wait_dev PATH: udev settle, then up to 10 s for the link
  udevadm settle
  for _ in $(seq 100); do [[ -b $1 ]] && return 0; sleep 0.1; done
  echo "$1 did not appear"; return 1
}
write_data() {
  head -c 16M /dev/urandom >"$MNT/data"
  sync
  sha256sum "$MNT/data" | cut -d' ' -f1 >/tmp/smoke1.sha
}
verify_data() {
  echo 3 >/proc/sys/vm/drop_caches
  [[ $(sha256sum "$MNT/data" | cut -d' ' -f1) == "$(cat /tmp/smoke1.sha)" ]]
}
login() { iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --login; }
logout() { iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --logout; }

teardown() {
  umount "$MNT" 2>/dev/null || true
  iscsiadm -m node -T "$TGT" -p "$PORTAL" --logout >/dev/null 2>&1 || true
  iscsiadm -m node -T "$TGT" -p "$PORTAL" -o delete >/dev/null 2>&1 || true
  udevadm settle
  unexport_configfs
  ! lvs "$VG/$LV" >/dev/null 2>&1 || lvremove -y "$VG/$LV"
}
on_exit() { rc=$?; ((rc == 0)) || { echo "smoke-raw: FAILED, tearing down"; teardown >/dev/null 2>&1 || true; }; }
trap on_exit EXIT

echo "smoke-raw: kernel $(uname -r), VG $VG, pool $POOL, portal $PORTAL, target $TGT"
step "lvcreate thin LV 1G $VG/$LV" lvcreate -y -q -V 1G -T "$VG/$POOL" -n "$LV"
step "LV device node /dev/$VG/$LV" wait_dev "/dev/$VG/$LV"
step "configfs export ($B, LUN 0, $PORTAL, ACL $INIT1)" export_configfs
step "iscsiadm node record (no discovery)" iscsiadm -m node -o new -T "$TGT" -p "$PORTAL" -I default
step "iscsiadm login (node1)" login
step "by-path disk appears" wait_dev "$DEV"
has_serial() { sg_inq -p 0x80 "$DEV" | grep -qi "$SERIAL"; }
step "disk is $(readlink -f "$DEV"), VPD 0x80 has our unit serial" has_serial
step "mkfs.ext4" mkfs.ext4 -q -F "$DEV"
step "mkdir $MNT" mkdir -p "$MNT"
step "mount $DEV $MNT" mount "$DEV" "$MNT"
step "write 16 MiB random + sha256" write_data
step "umount" umount "$MNT"
step "iscsiadm logout" logout
step "by-path link gone" bash -c "udevadm settle; [[ ! -e '$DEV' ]]"
step "iscsiadm login again" login
step "by-path disk reappears" wait_dev "$DEV"
step "mount again" mount "$DEV" "$MNT"
step "sha256 matches after relogin" verify_data
step "umount" umount "$MNT"
step "node2 iface record" iscsiadm -m node -o new -T "$TGT" -p "$PORTAL" -I "$IFACE2"
step "node2 login refused (rc 24, not in ACL)" expect_rc 24 \
  iscsiadm -m node -T "$TGT" -p "$PORTAL" -I "$IFACE2" --login
step "iscsiadm logout node1" logout
step "delete node records" iscsiadm -m node -T "$TGT" -p "$PORTAL" -o delete
step "udevadm settle" udevadm settle
step "configfs unexport" unexport_configfs
step "lvremove" lvremove -y -q "$VG/$LV"

echo "smoke-raw: leak check"
no_lv() { ! lvs --noheadings "$VG/$LV"; }
no_lio() { # no storage object under core/, no target under iscsi/
  local left
  left=$(find "$CFG/core" -mindepth 2 -maxdepth 2 -type d -path "$CFG/core/*_[0-9]*/*"; find "$CFG/iscsi" -mindepth 1 -maxdepth 1 -name 'iqn.*')
  [[ -z $left ]] || { echo "$left"; return 1; }
}
no_session() { expect_rc 21 iscsiadm -m session; }
no_node() { expect_rc 21 iscsiadm -m node; }
no_mount() { ! findmnt "$MNT" && ! grep -q "$TGT" /proc/mounts; }
check "no LV $VG/$LV" no_lv
check "no backstore/target in configfs" no_lio
check "no iSCSI session" no_session
check "no iscsiadm node record" no_node
check "no mount on $MNT" no_mount
check "no SCSI disk left" bash -c '! ls /sys/class/scsi_disk/* >/dev/null 2>&1'

total=$(($(ms) - t_start))
if ((failed)); then
  echo "smoke-raw: FAILED ($failed leak checks) in $total ms"
  exit 1
fi
echo "smoke-raw: PASSED in $total ms"
