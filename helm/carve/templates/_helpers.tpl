{{/* Names, labels, paths and images shared by every template. */}}

{{- define "carve.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "carve.controllerName" -}}
{{- include "carve.name" . }}-controller
{{- end -}}

{{- define "carve.nodeName" -}}
{{- include "carve.name" . }}-node
{{- end -}}

{{- define "carve.agentName" -}}
{{- include "carve.name" . }}-agent
{{- end -}}

{{- define "carve.labels" -}}
app.kubernetes.io/name: carve
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: pass (list $ "controller"). */}}
{{- define "carve.selector" -}}
app.kubernetes.io/name: carve
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* One of Carve's images: pass (list $ "csi-node"). */}}
{{- define "carve.image" -}}
{{- $ := index . 0 -}}
{{- $tag := $.Values.image.tag | default $.Chart.AppVersion -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $.Values.image.registry) (index . 1) $tag -}}
{{- end -}}

{{/* The CSI socket inside every pod: the driver serves it, every sidecar dials it. */}}
{{- define "carve.socketDir" -}}/csi{{- end -}}
{{- define "carve.socket" -}}{{ include "carve.socketDir" . }}/csi.sock{{- end -}}

{{/* The node plugin's directory on the host, under the kubelet directory. */}}
{{- define "carve.pluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.kubeletDir) .Values.driverName -}}
{{- end -}}

{{- define "carve.chapNamespace" -}}
{{- .Values.chap.secretNamespace | default .Release.Namespace -}}
{{- end -}}

{{/* The controller's portals, checked: required, and never a wildcard address. */}}
{{- define "carve.portals" -}}
{{- $portals := .Values.controller.portals -}}
{{- if not $portals -}}
{{- fail "controller.portals is required: set the storage host's iSCSI address on the storage network, e.g. --set 'controller.portals={192.0.2.10:3260}' (there is no 0.0.0.0 default)" -}}
{{- end -}}
{{- range $portals -}}
{{- if or (hasPrefix "0.0.0.0" .) (hasPrefix "[::]" .) -}}
{{- fail (printf "controller.portals: %s is a wildcard address; name the storage network address" .) -}}
{{- end -}}
{{- end -}}
{{- toJson $portals -}}
{{- end -}}

{{/* Common env of Carve's containers. */}}
{{- define "carve.env" -}}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{ include "carve.podIP" . }}
{{- end -}}

{{/* POD_IP: the node's address in these host-network pods. */}}
{{- define "carve.podIP" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end -}}

{{/* Probes of a driver container. Readiness is Probe, through the livenessprobe sidecar's
/healthz (500 while Probe answers ready=false: the pod shows NotReady). Liveness is only that the
gRPC server answers GetPluginInfo (carvectl, in the image), so a plugin that is up but not ready
(volume group missing, iscsid down) is never restarted for it. */}}
{{- define "carve.probes" -}}
{{ include "carve.probesOn" (list . "127.0.0.1") }}
{{- end -}}

{{/* The livenessprobe sidecar's --probe-timeout: how long /healthz waits for Probe. Its default
(1s, kubernetes-csi/livenessprobe cmd/livenessprobe/main.go, checkProbe) is shorter than the
controller's Probe can take: it reads the volume group (`vgs`) under LVM's lock, 1.5-3 s at
2,000 volumes in the TCG lab, so three slow answers in a row (failureThreshold) showed the pod
NotReady. One second less than the readiness probe's timeoutSeconds (carve.probesOn), so the
sidecar answers before the kubelet gives up. It does not cover the slowest Probes seen there
(8-10 s, during start-up reconciliation of the 2,000): such a probe still fails. */}}
{{- define "carve.probeTimeout" -}}4s{{- end -}}

{{/* carve.probes with the livenessprobe sidecar's /healthz on `host`: pass (list $ host). A
host-network pod's 127.0.0.1 is the node's, which the kubelet reaches; a pod on the pod network
leaves host out (the pod IP), since the kubelet cannot reach the pod's loopback. */}}
{{- define "carve.probesOn" -}}
{{- $ := index . 0 -}}
readinessProbe:
  httpGet:
    {{- with index . 1 }}
    host: {{ . }}
    {{- end }}
    path: /healthz
    port: healthz
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
livenessProbe:
  exec:
    command:
      - /usr/local/bin/carvectl
      - --endpoint=unix://{{ include "carve.socket" $ }}
      - --timeout=10
      - identity
      - info
  initialDelaySeconds: 10
  periodSeconds: 30
  timeoutSeconds: 15
  failureThreshold: 5
{{- end -}}

{{/* A sidecar's image, metrics port (with metrics), resources and socket mount: pass
(list $ $sidecarValues "port name"); the port name is at most 15 characters. */}}
{{- define "carve.sidecarCommon" -}}
{{- $ := index . 0 -}}
{{- $s := index . 1 -}}
image: {{ $s.image }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
{{- if and $.Values.metrics.enabled $s.httpPort }}
ports:
  - name: {{ index . 2 }}
    containerPort: {{ $s.httpPort }}
{{- end }}
{{- with $s.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: socket-dir
    mountPath: {{ include "carve.socketDir" $ }}
{{- end -}}

{{/* The metrics ports of a component, as Service ports: pass (list $ "controller"|"node"|"agent").
The names are the containers' port names. */}}
{{- define "carve.metricsPorts" -}}
{{- $ := index . 0 -}}
{{- if eq (index . 1) "controller" -}}
- name: metrics
  port: {{ $.Values.metrics.controllerPort }}
  targetPort: metrics
- name: provisioner
  port: {{ $.Values.sidecars.provisioner.httpPort }}
  targetPort: provisioner
- name: attacher
  port: {{ $.Values.sidecars.attacher.httpPort }}
  targetPort: attacher
- name: resizer
  port: {{ $.Values.sidecars.resizer.httpPort }}
  targetPort: resizer
{{- if $.Values.snapshots.enabled }}
- name: snapshotter
  port: {{ $.Values.sidecars.snapshotter.httpPort }}
  targetPort: snapshotter
{{- end }}
{{- if $.Values.healthMonitor.enabled }}
- name: health-monitor
  port: {{ $.Values.sidecars.healthMonitor.httpPort }}
  targetPort: health-monitor
{{- end }}
{{- else if eq (index . 1) "agent" -}}
- name: metrics
  port: {{ $.Values.agents.daemonSet.metricsPort }}
  targetPort: metrics
{{- else -}}
- name: metrics
  port: {{ $.Values.metrics.nodePort }}
  targetPort: metrics
{{- end -}}
{{- end -}}
