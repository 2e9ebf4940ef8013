{{/* The host access of a pod that drives a storage host's LVM and LIO: the single-host
controller and the in-cluster carve-agent run the same runtime (csi_controller::host), so both
take their mounts and volumes from here and neither can drift from the other. */}}

{{/* The container's mounts. */}}
{{- define "carve.storageHostMounts" -}}
- name: dev
  mountPath: /dev
  mountPropagation: HostToContainer
- name: configfs
  mountPath: /sys/kernel/config
  mountPropagation: HostToContainer
- name: saveconfig-dir
  mountPath: {{ dir .Values.controller.saveconfig }}
- name: run-lvm
  mountPath: /run/lvm
- name: lock-lvm
  mountPath: /run/lock/lvm
- name: etc-lvm
  mountPath: /etc/lvm
- name: run-udev
  mountPath: /run/udev
  readOnly: true
- name: lib-modules
  mountPath: /lib/modules
  readOnly: true
{{- end -}}

{{/* The pod's host volumes behind those mounts. */}}
{{- define "carve.storageHostVolumes" -}}
- name: dev
  hostPath:
    path: /dev
    type: Directory
- name: configfs
  hostPath:
    path: /sys/kernel/config
    type: Directory
- name: saveconfig-dir
  hostPath:
    path: {{ dir .Values.controller.saveconfig }}
    type: DirectoryOrCreate
- name: run-lvm
  hostPath:
    path: /run/lvm
    type: DirectoryOrCreate
- name: lock-lvm
  hostPath:
    path: /run/lock/lvm
    type: DirectoryOrCreate
- name: etc-lvm
  hostPath:
    path: /etc/lvm
    type: Directory
- name: run-udev
  hostPath:
    path: /run/udev
    type: Directory
- name: lib-modules
  hostPath:
    path: /lib/modules
    type: Directory
{{- end -}}
