{{/* Several storage hosts (docs/agents.md): agents.hosts is the agents file, checked here so a
mistake fails the rendering (nothing is applied) instead of stopping the controller at start. */}}

{{/* "true" when agents.hosts lists storage hosts (the controller then drives carve-agents and
needs no host access), else empty: the single-host controller, exactly as before. */}}
{{- define "carve.agentsMode" -}}
{{- if .Values.agents.hosts }}true{{ end -}}
{{- end -}}

{{/* The agents file's JSON ({"agents": [...]}, docs/agents.md), after checking what the
controller would refuse at start: each name (1-24 of [a-z0-9-], alphanumeric ends; it goes into
volume ids), each address (https://HOST:PORT), exactly one pool each, no name twice, at most one
default. Only the file's own fields are written. */}}
{{- define "carve.agentsJson" -}}
{{- $seen := dict -}}
{{- $defaults := list -}}
{{- $agents := list -}}
{{- range $i, $h := .Values.agents.hosts -}}
{{- $where := printf "agents.hosts[%d]" $i -}}
{{- $name := $h.name | default "" | toString -}}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$" $name) -}}
{{- fail (printf "%s: name %q must be 1-24 characters of [a-z0-9-], beginning and ending with a letter or digit (it goes into the ids of that host's volumes)" $where $name) -}}
{{- end -}}
{{- $where = printf "agents.hosts[%d] (%s)" $i $name -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "%s: the name %s is listed twice; each storage host needs its own name" $where $name) -}}
{{- end -}}
{{- $_ := set $seen $name true -}}
{{- $address := $h.address | default "" | toString -}}
{{- $port := regexReplaceAll "^.*:([0-9]{1,5})/?$" $address "${1}" -}}
{{- if or (not (regexMatch "^https://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}/?$" $address)) (lt (int $port) 1) (gt (int $port) 65535) -}}
{{- fail (printf "%s: address %q must be https://HOST:PORT (the agent's address, [v6addr] for IPv6; agents speak only mutual TLS)" $where $address) -}}
{{- end -}}
{{- $pools := $h.pools | default list -}}
{{- if ne (len $pools) 1 -}}
{{- fail (printf "%s: pools must list exactly one volume group (carve-agent serves one), not %d" $where (len $pools)) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$" (index $pools 0 | toString)) -}}
{{- fail (printf "%s: pools: %q is not a volume group name" $where (index $pools 0 | toString)) -}}
{{- end -}}
{{- $agent := dict "name" $name "address" $address "pools" $pools -}}
{{- with $h.serverName }}{{ $_ := set $agent "serverName" . }}{{ end -}}
{{- with $h.segments }}{{ $_ := set $agent "segments" . }}{{ end -}}
{{- if $h.default -}}
{{- $defaults = append $defaults $name -}}
{{- $_ := set $agent "default" true -}}
{{- end -}}
{{- $agents = append $agents $agent -}}
{{- end -}}
{{- if gt (len $defaults) 1 -}}
{{- fail (printf "agents.hosts: %s are all marked default; at most one may be (ids without a host name are its)" (join ", " $defaults)) -}}
{{- end -}}
{{- toPrettyJson (dict "agents" $agents) -}}
{{- end -}}

{{/* Where the agents-mode controller finds the agents file and its client TLS files. */}}
{{- define "carve.agentsDir" -}}/etc/carve/agents{{- end -}}
{{- define "carve.agentTlsDir" -}}/etc/carve/agent-tls{{- end -}}

{{/* The container securityContext of every container in the agents-mode controller pod
(Pod Security "restricted"): it only dials agents and serves a unix socket to its sidecars. */}}
{{- define "carve.restricted" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* "true" when the nodes report topology (csi-node --topology-file from topology.nodeFile):
with agents, when any host has segments (the controller then advertises
VOLUME_ACCESSIBILITY_CONSTRAINTS and the provisioner needs every node's); else when
topology.accessible is set. topology.accessible with agents is refused, as the controller would
refuse --accessible-topology: each host's segments say where its volumes are reachable from. */}}
{{- define "carve.nodeTopology" -}}
{{- if include "carve.agentsMode" . -}}
{{- if .Values.topology.accessible -}}
{{- fail "topology.accessible is the single-host controller's: with agents.hosts, give each host its segments instead" -}}
{{- end -}}
{{- range .Values.agents.hosts }}{{ if .segments }}true{{ end }}{{ end -}}
{{- else if .Values.topology.accessible -}}
true
{{- end -}}
{{- end -}}
