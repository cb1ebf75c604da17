{{/* Chart name and labels. */}}
{{- define "eventstream-streams.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eventstream-streams.labels" -}}
helm.sh/chart: {{ include "eventstream-streams.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eventstream-operator
{{- end }}

{{/*
The seven default streams: resource name, subject, description. The JetStream
names are the resource names in upper case with "_" (AUTH_EVENTS, ...).
*/}}
{{- define "eventstream-streams.defaults" -}}
- {name: auth-events, subject: "auth.>", description: Authentication and user events}
- {name: catalog-events, subject: "catalog.>", description: Product catalog events}
- {name: ddmrp-events, subject: "ddmrp.>", description: DDMRP buffer and planning events}
- {name: execution-events, subject: "execution.>", description: Order execution events}
- {name: analytics-events, subject: "analytics.>", description: Analytics events}
- {name: ai-agent-events, subject: "ai_agent.>", description: AI agent events}
- {name: dlq-events, subject: "dlq.>", description: Dead-lettered events from every stream}
{{- end }}
