"""Tests of scripts/check-deploy.py: the chart as it is passes, and a copy of it broken on
purpose fails, with the check that catches it named (issue 22: CI fails on a broken
template). Each test copies helm/cudly to a temporary folder, breaks one template and
runs the checker on the copy (--chart) with --require-tools, as CI does.

Needs the checker's tools (.ci/run installs them). Run:
    python3 -m unittest discover --start-directory scripts --pattern test_check_deploy.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "scripts/check-deploy.py"
LINT = "tool: helm lint"
KUBERNETES_SCHEMAS = "tool: kubernetes-validate"
CRD_SCHEMAS = "tool: CRD schemas"
SERVICES = "helm: each service's objects"
OPTIONAL_FEATURES = "helm: optional objects"


def run_checker(chart: Path) -> tuple[int, str, dict[str, str]]:
    """Runs the checker on a chart; returns its exit code, its output and each failed
    check's name with the lines that explain it."""
    result = subprocess.run(
        [sys.executable, str(CHECKER), "--require-tools", "--chart", str(chart)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    output = result.stdout + result.stderr
    failed: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("FAIL  "):
            current = line[len("FAIL  ") :]
            failed[current] = ""
        elif current and line.startswith("        - "):
            failed[current] += line.strip() + "\n"
        else:
            current = None
    return result.returncode, output, failed


def failures_of(failed: dict[str, str], prefix: str) -> str:
    """The explanation of the one failed check whose name starts with prefix."""
    matches = [details for name, details in failed.items() if name.startswith(prefix)]
    if len(matches) != 1:
        raise AssertionError(f"expected one failed check named {prefix}..., failed: {list(failed)}")
    return matches[0]


class CheckDeploy(unittest.TestCase):
    def setUp(self) -> None:
        folder = tempfile.mkdtemp(prefix="check-deploy-")
        self.addCleanup(shutil.rmtree, folder)
        self.chart = Path(folder) / "cudly"
        shutil.copytree(ROOT / "helm/cudly", self.chart)

    def break_template(self, name: str, old: str, new: str) -> None:
        path = self.chart / "templates" / name
        text = path.read_text(encoding="utf-8")
        self.assertIn(old, text, f"{name} changed: update this test's edit")
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def assert_fails(self, code: int, output: str) -> None:
        self.assertEqual(code, 1, output)
        self.assertRegex(output, r"deploy checks: \d+ passed, [1-9]\d* failed, 0 skipped")

    def test_the_chart_as_it_is_passes(self) -> None:
        code, output, failed = run_checker(ROOT / "helm/cudly")
        self.assertEqual((code, failed), (0, {}), output)
        self.assertRegex(output, r"deploy checks: \d+ passed, 0 failed, 0 skipped")

    def test_a_template_that_does_not_parse_fails_lint_and_the_renders(self) -> None:
        # An `if` never closed.
        self.break_template("deployment.yaml", "{{- range $name, $svc := .Values.services }}", "{{- if .Values.image.digest }}\n{{- range $name, $svc := .Values.services }}")
        code, output, failed = run_checker(self.chart)
        self.assert_fails(code, output)
        lint = failures_of(failed, LINT)
        self.assertIn("deployment.yaml", lint)
        self.assertRegex(lint, r"parse error|unexpected EOF")
        self.assertIn("deployment.yaml", failures_of(failed, KUBERNETES_SCHEMAS))

    def test_a_deployment_the_kubernetes_schema_refuses_fails_the_schema_check_only(self) -> None:
        # Renders and lints: only the schema knows that replicas is an integer.
        self.break_template("deployment.yaml", "replicas: {{ $svc.replicas }}", 'replicas: "two"')
        code, output, failed = run_checker(self.chart)
        self.assert_fails(code, output)
        self.assertEqual(list(failed), [name for name in failed if name.startswith(KUBERNETES_SCHEMAS)], output)
        details = failures_of(failed, KUBERNETES_SCHEMAS)
        self.assertRegex(details, r"default-values\.yaml: Deployment check-cudly-\w+: spec\.replicas: 'two' is not of type 'integer'")

    def test_an_unknown_field_fails_the_strict_schema_check(self) -> None:
        self.break_template("deployment.yaml", "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  revisionHistoryLimits: 5\n")
        code, output, failed = run_checker(self.chart)
        self.assert_fails(code, output)
        details = failures_of(failed, KUBERNETES_SCHEMAS)
        self.assertIn("'revisionHistoryLimits' was unexpected", details)
        # Both ci/ values files render it.
        self.assertEqual(len(re.findall(r"^- (default|all-features)-values\.yaml: Deployment ", details, re.M)), 10, details)

    def test_a_certificate_its_crd_schema_refuses_fails_the_crd_check_only(self) -> None:
        self.break_template("grpc-certificates.yaml", "usages: [server auth, client auth]", "usages: [server auth, client-auth]")
        code, output, failed = run_checker(self.chart)
        self.assert_fails(code, output)
        self.assertEqual(list(failed), [name for name in failed if name.startswith(CRD_SCHEMAS)], output)
        self.assertRegex(failures_of(failed, CRD_SCHEMAS), r"all-features-values\.yaml: Certificate check-cudly-\w+-grpc-tls .*spec\.usages\.1: 'client-auth' is not one of")

    def test_the_notification_key_with_notifications_off_fails_the_service_check_only(self) -> None:
        # The executor mounts the notification key whether or not notifications are on.
        self.break_template("_helpers.tpl", '{{- if and (eq .name "executor") .root.Values.notifications.enabled }}', '{{- if eq .name "executor" }}')
        code, output, failed = run_checker(self.chart)
        self.assert_fails(code, output)
        self.assertEqual(list(failed), [name for name in failed if name.startswith(SERVICES)], output)
        self.assertIn("default-values.yaml: executor: notifications are off, but env has CUDLY_NOTIFY_KEY", failures_of(failed, SERVICES))

    def test_smtp_egress_from_every_service_fails_the_network_policy_check_only(self) -> None:
        # The SMTP relay opened to every service, not to the executor alone.
        self.break_template("networkpolicy.yaml", '{{- if and (eq $name "executor") $.Values.notifications.enabled }}\n    {{- $env', "{{- if $.Values.notifications.enabled }}\n    {{- $env")
        self.break_template("networkpolicy.yaml", "{{- if $env.CUDLY_NOTIFY_SMTP_HOST }}", "{{- if true }}")
        code, output, failed = run_checker(self.chart)
        self.assert_fails(code, output)
        self.assertEqual(list(failed), [name for name in failed if name.startswith(OPTIONAL_FEATURES)], output)
        self.assertRegex(failures_of(failed, OPTIONAL_FEATURES), r"all-features-values\.yaml: gateway: SMTP egress \(\[587\]\) is for the executor only")


if __name__ == "__main__":
    unittest.main()
