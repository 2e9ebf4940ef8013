#!/bin/bash
# lib.sh: shared helpers for csi-node's guest scripts (sourced). Exports a thin LV over LIO by
# raw configfs exactly as hack/vm/smoke-raw.sh does: an ACL for $CARVE_LAB_INITIATOR, a
# vpd_unit_serial, optional CHAP on the ACL. Run only inside the lab guest (hack/vm/run).
: "${CARVE_LAB_VG:?not in the lab guest: run it through hack/vm/run}"
VG=$CARVE_LAB_VG POOL=$CARVE_LAB_POOL PORTAL=$CARVE_LAB_PORTAL INIT1=$CARVE_LAB_INITIATOR
CFG=/sys/kernel/config/target

ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# export_lv NAME SIZE SERIAL [CHAP_USER CHAP_PASS]: lvcreate + configfs export; prints target IQN.
export_lv() {
  local lv=$1 size=$2 serial=$3 user=${4:-} pass=${5:-}
  local tgt=iqn.2024-01.dev.carve:$lv hba=$CFG/core/iblock_0
  while [[ -e $hba ]]; do hba=$CFG/core/iblock_$((${hba##*_} + 1)); done
  local b=$hba/$lv t=$CFG/iscsi/$tgt/tpgt_1
  lvcreate -y -q -V "$size" -T "$VG/$POOL" -n "$lv" >/dev/null
  udevadm settle
  mkdir -p "$b"
  printf 'udev_path=%s' "/dev/$VG/$lv" >"$b/control"
  printf '%s' "$serial" >"$b/wwn/vpd_unit_serial"
  echo 1 >"$b/enable"
  echo 1 >"$b/attrib/emulate_tpu"
  mkdir -p "$t/lun/lun_0"
  ln -s "$b" "$t/lun/lun_0/$lv"
  mkdir "$t/np/$PORTAL"
  mkdir -p "$t/acls/$INIT1/lun_0"
  ln -s "$t/lun/lun_0" "$t/acls/$INIT1/lun_0/mapped_lun0"
  echo 0 >"$t/attrib/generate_node_acls"
  if [[ -n $user ]]; then
    printf '%s' "$user" >"$t/acls/$INIT1/auth/userid"
    printf '%s' "$pass" >"$t/acls/$INIT1/auth/password"
    echo 1 >"$t/attrib/authentication"
  else
    echo 0 >"$t/attrib/authentication"
  fi
  echo 1 >"$t/enable"
  echo "$tgt"
}

# unexport_lv NAME: tolerant reverse of export_lv, then lvremove.
unexport_lv() {
  local lv=$1 tgt=iqn.2024-01.dev.carve:$1 t b
  t=$CFG/iscsi/$tgt/tpgt_1
  [[ -e $t/enable ]] && echo 0 >"$t/enable"
  rm -f "$t/acls/$INIT1/lun_0/mapped_lun0"
  rmdir "$t/acls/$INIT1/lun_0" "$t/acls/$INIT1" "$t/np/$PORTAL" 2>/dev/null
  rm -f "$t/lun/lun_0/$lv"
  rmdir "$t/lun/lun_0" "$t" "$CFG/iscsi/$tgt" 2>/dev/null
  for b in "$CFG"/core/iblock_*/"$lv"; do [[ -d $b ]] && rmdir "$b" "$(dirname "$b")"; done
  lvremove -y -q "$VG/$lv" >/dev/null 2>&1
  true
}
