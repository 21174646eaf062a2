{{/* Name of the chart, for app.kubernetes.io/name. */}}
{{- define "openmodel.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: cluster-scoped objects (ClusterRole, bindings) are named after it, so releases never clash. */}}
{{- define "openmodel.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "openmodel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "openmodel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "openmodel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "openmodel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: openmodel
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "openmodel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "openmodel.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image; the fetch Jobs run the same image unless fetchImage says otherwise. */}}
{{- define "openmodel.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "openmodel.namespaced" -}}
{{- if eq .Values.watch.scope "namespaces" -}}true{{- end -}}
{{- end -}}

{{/* Rules for everything namespaced the operator does (ClusterRole when watching all namespaces, else a Role per namespace). */}}
{{- define "openmodel.namespacedRules" -}}
# OpenModels: listed and watched (Kopf, routed to the operator's model cache); patched by the operator for its
# openmodel.io/cleanup finalizer; status written by the reconciler
- apiGroups: [openmodel.io]
  resources: [openmodels]
  verbs: [list, watch, patch]
- apiGroups: [openmodel.io]
  resources: [openmodels/status]
  verbs: [patch]
# Events on OpenModels (condition transitions), created by the operator under names of its own
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Children: server-side applied (create + patch), watched by label, deleted with their OpenModel
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# ReplicaSets: read only, by the admission guard, to tell whether a new pod with a model Service's labels
# comes from the operator's own Deployment (docs/rbac.md).
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
# Secrets, by name only, never listed or watched: Hub tokens named by spec.source.tokenSecretRef (get), the
# API key the operator generates for spec.serving.access.apiKey (created once, deleted with the model), and the
# operator's attestation key (OPENMODEL_ATTESTATION_KEY_SECRET: read, created once when absent)
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, delete]
{{- end -}}

{{/* Cluster-scoped rules, needed in every watch scope and role. */}}
{{- define "openmodel.clusterRules" -}}
# ModelTrustPolicies and Namespaces: watch indexes (which policies govern which namespace); a policy itself
# is never written (no finalizer), only its status (governedModels, Accepted), and not by a shard
- apiGroups: [openmodel.io]
  resources: [modeltrustpolicies]
  verbs: [list, watch]
{{- if ne .Values.role "shard" }}
- apiGroups: [openmodel.io]
  resources: [modeltrustpolicies/status]
  verbs: [patch]
{{- end }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- if include "openmodel.webhooks" . }}
# The admission webhooks: written into the configuration this release made, and into no other; the operator
# never creates webhook configurations and never touches mutating ones
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations]
  resourceNames: [{{ .Values.webhooks.configurationName }}]
  verbs: [patch]
{{- end }}
# Kopf notices CRDs being installed or removed while it runs
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end -}}

{{/* "true" when this release serves the admission webhooks: the one operator of the cluster (a shard leaves them
to it, a policy-status writer reconciles no model; docs/install.md, "Admission webhooks"). */}}
{{- define "openmodel.webhooks" -}}
{{- if and .Values.webhooks.enabled (eq .Values.role "operator") -}}true{{- end -}}
{{- end -}}

{{/* OPENMODEL_POLICY_STATUS of a role: who writes the ModelTrustPolicies' status. */}}
{{- define "openmodel.policyStatus" -}}
{{- if eq .Values.role "shard" -}}off{{- else if eq .Values.role "policyStatus" -}}only{{- else -}}on{{- end -}}
{{- end -}}

{{/* Fail early on combinations the schema cannot express. */}}
{{- define "openmodel.validate" -}}
{{- if and (eq .Values.role "policyStatus") (ne .Values.watch.scope "all") -}}
{{- fail "role=policyStatus counts the models of every namespace: it needs watch.scope=all" -}}
{{- end -}}
{{- if and (eq .Values.watch.scope "patterns") .Values.ha.enabled -}}
{{- fail "watch.scope=patterns cannot have ha.enabled: Kopf peers in each watched namespace, and no KopfPeering can be rendered for a pattern; run one replica per shard" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.ha.enabled) -}}
{{- fail "replicas > 1 needs ha.enabled=true: without Kopf peering every replica would reconcile every model" -}}
{{- end -}}
{{- if and (include "openmodel.webhooks" .) .Values.ha.enabled (not .Values.webhooks.certManager.enabled) -}}
{{- fail "ha.enabled with webhooks.enabled needs webhooks.certManager.enabled=true: every replica serves the webhooks, and each would make its own self-signed CA; or set webhooks.enabled=false (validation at reconcile only)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true" -}}
{{- end -}}
{{- if and (eq .Values.watch.scope "namespaces" "patterns") (empty .Values.watch.namespaces) -}}
{{- fail (printf "watch.scope=%s needs at least one entry in watch.namespaces" .Values.watch.scope) -}}
{{- end -}}
{{- end -}}

{{/* The claim reports Service: a DNS label of at most 63 characters. */}}
{{- define "openmodel.claimReportsService" -}}
{{- printf "%s-claim-reports" (include "openmodel.fullname" . | trunc 49 | trimSuffix "-") -}}
{{- end -}}

{{/* Whether this release serves claim reports: it reconciles models (not role policyStatus) and it is enabled. */}}
{{- define "openmodel.claimReports" -}}
{{- if and .Values.claimReports.enabled (ne .Values.role "policyStatus") -}}true{{- end -}}
{{- end -}}
