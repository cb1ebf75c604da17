{{/* Chart name, overridable with nameOverride. */}}
{{- define "eventstream-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, or release-chart. */}}
{{- define "eventstream-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eventstream-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eventstream-operator.labels" -}}
helm.sh/chart: {{ include "eventstream-operator.chart" . }}
{{ include "eventstream-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eventstream-operator
{{- end }}

{{- define "eventstream-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventstream-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eventstream-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eventstream-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "eventstream-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the NATS credentials file and TLS files are mounted. */}}
{{- define "eventstream-operator.natsCredsDir" -}}/etc/eventstream-operator/nats-creds{{- end }}
{{- define "eventstream-operator.natsTLSDir" -}}/etc/eventstream-operator/nats-tls{{- end }}
{{- define "eventstream-operator.metricsCertDir" -}}/etc/eventstream-operator/metrics-cert{{- end }}
