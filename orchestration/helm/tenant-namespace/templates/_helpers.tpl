{{/* The namespace every object goes to; the chart creates it. */}}
{{- define "tenant-namespace.namespace" -}}
{{- required "namespace is not set: generate the values with `python -m datakit_orchestration.helm <tenant> > values.yaml` and pass them with -f" .Values.namespace -}}
{{- end -}}

{{/* Labels of every object of the chart. */}}
{{- define "tenant-namespace.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: datakit
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
datakit/tenant: {{ required "tenant is not set: generate the values with `python -m datakit_orchestration.helm <tenant>`" .Values.tenant | quote }}
{{- end -}}


{{/* A generated value that must not be empty: (list value "path"); `required` lets `{}` pass. */}}
{{- define "tenant-namespace.generated" -}}
{{- $value := index . 0 -}}
{{- if not $value -}}
{{- fail (printf "%s is empty: generate the tenant's values with `python -m datakit_orchestration.helm <tenant> > values.yaml` and pass them with -f" (index . 1)) -}}
{{- else -}}
{{- toYaml $value -}}
{{- end -}}
{{- end -}}
