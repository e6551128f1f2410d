"""The embedded environment of the tests and of `make demo`, beside the operator (controller/), never in it.

- kubernetes.py: kmock's Kubernetes emulator, kopf running against it, and the calls a user makes.
- aws.py: moto's server, the prerequisites a user brings, the example manifests.
- demo.py: `python -m controller demo` (`make demo`), the whole story on this machine.

Everything here runs on 127.0.0.1 and needs the `demo` extra (`pip install ecs-alb-operator[demo]`); the
image installs the operator without it. The names below are what tests and the demo use: `devenv.apply(...)`.
"""
from devenv.aws import (FAKE_AWS_CREDENTIALS, MotoServer, Prerequisites, create_prerequisites, example_manifest,
                        fleet_manifest, use_fake_aws_credentials)
from devenv.kubernetes import (ALL_VERBS, CRD_RESOURCE, RESOURCE, ApiError, Emulator, apply, call, delete,
                               events_for, get, install_crd, list_objects, new_emulator, object_path,
                               operator_running, patch_spec, wait_for)

__all__ = ["FAKE_AWS_CREDENTIALS", "MotoServer", "Prerequisites", "create_prerequisites", "example_manifest",
           "fleet_manifest", "use_fake_aws_credentials", "ALL_VERBS", "CRD_RESOURCE", "RESOURCE", "ApiError",
           "Emulator", "apply", "call", "delete", "events_for", "get", "install_crd", "list_objects",
           "new_emulator", "object_path", "operator_running", "patch_spec", "wait_for"]
