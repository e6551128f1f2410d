"""`ecsalb` as a user runs it: a subprocess with AWS credentials in the environment, `--endpoint-url` at moto,
and the same custom-resource YAML `kubectl apply -f` takes. Assertions are on exit codes, on what it prints,
and on what AWS shows afterwards."""
from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

import devenv
from controller.aws import AwsClients

ROOT = pathlib.Path(__file__).resolve().parents[1]
STACK = ["securityGroup/loadBalancer", "securityGroup/service", "targetGroup/ECS-Learning-TargetGroup",
         "loadBalancer", "listener/80", "service"]


def ecsalb(moto_server: devenv.MotoServer | None, *args: str, stdin: str | None = None,
           env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m controller ARGS --endpoint-url <moto>` with only the fake credentials (and `env_extra`)
    in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECSALB_"))}
    env.update(devenv.FAKE_AWS_CREDENTIALS, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **(env_extra or {}))
    command = [sys.executable, "-m", "controller", *args]
    if moto_server is not None:
        command += ["--endpoint-url", moto_server.endpoint_url]
    return subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=120)


def write(path: pathlib.Path, *documents: dict) -> pathlib.Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


@pytest.fixture()
def manifest(prereqs: devenv.Prerequisites) -> dict:
    return devenv.example_manifest(prereqs)


@pytest.fixture()
def spec_file(tmp_path: pathlib.Path, manifest: dict) -> pathlib.Path:
    return write(tmp_path / "spec.yaml", manifest)


def load_balancers(aws: AwsClients) -> list[dict]:
    return aws.elbv2.describe_load_balancers()["LoadBalancers"]


def target_groups(aws: AwsClients) -> list[dict]:
    return aws.elbv2.describe_target_groups()["TargetGroups"]


def security_group_ids(aws: AwsClients) -> set[str]:
    return {g["GroupId"] for g in aws.ec2.describe_security_groups()["SecurityGroups"]}


def applied(moto_server: devenv.MotoServer, spec_file: pathlib.Path) -> subprocess.CompletedProcess[str]:
    result = ecsalb(moto_server, "apply", "-f", str(spec_file))
    assert result.returncode == 0, result.stderr
    return result


def test_plan_on_an_empty_account_lists_the_whole_stack_and_changes_nothing(moto_server, aws, spec_file):
    groups_before = security_group_ids(aws)

    result = ecsalb(moto_server, "plan", "-f", str(spec_file))

    assert result.returncode == 2, result.stderr
    assert "default/ecs-learning: 6 change(s)" in result.stdout
    for key in STACK:
        assert f"create {key}" in result.stdout
    assert load_balancers(aws) == [] and target_groups(aws) == []
    assert security_group_ids(aws) == groups_before, "a plan must not create anything"

    drift = ecsalb(moto_server, "drift", "-f", str(spec_file))
    assert drift.returncode == 0, drift.stderr
    assert "not applied yet" in drift.stdout


def test_apply_creates_the_stack_and_a_second_plan_has_nothing_to_do(moto_server, aws, spec_file):
    result = applied(moto_server, spec_file)

    [lb] = load_balancers(aws)
    assert lb["LoadBalancerName"] == "ECS-Learning-Alb"
    assert lb["DNSName"] in result.stdout
    assert "6 change(s) applied" in result.stdout
    assert [tg["TargetGroupName"] for tg in target_groups(aws)] == ["ECS-Learning-TargetGroup"]

    plan = ecsalb(moto_server, "plan", "-f", str(spec_file))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "default/ecs-learning: no changes" in plan.stdout

    # The same spec on stdin (`-f -`), for a machine.
    as_json = ecsalb(moto_server, "plan", "-f", "-", "--output", "json", stdin=spec_file.read_text())
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{"resource": "default/ecs-learning", "changes": [], "unsupported": []}]


def test_drift_names_a_field_changed_out_of_band_with_both_values(moto_server, aws, spec_file):
    applied(moto_server, spec_file)
    clean = ecsalb(moto_server, "drift", "-f", str(spec_file))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "default/ecs-learning: no drift" in clean.stdout

    [tg] = target_groups(aws)
    aws.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/changed-by-hand")

    text = ecsalb(moto_server, "drift", "-f", str(spec_file))
    assert text.returncode == 2, text.stdout + text.stderr
    [line] = [line for line in text.stdout.splitlines() if "healthCheck.path" in line]
    assert "targetGroup/ECS-Learning-TargetGroup" in line and "'/'" in line and "'/changed-by-hand'" in line

    as_json = ecsalb(moto_server, "drift", "-f", str(spec_file), "--output", "json")
    assert as_json.returncode == 2, as_json.stderr
    [report] = json.loads(as_json.stdout)
    assert report["resource"] == "default/ecs-learning" and report["driftCount"] == 1
    assert report["drift"] == [{"resource": "targetGroup/ECS-Learning-TargetGroup", "field": "healthCheck.path",
                                "desired": "/", "actual": "/changed-by-hand"}]
    assert aws.elbv2.describe_target_groups()["TargetGroups"][0]["HealthCheckPath"] == "/changed-by-hand", \
        "drift only reports"


def test_delete_removes_every_owned_resource(moto_server, aws, spec_file):
    groups_before = security_group_ids(aws)
    applied(moto_server, spec_file)

    result = ecsalb(moto_server, "delete", "-f", str(spec_file))

    assert result.returncode == 0, result.stderr
    assert "default/ecs-learning: 6 owned resource(s) deleted" in result.stdout
    assert load_balancers(aws) == [] and target_groups(aws) == []
    assert security_group_ids(aws) == groups_before


def test_retain_keeps_everything_unless_ignore_retain(moto_server, aws, tmp_path, manifest):
    manifest["spec"]["policies"]["deletion"] = "Retain"
    spec_file = write(tmp_path / "spec.yaml", manifest)
    applied(moto_server, spec_file)

    kept = ecsalb(moto_server, "delete", "-f", str(spec_file))
    assert kept.returncode == 0, kept.stderr
    assert "Retain" in kept.stdout and "nothing deleted" in kept.stdout
    assert len(load_balancers(aws)) == 1 and len(target_groups(aws)) == 1

    forced = ecsalb(moto_server, "delete", "-f", str(spec_file), "--ignore-retain")
    assert forced.returncode == 0, forced.stderr
    assert "6 owned resource(s) deleted" in forced.stdout
    assert load_balancers(aws) == [] and target_groups(aws) == []


def test_a_directory_and_a_multi_document_file_are_read_as_kubectl_reads_them(moto_server, aws, tmp_path, manifest):
    second = copy.deepcopy(manifest)
    second["metadata"]["name"] = "second"
    spec = second["spec"]
    spec["loadBalancer"]["name"] = "Second-Alb"
    spec["targetGroups"][0]["name"] = "Second-TargetGroup"
    spec["listeners"][0]["defaultAction"]["forward"]["targetGroup"] = "Second-TargetGroup"
    spec["service"]["name"] = "second-service"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ecs-learning-tls"}, "type": "Opaque"}
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder / "a.yaml", manifest)
    write(folder / "b.yml", secret, second)  # a Secret first: skipped, the EcsAlbService after it still read
    (folder / "README.md").write_text("not a manifest\n")

    plan = ecsalb(moto_server, "plan", "-f", str(folder))
    assert plan.returncode == 2, plan.stderr
    assert "default/ecs-learning: 6 change(s)" in plan.stdout and "default/second: 6 change(s)" in plan.stdout
    assert "skipped a document of kind Secret" in plan.stderr

    result = ecsalb(moto_server, "apply", "-f", str(folder))
    assert result.returncode == 0, result.stderr
    assert sorted(lb["LoadBalancerName"] for lb in load_balancers(aws)) == ["ECS-Learning-Alb", "Second-Alb"]
    assert sorted(tg["TargetGroupName"] for tg in target_groups(aws)) == ["ECS-Learning-TargetGroup",
                                                                           "Second-TargetGroup"]
    for lb in load_balancers(aws):
        assert lb["DNSName"] in result.stdout


def test_errors_are_one_clear_message_and_exit_1(moto_server, aws, tmp_path, manifest):
    manifest["spec"]["loadBalancer"]["subnets"] = manifest["spec"]["loadBalancer"]["subnets"][:1]
    bad = write(tmp_path / "bad.yaml", manifest)

    invalid = ecsalb(moto_server, "drift", "-f", str(bad))  # for drift, 2 would mean "drift": an error is 1
    assert invalid.returncode == 1, invalid.stdout + invalid.stderr
    assert "spec.loadBalancer.subnets" in invalid.stderr
    assert "Traceback" not in invalid.stderr and invalid.stdout == ""

    missing = ecsalb(moto_server, "plan", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert f"{tmp_path / 'nope.yaml'}: no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr

    # A usage error is an error too, not "something would change".
    usage = ecsalb(moto_server, "plan", "-f", str(bad), "--output", "yaml")
    assert usage.returncode == 1, usage.stderr
    assert "--output" in usage.stderr and "Traceback" not in usage.stderr
    assert load_balancers(aws) == []


def test_crd_prints_the_installed_crd():
    result = ecsalb(None, "crd")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "crds" / "ecsalbservices.yaml").read_text()


def test_version():
    out = ecsalb(None, "--version")
    assert out.returncode == 0 and out.stdout.startswith("ecsalb ") and out.stdout.strip() != "ecsalb unknown"


def test_a_file_that_is_not_text_is_named_in_the_error(tmp_path):
    path = tmp_path / "image.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    out = ecsalb(None, "plan", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr == f"error: {path}: not a UTF-8 text file (byte 0); give a YAML or JSON manifest\n"


@pytest.mark.parametrize("text, says", [
    # PyYAML keeps the last of two keys silently; kubectl refuses the document.
    ("spec:\n  vpcId: vpc-1\n  service: {}\n  vpcId: vpc-2\n",
     "not valid YAML: line 4, column 3: key 'vpcId' is given twice in one mapping (first on line 2); keep one"),
    ("spec: " + "[" * 20_000 + "]" * 20_000 + "\n", "not valid YAML: line 1, column 106: nested more than 100 levels deep; "
     "an EcsAlbService nests a few levels, so look for an unclosed [ or {"),
    ("spec:\n\tvpcId: vpc-1\n",
     "not valid YAML: line 2, column 1: a tab; YAML indents with spaces only: replace the tab with spaces"),
    ("spec:\n  vpcId: [1, 2\n  name: " + "x" * 100_000 + "\n", "not valid YAML: line 3, column 7: expected ',' or ']'"),
])
def test_a_file_that_is_not_a_manifest_is_named_with_the_line_in_one_short_line(tmp_path, text, says):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    out = ecsalb(None, "plan", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {path}: {says}") and len(out.stderr) < 300, out.stderr
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("text, has", [
    ("", "it has no document at all (empty, or comments only)"),
    ("# only a comment\n", "it has no document at all (empty, or comments only)"),
    ("- a\n- b\n", "it has a list of 2 items (a manifest is a mapping; separate documents with --- instead)"),
    ("hello\n", "it has a str ('hello'), not a mapping"),
    ("kind: Service\napiVersion: v1\n", "it has a document of kind Service"),
])
def test_a_file_with_no_ecsalbservice_says_what_it_has_and_what_to_give(tmp_path, text, has):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    out = ecsalb(None, "plan", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr == (f"error: {path}: no EcsAlbService document found: {has}. Give a manifest that starts with "
                          "'apiVersion: ecsalb.io/v1alpha1' and 'kind: EcsAlbService' (manifests/example/"
                          "ecsalbservice.yaml is one; several documents are separated by lines of ---)\n")


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "spec.yaml"
    with path.open("w") as f:
        f.write("spec:\n  vpcId: vpc-1\n  pad: " + "x" * (6 * 1024 * 1024) + "\n")
    out = ecsalb(None, "plan", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {path}: larger than 5 MiB") and out.stderr.count("\n") == 1


def test_an_over_long_value_is_not_repeated_whole(tmp_path, manifest):
    manifest["spec"]["service"]["name"] = "web service " * 10_000
    out = ecsalb(None, "plan", "-f", str(write(tmp_path / "spec.yaml", manifest)))
    assert out.returncode == 1
    assert out.stderr == (
        f"error: {tmp_path / 'spec.yaml'}: invalid spec:\n"
        "spec.service.name: 'web service web service web service web... (120000 characters) is not a valid ECS "
        "service name; use 1 to 255 letters, digits, hyphens and underscores\n")


def test_a_reader_that_goes_away_is_not_an_error(moto_server, aws, spec_file):
    # `ecsalb plan -f x | head`: here a reader that is gone before the plan prints anything (`| true`).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECSALB_"))}
    env.update(devenv.FAKE_AWS_CREDENTIALS, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    out = subprocess.run(f"set -o pipefail; {sys.executable} -m controller plan -o json -f {spec_file} "
                         f"--endpoint-url {moto_server.endpoint_url} | true",
                         shell=True, executable="/bin/bash", cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "BrokenPipeError" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0


def test_no_region_anywhere_is_a_clear_error(moto_server, manifest, tmp_path):
    manifest["spec"].pop("region", None)
    path = write(tmp_path / "spec.yaml", manifest)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECSALB_"))}
    creds = {k: v for k, v in devenv.FAKE_AWS_CREDENTIALS.items() if "REGION" not in k}
    env.update(creds, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    out = subprocess.run([sys.executable, "-m", "controller", "plan", "-f", str(path), "--endpoint-url",
                          moto_server.endpoint_url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr == ("error: no AWS Region: set spec.region, or the operator's Region (--region, AWS_REGION, "
                          "or region in the AWS profile)\n")


def test_the_profiles_region_is_used(moto_server, aws, manifest, tmp_path):
    manifest["spec"].pop("region", None)
    path = write(tmp_path / "spec.yaml", manifest)
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-west-1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECSALB_"))}
    creds = {k: v for k, v in devenv.FAKE_AWS_CREDENTIALS.items() if "REGION" not in k}
    env.update(creds, AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    out = subprocess.run([sys.executable, "-m", "controller", "plan", "-f", str(path), "--endpoint-url",
                          moto_server.endpoint_url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    # The prerequisites are in us-east-1 (the old silent default): in the profile's Region there is no cluster.
    assert out.returncode == 1
    assert "was not found in region eu-west-1" in out.stderr, out.stderr


@pytest.mark.parametrize("name, value", [("ECSALB_DEEP_INTERVAL", "ten"), ("ECSALB_SWEEP_INTERVAL", "0"),
                                         ("ECSALB_DRIFT_INTERVAL", "-5"), ("ECSALB_LEASE_DURATION", "nan")])
def test_a_bad_number_in_the_environment_is_named_at_start(name, value):
    out = ecsalb(None, "run", "--kube-url", "http://127.0.0.1:9", env_extra={name: value})
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {name}={value!r}: give a"), out.stderr
    assert "Traceback" not in out.stderr
