{{/*
Helpers of the CUDly-rs chart.
*/}}

{{/* The services this chart knows; each runs the binary cudly-<name>. */}}
{{- define "cudly.knownServices" -}}
accounts planner executor sweeper gateway
{{- end }}

{{/*
Who calls whom (docs/design/ARCHITECTURE.md), mirroring each service's Config::from_env:
- callees: the services whose CUDLY_<CALLEE>_URL it reads;
- token: the caller it is, whose CUDLY_INTERNAL_TOKEN_<CALLER> it presents (none for
  accounts, which calls no one): a service holds no other token;
- digests: the callers it accepts (ACCEPTED_CALLERS), whose
  CUDLY_INTERNAL_TOKEN_DIGEST_<CALLER> it reads.
*/}}
{{- define "cudly.wiring" -}}
accounts:
  callees: []
  token: ""
  digests: [gateway, planner, executor]
planner:
  callees: [accounts, executor]
  token: planner
  digests: [gateway, executor, sweeper]
executor:
  callees: [accounts, planner]
  token: executor
  digests: [gateway, planner, sweeper]
sweeper:
  callees: [executor, planner]
  token: sweeper
  digests: [gateway]
gateway:
  callees: [accounts, planner, executor, sweeper]
  token: gateway
  digests: []
{{- end }}

