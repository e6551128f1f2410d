"""`ecsalb run`'s flags: every setting has one, and it wins over the environment.

And where a port it serves is taken (a second replica on one host, another program): one line that
names the endpoint, the port and the flag to change, before anything starts; and every endpoint given its own
port, the operator starts (tests/test_leader.py runs two replicas side by side so)."""
from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys

import pytest

import devenv
from controller import cli

BIND = "127.0.0.1"


def held_port() -> socket.socket:
    """A listening socket on a port of the kernel's choosing, held (not closed) while the test runs."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((BIND, 0))
    s.listen()
    return s


def run(*flags: str) -> subprocess.CompletedProcess:
    # An unreachable Kubernetes URL: the refusal must come before any connection is tried.
    return subprocess.run(
        [sys.executable, "-m", "controller", "run", "--kube-url", "http://127.0.0.1:9", "--region", "us-east-1",
         *flags], capture_output=True, text=True, timeout=60, env={**os.environ, **devenv.FAKE_AWS_CREDENTIALS})


def endpoint(flag: str, port: int) -> str:
    return {"--liveness": f"http://{BIND}:{port}/healthz", "--readiness": f"http://{BIND}:{port}/readyz",
            "--metrics-port": str(port)}[flag]


@pytest.mark.parametrize("flag", ["--liveness", "--readiness", "--metrics-port"])
def test_a_port_in_use_names_the_endpoint_and_the_flag(flag):
    with held_port() as taken:
        port = taken.getsockname()[1]
        # The other endpoints: the kernel's choice at bind time (port 0), so they collide with nothing.
        flags = {"--liveness": endpoint("--liveness", 0), "--readiness": endpoint("--readiness", 0),
                 "--metrics-port": "0", flag: endpoint(flag, port)}
        done = run(*[x for item in flags.items() for x in item])
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {flag} ") and f"cannot listen on port {port} (Address already in use" in line
    assert f"give another with {flag} " in line, line


def test_every_setting_of_the_environment_has_a_flag_named_in_the_help():
    source = (pathlib.Path(cli.__file__).parent / "settings.py").read_text()
    names = set(re.findall(r'"(ECSALB_[A-Z_]+)"', source)) | {"ECSALB_DEFAULT_TAGS"}
    assert len(names) > 15, names
    run = next(a for a in cli.parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith(" run"))
    text = " ".join(run.format_help().split())  # argparse wraps lines
    assert sorted(n for n in names if n not in text) == [], "named in no flag's help"


def test_the_flags_win_over_the_environment(monkeypatch):
    """The parsed flags land in the operator's settings, over what the environment says."""
    monkeypatch.setenv("ECSALB_LOG_FORMAT", "json")
    args = cli.parser().parse_args(["run", "--log-format", "console", "--log-level", "WARNING", "--default-tags",
                                    "Team=web,CostCentre=12", "--deep-interval", "900", "--no-fleet"])
    settings = cli.run_settings(args)
    assert (settings.log_format, settings.log_level, settings.default_tags, settings.deep_interval_seconds,
            settings.fleet) == ("console", "warning", {"Team": "web", "CostCentre": "12"}, 900.0, False)


def test_a_bad_flag_value_names_the_flag():
    done = run("--default-tags", "Team")
    assert done.returncode == 1 and "--default-tags" in done.stderr and "Key=Value" in done.stderr, done.stderr


def test_a_bare_moto_gets_its_prerequisites_and_the_cli_plans_on_them(moto_server, aws, tmp_path):
    """README, "Trying the CLI on moto": `python -m devenv prerequisites` makes what a user brings and prints the
    example on it; `ecsalb plan` then plans the stack. Without credentials the CLI says which to give."""
    from tests.test_cli import ecsalb
    made = subprocess.run([sys.executable, "-m", "devenv", "prerequisites", "--endpoint-url",
                           moto_server.endpoint_url], capture_output=True, text=True, timeout=120,
                          cwd=pathlib.Path(cli.__file__).parent.parent)
    assert made.returncode == 0, made.stderr
    assert made.stderr.startswith(f"# on {moto_server.endpoint_url}: VPC vpc-")
    spec_file = tmp_path / "ecs-learning.yaml"
    spec_file.write_text(made.stdout)
    plan = ecsalb(moto_server, "plan", "-f", str(spec_file))
    assert plan.returncode == 2 and "create loadBalancer" in plan.stdout, plan.stdout + plan.stderr

    bare = ecsalb(moto_server, "plan", "-f", str(spec_file),
                  env_extra={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert bare.returncode == 1, bare.stderr
    assert bare.stderr.startswith("error: NoCredentialsError") and "AWS_ACCESS_KEY_ID=testing" in bare.stderr
