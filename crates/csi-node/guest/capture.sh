#!/bin/bash
# capture.sh OUTDIR: records real outputs of iscsiadm, udev, sysfs, blkid and mountinfo in the
# lab guest, for csi-node's fixture-driven unit tests (tests/fixtures/node/).
#   flock /tmp/carve-vm.lock hack/vm/run --no-build --share /tmp/nodeshare -- \
#     bash crates/csi-node/guest/capture.sh /mnt/share/capture
set -u
source "$(dirname "$0")/lib.sh"
OUT=$1; mkdir -p "$OUT"
# cap NAME CMD...: stdout, stderr and rc of CMD into OUT/NAME.{out,err,rc}
cap() { local n=$1; shift; "$@" >"$OUT/$n.out" 2>"$OUT/$n.err"; echo $? >"$OUT/$n.rc"; echo "cap $n rc=$(cat "$OUT/$n.rc")"; }
SER=5a0c1e00-0000-4000-8000-00000000c0de
TGT=$(export_lv cap1 1G $SER)
cap iscsiadm-version iscsiadm --version
cap session-none iscsiadm -m session
cap node-none iscsiadm -m node
cap node-new iscsiadm -m node -o new -T "$TGT" -p "$PORTAL" -I default
cap node-new-again iscsiadm -m node -o new -T "$TGT" -p "$PORTAL" -I default
cap nodes-find find /etc/iscsi/nodes -printf '%p %m %y\n'
REC=$(find /etc/iscsi/nodes -type f | head -1)
cp "$REC" "$OUT/node-record-default.txt"
cap node-show iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default
cap node-list iscsiadm -m node
cap login iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --login
cap login-again iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --login
udevadm settle
cap session-list iscsiadm -m session
cap session-p3 iscsiadm -m session -P 3
cap sysfs-session find /sys/class/iscsi_session/ /sys/class/iscsi_session/session*/ /sys/class/iscsi_connection/ -maxdepth 1
S=$(ls /sys/class/iscsi_session | head -1)
cap sysfs-session-files bash -c "cd /sys/class/iscsi_session/$S && for f in targetname ifacename initiatorname state tpgt; do echo \"\$f=\$(cat \$f)\"; done; readlink -f /sys/class/iscsi_session/$S; ls -d device/target*/*:*:*:*/block/*"
cap sysfs-conn bash -c "for c in /sys/class/iscsi_connection/*; do echo \$c; readlink -f \$c; for f in persistent_address persistent_port address port state; do echo \"\$f=\$(cat \$c/\$f 2>&1)\"; done; done"
DEV=/dev/disk/by-path/ip-$PORTAL-iscsi-$TGT-lun-0
SD=$(basename "$(readlink -f "$DEV")")
cap bypath ls -l /dev/disk/by-path /dev/disk/by-id
cap udev-props udevadm info --query=property --name="/dev/$SD"
cap sysfs-dev bash -c "cd /sys/block/$SD/device && for f in vendor model rev wwid state; do echo \"\$f=\$(cat \$f)\"; done; od -c vpd_pg80; ls; cat /sys/block/$SD/size"
cap blkid-empty-p blkid -p -o export "/dev/$SD"
cap blkid-empty blkid -o export "/dev/$SD"
cap lsblk lsblk -J -b -o NAME,SIZE,TYPE,FSTYPE,SERIAL,WWN "/dev/$SD"
mkfs.ext4 -q -F "/dev/$SD"
cap blkid-ext4 blkid -p -o export "/dev/$SD"
cap e2fsck-clean e2fsck -p "/dev/$SD"
mkfs.xfs -q -f "/dev/$SD"
cap blkid-xfs blkid -p -o export "/dev/$SD"
cap xfs-repair-n xfs_repair -n "/dev/$SD"
wipefs -a "/dev/$SD" >/dev/null
printf 'label: gpt\n,64MiB\n' | sfdisk -q "/dev/$SD" >/dev/null 2>&1
cap blkid-gpt blkid -p -o export "/dev/$SD"
wipefs -a "/dev/$SD" >/dev/null
printf 'label: dos\n,64MiB\n' | sfdisk -q "/dev/$SD" >/dev/null 2>&1
cap blkid-dos blkid -p -o export "/dev/$SD"
udevadm settle
wipefs -a "/dev/${SD}1" "/dev/$SD" >/dev/null 2>&1; udevadm settle
mkfs.ext4 -q -F "/dev/$SD"
mkdir -p /stage/v1 /pods/p1 && mount "/dev/$SD" /stage/v1 && mount --bind /stage/v1 /pods/p1 && mount -o remount,bind,ro /pods/p1
touch /pods/blk1 && mount --bind "/dev/$SD" /pods/blk1
cap mountinfo cat /proc/self/mountinfo
cap blockdev-getsize64 blockdev --getsize64 "/dev/$SD"
cap blockdev-flush blockdev --flushbufs "/dev/$SD"
umount /pods/blk1 /pods/p1 /stage/v1
# CHAP: auth fields written into the node record file (no argv), wrong secret refused.
cap logout iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --logout
cap logout-again iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --logout
cap delete-record iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default -o delete
cap delete-record-again iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default -o delete
cap session-after iscsiadm -m session
unexport_lv cap1
TGT=$(export_lv cap2 64M 5a0c1e00-0000-4000-8000-00000000c0d2 chapuser chap-secret-0123)
iscsiadm -m node -o new -T "$TGT" -p "$PORTAL" -I default >/dev/null
REC=$(find /etc/iscsi/nodes -type f -path "*$TGT*" | head -1)
cap login-nochap iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --login
grep -v '^node.session.auth\.' "$REC" >/tmp/rec; { cat /tmp/rec; printf 'node.session.auth.authmethod = CHAP\nnode.session.auth.username = chapuser\nnode.session.auth.password = wrong-secret-000\n'; } >"$REC"
cap login-wrongchap iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --login
grep -v '^node.session.auth\.' "$REC" >/tmp/rec; { cat /tmp/rec; printf 'node.session.auth.authmethod = CHAP\nnode.session.auth.username = chapuser\nnode.session.auth.password = chap-secret-0123\n'; } >"$REC"
cap login-chap iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --login
cap node-show-chap iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default
cp "$REC" "$OUT/node-record-chap.txt"
iscsiadm -m node -T "$TGT" -p "$PORTAL" -I default --logout >/dev/null
iscsiadm -m node -o new -T "$TGT" -p "$PORTAL" -I "$CARVE_LAB_IFACE2" >/dev/null
cap login-iface2 iscsiadm -m node -T "$TGT" -p "$PORTAL" -I "$CARVE_LAB_IFACE2" --login
iscsiadm -m node -T "$TGT" -p "$PORTAL" -o delete
cap node-after iscsiadm -m node
unexport_lv cap2
cap login-notarget-record iscsiadm -m node -T iqn.2024-01.dev.carve:nothere -p "$PORTAL" -I default --login
iscsiadm -m node -o new -T iqn.2024-01.dev.carve:nothere -p "$PORTAL" -I default >/dev/null
cap login-notarget iscsiadm -m node -T iqn.2024-01.dev.carve:nothere -p "$PORTAL" -I default --login
iscsiadm -m node -T iqn.2024-01.dev.carve:nothere -p "$PORTAL" -o delete
echo capture done