{{- define "cudly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide prefix of every object name. */}}
{{- define "cudly.fullname" -}}
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

{{/* Name of one service's objects. Call with (dict "root" $ "name" $name). */}}
{{- define "cudly.componentName" -}}
{{- printf "%s-%s" (include "cudly.fullname" .root | trunc 54 | trimSuffix "-") .name }}
{{- end }}

{{- define "cudly.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with the root context. */}}
{{- define "cudly.labels" -}}
helm.sh/chart: {{ include "cudly.chart" . }}
app.kubernetes.io/name: {{ include "cudly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cudly
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one service. Call with (dict "root" $ "name" $name). */}}
{{- define "cudly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cudly.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* All labels of one service's objects. Call with (dict "root" $ "name" $name). */}}
{{- define "cudly.componentLabels" -}}
{{ include "cudly.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* ServiceAccount name of one service. Call with (dict "root" $ "name" $name "svc" $svc). */}}
{{- define "cudly.serviceAccountName" -}}
{{- $sa := .svc.serviceAccount | default dict }}
{{- if $sa.create }}
{{- default (include "cudly.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* Image of one service. Call with (dict "root" $ "svc" $svc). */}}
{{- define "cudly.image" -}}
{{- $override := .svc.image | default dict }}
{{- $repository := default .root.Values.image.repository $override.repository }}
{{- if and .root.Values.image.digest (not $override.tag) }}
{{- printf "%s@%s" $repository .root.Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default (default .root.Chart.AppVersion .root.Values.image.tag) $override.tag) }}
{{- end }}
{{- end }}

{{/* Where a service's gRPC certificate Secret is mounted (values tls.grpc). */}}
{{- define "cudly.grpcTlsDir" -}}
/var/run/secrets/cudly/grpc-tls
{{- end }}

{{/* The Secret of one service's gRPC certificate. Call with (dict "root" $ "name" $name). */}}
{{- define "cudly.grpcTlsSecret" -}}
{{- printf "%s-grpc-tls" (include "cudly.componentName" .) }}
{{- end }}

{{/* gRPC address of one service inside the cluster. Call with (dict "root" $ "name" $callee). */}}
{{- define "cudly.grpcUrl" -}}
{{- $svc := index .root.Values.services .name }}
{{- printf "http://%s:%v" (include "cudly.componentName" .) $svc.grpcPort }}
{{- end }}

{{/*
Names of the Secrets, by kind: the existing Secret when given, else the one this chart
creates (templates/secrets.yaml). Call with (dict "root" $ "kind" "<kind>").
*/}}
{{- define "cudly.secretName" -}}
{{- $cfg := index .root.Values.secrets .kind }}
{{- if $cfg.existingSecret }}
{{- $cfg.existingSecret }}
{{- else }}
{{- printf "%s-%s" (include "cudly.fullname" .root) (.kind | kebabcase) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Fails when a plain env map holds a name that looks like a secret. */}}
{{- define "cudly.checkPlainEnv" -}}
{{- range $key, $value := .env }}
{{- if regexMatch "(TOKEN|KEY|PASSWORD|SECRET|CREDENTIAL|DATABASE_URL|REDIS_URL)" (upper $key) }}
{{- fail (printf "%s: %s looks like a secret; plain env must not hold secrets: use the chart's `secrets` or extraEnv with a secretKeyRef" $.where $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The environment of one service. Call with (dict "root" $ "name" $name "svc" $svc).
Every secret is a secretKeyRef (the credential and notification keys: a path to their
mounted file); nothing secret is ever a literal value here.
*/}}
{{- define "cudly.env" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := .svc }}
{{- $upper := upper $name }}
{{- $wiring := index (include "cudly.wiring" $root | fromYaml) $name }}
{{- $secrets := $root.Values.secrets }}
- name: CUDLY_ENV
  value: production
{{- if eq $name "gateway" }}
- name: CUDLY_GATEWAY_ADDR
  value: {{ printf "0.0.0.0:%v" $svc.httpPort | quote }}
{{- else }}
- name: CUDLY_{{ $upper }}_ADDR
  value: {{ printf "0.0.0.0:%v" $svc.grpcPort | quote }}
{{- end }}
- name: CUDLY_{{ $upper }}_METRICS_ADDR
  value: {{ printf "0.0.0.0:%v" $svc.metricsPort | quote }}
- name: CUDLY_{{ $upper }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
{{- $own := $svc.databaseUrlSecret | default dict }}
{{- if $own.name }}
      name: {{ $own.name }}
      key: {{ required (printf "services.%s.databaseUrlSecret.key is required with its name" $name) $own.key }}
{{- else }}
      name: {{ include "cudly.secretName" (dict "root" $root "kind" "databaseUrls") }}
      key: {{ index $secrets.databaseUrls.keys $name }}
{{- end }}
{{- range $callee := $wiring.callees }}
- name: CUDLY_{{ upper $callee }}_URL
  value: {{ include "cudly.grpcUrl" (dict "root" $root "name" $callee) | quote }}
{{- end }}
{{- with $wiring.token }}
- name: CUDLY_INTERNAL_TOKEN_{{ upper . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cudly.secretName" (dict "root" $root "kind" "internalTokens") }}
      key: {{ index $secrets.internalTokens.keys . }}
{{- end }}
{{- range $caller := $wiring.digests }}
- name: CUDLY_INTERNAL_TOKEN_DIGEST_{{ upper $caller }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cudly.secretName" (dict "root" $root "kind" "internalTokens") }}
      key: {{ printf "%s-digest" (index $secrets.internalTokens.keys $caller) }}
{{- end }}
{{- if $root.Values.tls.grpc.enabled }}
{{- $dir := include "cudly.grpcTlsDir" . }}
- name: CUDLY_GRPC_TLS_CERT
  value: {{ printf "%s/tls.crt" $dir | quote }}
- name: CUDLY_GRPC_TLS_KEY
  value: {{ printf "%s/tls.key" $dir | quote }}
- name: CUDLY_GRPC_TLS_CA
  value: {{ printf "%s/ca.crt" $dir | quote }}
{{- if $root.Values.tls.grpc.mutual }}
- name: CUDLY_GRPC_MTLS
  value: "true"
{{- end }}
{{- end }}
{{- if and (eq $name "sweeper") $root.Values.tls.caSecret }}
- name: CUDLY_REDIS_TLS_CA_FILE
  value: /var/run/secrets/cudly/tls/ca.crt
{{- end }}
{{- if eq $name "sweeper" }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cudly.secretName" (dict "root" $root "kind" "redisUrl") }}
      key: {{ $secrets.redisUrl.key }}
{{- end }}
{{- /* Files of the key Secret volumes (deployment.yaml; cudly.keyFiles), not secretKeyRefs. */}}
{{- range $kind := include "cudly.keyFileKinds" . | fromJsonArray }}
{{- $files := include "cudly.keyFiles" (dict "root" $root "kind" $kind) | fromYaml }}
- name: {{ $files.variable }}_FILE
  value: {{ printf "%s/%s" $files.mountPath $files.key | quote }}
{{- with $files.oldKey }}
- name: {{ $files.oldVariable }}_FILE
  value: {{ printf "%s/%s" $files.mountPath . | quote }}
{{- end }}
{{- end }}
{{- if and (eq $name "executor") $root.Values.notifications.enabled }}
- name: CUDLY_PUBLIC_URL
  value: {{ include "cudly.publicUrl" $root | quote }}
{{- end }}
{{- if and (eq $name "gateway") $secrets.bootstrapAdminKey.enabled }}
- name: CUDLY_BOOTSTRAP_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "cudly.secretName" (dict "root" $root "kind" "bootstrapAdminKey") }}
      key: {{ $secrets.bootstrapAdminKey.key }}
{{- end }}
{{- if or (eq $name "accounts") (eq $name "executor") }}
- name: AWS_REGION
  value: {{ $root.Values.aws.region | quote }}
{{- with $root.Values.aws.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- include "cudly.checkPlainEnv" (dict "env" $root.Values.env "where" "env") }}
{{- range $key, $value := $root.Values.env }}
{{- if not (hasKey ($svc.env | default dict) $key) }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- include "cudly.checkPlainEnv" (dict "env" ($svc.env | default dict) "where" (printf "services.%s.env" $name)) }}
{{- range $key, $value := $svc.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with $svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The keys a service reads as files from a Secret volume, as a JSON list of
`secrets` kinds: the credential key of accounts, and the notification key of the
executor when notifications are on. Call with (dict "root" $ "name" $name ...).
*/}}
{{- define "cudly.keyFileKinds" -}}
{{- $kinds := list }}
{{- if eq .name "accounts" }}
{{- $kinds = append $kinds "credentialKey" }}
{{- end }}
{{- if and (eq .name "executor") .root.Values.notifications.enabled }}
{{- $kinds = append $kinds "notifyKey" }}
{{- end }}
{{- toJson $kinds }}
{{- end }}

{{/*
One key as files (secrets.credentialKey, secrets.notifyKey): the Secret's key(s), where
they are mounted and the variables naming them. Returns YAML {kind, volume, mountPath,
variable, oldVariable, key, oldKey} (oldKey empty outside a rotation), e.g. for
credentialKey: volume credential-key at /var/run/secrets/cudly/credential-key,
CUDLY_CREDENTIAL_KEY(_FILE), old key default old-credential-key.
Call with (dict "root" $ "kind" "credentialKey").
*/}}
{{- define "cudly.keyFiles" -}}
{{- $cfg := index .root.Values.secrets .kind }}
{{- $volume := kebabcase .kind }}
{{- $stem := upper (trimSuffix "Key" .kind) }}
{{- $oldKey := "" }}
{{- if or $cfg.oldKeyKey $cfg.oldValue }}
{{- /* The same key name secrets.yaml stores oldValue under. */}}
{{- $oldKey = default (printf "old-%s" $volume) $cfg.oldKeyKey }}
{{- if eq $oldKey (toString $cfg.key) }}
{{- fail (printf "secrets.%s.oldKeyKey must differ from secrets.%s.key" .kind .kind) }}
{{- end }}
{{- end }}
kind: {{ .kind }}
volume: {{ $volume }}
mountPath: {{ printf "/var/run/secrets/cudly/%s" $volume }}
variable: {{ printf "CUDLY_%s_KEY" $stem }}
oldVariable: {{ printf "CUDLY_%s_OLD_KEY" $stem }}
key: {{ required (printf "secrets.%s.key is required" .kind) $cfg.key | quote }}
oldKey: {{ $oldKey | quote }}
{{- end }}

{{/*
CUDLY_PUBLIC_URL of the executor (notifications.publicUrl): the gateway as people
reach it, by default the first ingress host. Call with the root context.
*/}}
{{- define "cudly.publicUrl" -}}
{{- $url := .Values.notifications.publicUrl }}
{{- if and (not $url) .Values.ingress.enabled .Values.ingress.hosts }}
{{- with (first .Values.ingress.hosts).host }}
{{- $url = printf "%s://%s" (ternary "https" "http" (not (empty $.Values.ingress.tls))) . }}
{{- end }}
{{- end }}
{{- $url = required "notifications.publicUrl is required with notifications.enabled when the ingress is off: the gateway's URL as people reach it, e.g. https://cudly.example.com (notifications link to <publicUrl>/approve/<id>)" $url }}
{{- if not (regexMatch "^https?://[^/?#]+" $url) }}
{{- fail (printf "notifications.publicUrl must be an http(s) URL such as https://cudly.example.com, not %q" $url) }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
One NetworkPolicy ingress or egress rule, as a one-item YAML list. Call with
(dict "direction" "from" or "to" "peers" <list of NetworkPolicyPeer> "ports" <list of
NetworkPolicyPort>). An empty peer list leaves out from/to, which allows any peer on
those ports: callers guard the rules whose peers must never be "any" (the services'
own callers and callees).
*/}}
{{- define "cudly.networkPolicyRule" -}}
{{- $rule := dict "ports" .ports }}
{{- with .peers }}
{{- $_ := set $rule $.direction . }}
{{- end }}
{{- list $rule | toYaml }}
{{- end }}

{{/* Probe timings of one service: the global ones overlaid with its own. */}}
{{- define "cudly.probeSettings" -}}
{{- $probes := deepCopy .root.Values.probes }}
{{- $probes = mergeOverwrite $probes (deepCopy (.svc.probes | default dict)) }}
{{- toYaml $probes }}
{{- end }}
