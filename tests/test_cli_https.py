"""`ecsalb` with HTTPS: the CLI reads no Kubernetes, so a secretRef's Secret comes in the same -f input."""
from __future__ import annotations

import json

from tests.test_cli import ecsalb, write
from tests.test_https import acm_certificates, https_listener, https_manifest, listener_certificates
from tests.tls import issue, tls_secret


def test_a_secret_in_the_input_is_imported_and_served(moto_server, aws, prereqs, tmp_path):
    issued = issue("www.example.com")
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}])
    path = write(tmp_path / "https.yaml", tls_secret("web-tls", issued.tls_crt, issued.key), manifest)

    applied = ecsalb(moto_server, "apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    assert "Created certificate/secret/default/web-tls" in applied.stderr
    [arn] = acm_certificates(aws)
    assert listener_certificates(aws) == (arn, [])
    assert "BEGIN" not in applied.stdout + applied.stderr

    again = ecsalb(moto_server, "plan", "-f", str(path))
    assert again.returncode == 0 and "default/ecs-learning: no changes" in again.stdout, again.stdout


def test_a_secret_missing_from_the_input_is_named_and_the_https_listener_waits(moto_server, aws, prereqs, tmp_path):
    path = write(tmp_path / "https.yaml", https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}]))
    applied = ecsalb(moto_server, "apply", "-f", str(path), "-o", "json")
    assert applied.returncode == 3, applied.stderr  # a pipeline can tell a partial apply from a whole one
    [report] = json.loads(applied.stdout)
    assert report["notes"]["certificate/secret/default/web-tls"] == {
        "reason": "SecretNotFound",
        "message": "Secret default/web-tls: not in the -f input; the CLI reads no Kubernetes: add the Secret's "
                   "manifest (kubectl get secret web-tls -n default -o yaml) to the input"}
    assert report["waiting"]["listener/443"].startswith("waits for its default certificate")
    assert https_listener(aws, 443) is None and https_listener(aws, 80) is not None

    text = ecsalb(moto_server, "apply", "-f", str(path))
    assert text.returncode == 3 and text.stdout.endswith(
        "not all of the stack could be built (see waiting above): exit 3\n"), text.stdout
    text = ecsalb(moto_server, "plan", "-f", str(path))
    assert "  SecretNotFound: Secret default/web-tls: not in the -f input" in text.stdout
    assert "  waiting: listener/443 waits for its default certificate" in text.stdout


def test_self_signed_from_the_cli_is_minted_once(moto_server, aws, prereqs, tmp_path):
    path = write(tmp_path / "https.yaml",
                 https_manifest(prereqs, [{"selfSigned": {"commonName": "example.internal"}}]))
    assert ecsalb(moto_server, "apply", "-f", str(path)).returncode == 0
    [arn] = acm_certificates(aws)
    plan = ecsalb(moto_server, "plan", "-f", str(path))
    assert plan.returncode == 0 and "no changes" in plan.stdout, plan.stdout
    assert listener_certificates(aws) == (arn, [])
