"""`python -m devenv prerequisites --endpoint-url URL`: on a bare moto (`moto_server -p 5000`, or the one
`make demo-keep` prints), make what a user brings (a VPC with public and private subnets in two zones, the ECS
cluster, the Fargate task definition) and print the example EcsAlbService on them, for `ecsalb plan/apply -f`.
Fake credentials are used (moto checks none)."""
from __future__ import annotations

import argparse
import sys

import yaml

import devenv
from controller.aws import AwsClients
from controller.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("prerequisites", help="make a user's prerequisites on a moto; print a manifest on them")
    pre.add_argument("--endpoint-url", required=True, help="the moto server, e.g. http://127.0.0.1:5000")
    pre.add_argument("--region", default="us-east-1")
    pre.add_argument("--https", action="store_true", help="with the example's HTTPS listener too")
    args = parser.parse_args(argv)
    if not args.endpoint_url.startswith(("http://127.0.0.1", "http://localhost")):
        print(f"error: --endpoint-url {args.endpoint_url}: this makes resources with fake credentials, for a moto "
              "on this machine only (http://127.0.0.1:PORT)", file=sys.stderr)
        return 1
    devenv.use_fake_aws_credentials()
    aws = AwsClients(Settings(endpoint_url=args.endpoint_url, region=args.region, budget="off"), args.region)
    prereqs = devenv.create_prerequisites(aws)
    print(f"# on {args.endpoint_url}: VPC {prereqs.vpc_id}, subnets {', '.join(prereqs.lb_subnets)} (public), "
          f"{', '.join(prereqs.service_subnets)} (private), cluster {prereqs.cluster}, task definition "
          f"{prereqs.task_definition}", file=sys.stderr)
    print(yaml.safe_dump(devenv.example_manifest(prereqs, https=args.https), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
