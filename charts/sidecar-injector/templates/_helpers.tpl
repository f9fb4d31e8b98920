{{/* Name of every object: fullnameOverride, else the release name when it contains the chart's name. */}}
{{- define "sidecar-injector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Chart.Name .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: the same as k8s/ so the two installs select the same pods. */}}
{{- define "sidecar-injector.selectorLabels" -}}
app.kubernetes.io/name: sidecar-injector
{{- end -}}

{{- define "sidecar-injector.labels" -}}
{{ include "sidecar-injector.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sidecar-injector.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "sidecar-injector.tlsSecret" -}}
{{- if and .Values.tls.existingSecret (not .Values.certManager.enabled) -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-certs" (include "sidecar-injector.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The webhook's and the agent-present policy's namespaceSelector (they must stay the same). */}}
{{- define "sidecar-injector.namespaceSelector" -}}
{{- if .Values.webhook.namespaceSelector -}}
{{ toYaml .Values.webhook.namespaceSelector }}
{{- else -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: ["kube-system", "kube-public", "kube-node-lease", {{ .Release.Namespace | quote }}]
  - key: sidecar-injector.io/inject
    operator: NotIn
    values: ["disabled"]
{{- end -}}
{{- end -}}

{{- define "sidecar-injector.objectSelector" -}}
{{- if .Values.webhook.objectSelector -}}
{{ toYaml .Values.webhook.objectSelector }}
{{- else -}}
matchExpressions:
  - key: sidecar-injector.io/inject
    operator: NotIn
    values: ["false"]
{{- end -}}
{{- end -}}

{{/* CEL pre-filtering: the apiserver never calls the webhook for these pods (see k8s/mutatingwebhookconfiguration.yaml). */}}
{{- define "sidecar-injector.matchConditions" -}}
- name: not-opted-out-by-annotation
  expression: >-
    !has(object.metadata.annotations) ||
    !('sidecar-injector.io/inject' in object.metadata.annotations) ||
    object.metadata.annotations['sidecar-injector.io/inject'].trim().lowerAscii() != 'false'
- name: not-opted-out-by-label
  expression: >-
    !has(object.metadata.labels) ||
    !('sidecar-injector.io/inject' in object.metadata.labels) ||
    object.metadata.labels['sidecar-injector.io/inject'] != 'false'
- name: not-a-mirror-pod
  expression: >-
    !has(object.metadata.annotations) ||
    !('kubernetes.io/config.mirror' in object.metadata.annotations)
- name: not-windows-by-os
  expression: >-
    !has(object.spec.os) || !has(object.spec.os.name) || object.spec.os.name != 'windows'
- name: not-windows-by-node-selector
  expression: >-
    !has(object.spec.nodeSelector) ||
    !('kubernetes.io/os' in object.spec.nodeSelector) ||
    object.spec.nodeSelector['kubernetes.io/os'] != 'windows'
- name: not-windows-by-node-affinity
  expression: >-
    !has(object.spec.affinity) || !has(object.spec.affinity.nodeAffinity) ||
    !has(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution) ||
    size(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms) == 0 ||
    !object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.all(t,
      has(t.matchExpressions) && t.matchExpressions.exists(e,
        e.key == 'kubernetes.io/os' && e.operator == 'In' && has(e.values) &&
        size(e.values) > 0 && e.values.all(v, v == 'windows')))
{{- end -}}
