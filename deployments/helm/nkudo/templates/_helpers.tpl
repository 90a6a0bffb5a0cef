{{/* Name of the chart, overridable. */}}
{{- define "nkudo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name of the release's objects. */}}
{{- define "nkudo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the server's pods; never change after install. */}}
{{- define "nkudo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nkudo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "nkudo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nkudo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nkudo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nkudo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nkudo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding NKUDO_ADMIN_KEY and NKUDO_PKI_SEAL_KEY. */}}
{{- define "nkudo.keysSecret" -}}
{{- if .Values.keys.existingSecret -}}
{{- .Values.keys.existingSecret -}}
{{- else -}}
{{- printf "%s-keys" (include "nkudo.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The CloudNativePG Cluster's name, when the chart creates one. */}}
{{- define "nkudo.pgCluster" -}}
{{- printf "%s-pg" (include "nkudo.fullname" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret and key holding NKUDO_DATABASE_URL. */}}
{{- define "nkudo.databaseSecret" -}}
{{- if .Values.cloudnativepg.enabled -}}
{{- printf "%s-app" (include "nkudo.pgCluster" .) -}}
{{- else if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else if .Values.database.url -}}
{{- printf "%s-database" (include "nkudo.fullname" .) -}}
{{- else -}}
{{- fail "nkudo needs PostgreSQL: set database.existingSecret, database.url or cloudnativepg.enabled" -}}
{{- end -}}
{{- end -}}

{{- define "nkudo.databaseKey" -}}
{{- if .Values.cloudnativepg.enabled -}}uri{{- else -}}{{ .Values.database.key }}{{- end -}}
{{- end -}}

{{/*
Names in the server certificate: the Service's in-cluster names and the
operator's external ones (load balancer DNS name or IP).
*/}}
{{- define "nkudo.serverNames" -}}
{{- $svc := include "nkudo.fullname" . -}}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- concat $names .Values.serverNames | uniq | join "," -}}
{{- end -}}

{{/* Environment shared by the migrate init container and the server. */}}
{{- define "nkudo.databaseEnv" -}}
- name: NKUDO_DATA_DIR
  value: /var/lib/nkudo
- name: NKUDO_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "nkudo.databaseSecret" . }}
      key: {{ include "nkudo.databaseKey" . }}
{{- end -}}

{{/* Container security: non-root, nothing writable but the volumes. */}}
{{- define "nkudo.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
