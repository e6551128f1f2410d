"""`ecsalb` with HTTPS: the CLI reads no Kubernetes, so a secretRef's Secret comes in the same -f input."""
from __future__ import annotations

import pytest

from tests.test_cli import ecsalb, write
from tests.test_https import acm_certificates, https_manifest, listener_certificates
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


def nothing_built(aws) -> bool:
    """No resource of the stack on AWS: what a refusal before the first write leaves."""
    groups = [g for g in aws.ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
    return (aws.elbv2.describe_load_balancers()["LoadBalancers"], aws.elbv2.describe_target_groups()["TargetGroups"],
            groups, acm_certificates(aws)) == ([], [], [], {})


@pytest.mark.parametrize("command", ["apply", "plan"])
def test_a_secret_missing_from_the_input_is_refused_before_any_write(moto_server, aws, prereqs, tmp_path, command):
    """The CLI has no other source for a Secret than its -f input: a stack built around a listener that can
    never come up is refused before it starts, naming the Secret and how to give it."""
    path = write(tmp_path / "https.yaml", https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}]))
    done = ecsalb(moto_server, command, "-f", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == (
        "error: invalid spec:\nspec.listeners[1].certificates[0].secretRef: Secret default/web-tls is not in the -f "
        "input, and the CLI reads no Kubernetes: add its manifest to the input (kubectl get secret web-tls -n default "
        "-o yaml >> FILE, or a file of it in the -f directory); nothing was changed\n")
    assert nothing_built(aws)


def test_a_secret_whose_key_is_of_another_certificate_is_refused_before_any_write(moto_server, aws, prereqs,
                                                                                  tmp_path):
    good, other = issue("www.example.com"), issue("www.example.com")
    path = write(tmp_path / "https.yaml", tls_secret("web-tls", good.tls_crt, other.key),
                 https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}]))
    done = ecsalb(moto_server, "apply", "-f", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(
        "error: invalid spec:\nspec.listeners[1].certificates[0].secretRef: Secret default/web-tls: tls.key does not "
        "belong to the certificate in tls.crt"), done.stderr
    assert "fix the Secret" in done.stderr and "nothing of the stack is created" in done.stderr
    assert "BEGIN" not in done.stdout + done.stderr
    assert nothing_built(aws)


def test_self_signed_from_the_cli_is_minted_once(moto_server, aws, prereqs, tmp_path):
    path = write(tmp_path / "https.yaml",
                 https_manifest(prereqs, [{"selfSigned": {"commonName": "example.internal"}}]))
    assert ecsalb(moto_server, "apply", "-f", str(path)).returncode == 0
    [arn] = acm_certificates(aws)
    plan = ecsalb(moto_server, "plan", "-f", str(path))
    assert plan.returncode == 0 and "no changes" in plan.stdout, plan.stdout
    assert listener_certificates(aws) == (arn, [])
