"""`make demo`: the whole story on this machine, with nothing but Python.

AWS is moto in server mode and Kubernetes is kmock's emulator, both over HTTP on 127.0.0.1; the operator
runs for real (kopf) against both. The story: install the CRD, create what a user already has (VPC,
subnets, ECS cluster, task definition), apply the tutorial's stack as one EcsAlbService, watch it become
Ready, change AWS behind the operator's back, watch the drift get reported and put back, delete the
resource and see that every owned AWS resource is gone. With `--keep` (`make demo-keep`) everything stays up
afterwards, with a kubeconfig for the real kubectl, until Ctrl-C.
"""
from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

import kmock
import yaml

import devenv
from controller import logs
from controller.aws import AwsClients
from controller.crd import build_crd, build_policy_crd
from controller.ownership import OWNER_TAG
from controller.settings import Settings

# The story's own EcsAlbService; with --keep, the user is handed the same stack under the tutorial's name (KEPT), so
# what they apply and its events are not mixed up with the story's.
NS, NAME, KEPT = "default", "ecs-learning-story", "ecs-learning"


class Story:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.step_no = 0

    def step(self, title: str) -> None:
        self.step_no += 1
        print(f"\n== {self.step_no}. {title}", flush=True)

    def say(self, text: str = "", *, always: bool = False) -> None:
        if always or not self.quiet:
            print(f"   {text}" if text else "", flush=True)

    def table(self, rows: list[tuple[str, ...]]) -> None:
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.say("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def condition(obj: dict | None, type_: str) -> dict:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def aws_inventory(aws: AwsClients, owner_ref: str) -> list[tuple[str, ...]]:
    """What exists on AWS now, described the way `aws ... describe-*` would show it."""
    rows: list[tuple[str, ...]] = [("KIND", "NAME / ID", "DETAIL")]
    for lb in aws.elbv2.describe_load_balancers()["LoadBalancers"]:
        rows.append(("load balancer", lb["LoadBalancerName"], f"{lb['Scheme']}, {lb['State']['Code']}, {lb['DNSName']}"))
        for listener in aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            action = listener["DefaultActions"][0]
            detail = f"default action {action['Type']}"
            if listener["Protocol"] == "HTTPS":
                default = next(c["CertificateArn"] for c in aws.elbv2.describe_listener_certificates(
                    ListenerArn=listener["ListenerArn"])["Certificates"] if c.get("IsDefault"))
                detail += f", {listener['SslPolicy']}, certificate {default.rsplit('/', 1)[1][:8]}…"
            rows.append(("  listener", f"{listener['Protocol']}:{listener['Port']}", detail))
    for summary in aws.acm.list_certificates()["CertificateSummaryList"]:
        cert = aws.acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
        rows.append(("acm certificate", f"{cert['DomainName']} ({cert['CertificateArn'].rsplit('/', 1)[1][:8]}…)",
                     f"{cert['Type'].lower()}, {cert['Status']}, expires {cert['NotAfter']:%Y-%m-%d}"))
    for tg in aws.elbv2.describe_target_groups()["TargetGroups"]:
        rows.append(("target group", tg["TargetGroupName"],
                     f"{tg['Protocol']}:{tg['Port']} {tg['TargetType']}, health check {tg['HealthCheckPath']}"))
    groups = aws.ec2.describe_security_groups(Filters=[{"Name": f"tag:{OWNER_TAG}", "Values": [owner_ref]}])
    for sg in groups["SecurityGroups"]:
        rules = [f"tcp/{p.get('FromPort')} from " + ",".join(
            [r["CidrIp"] for r in p.get("IpRanges", [])] + [g["GroupId"] for g in p.get("UserIdGroupPairs", [])])
            for p in sg["IpPermissions"]]
        rows.append(("security group", f"{sg['GroupName']} ({sg['GroupId']})", "; ".join(rules) or "no ingress"))
    for arn in aws.ecs.list_services(cluster="ecs-learning-cluster")["serviceArns"]:
        svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=[arn])["services"][0]
        if svc["status"] != "INACTIVE":  # deleted services linger in moto's listings
            rows.append(("ecs service", svc["serviceName"],
                         f"{svc['launchType']}, desired {svc['desiredCount']}, "
                         f"{len(svc['loadBalancers'])} target group(s) wired"))
    if len(rows) == 1:
        rows.append(("(nothing)", "", ""))
    return rows


async def wait_for_object(emulator: devenv.Emulator, predicate: Any, timeout: float, what: str) -> dict:
    async def check() -> Any:
        obj = await devenv.get(emulator, NS, NAME)
        return (obj or {"gone": True}) if predicate(obj) else None
    return await devenv.wait_for(check, timeout, interval=0.2, message=f"timed out waiting for {what}")


async def story(quiet: bool, keep: bool = False, log_level: str = "info") -> None:
    s = Story(quiet)
    devenv.use_fake_aws_credentials()
    logging.getLogger("kopf").setLevel(logging.WARNING)
    with devenv.MotoServer() as moto:
        settings = Settings(endpoint_url=moto.endpoint_url, region="us-east-1", cluster_name="demo",
                            drift_interval_seconds=3, log_format="console", max_attempts=3,
                            log_level="error")  # the story prints what the user sees; logs stay quiet
        aws = AwsClients(settings)
        s.step("AWS and Kubernetes on this machine")
        s.say(f"AWS (moto, server mode):          {moto.endpoint_url}", always=True)
        emulator = devenv.new_emulator()
        async with emulator, kmock.Server(emulator):
            s.say(f"Kubernetes API (kmock emulator):  {emulator.url}", always=True)
            crd = build_crd()
            await devenv.apply(emulator, kubectl_applied(crd))  # over the CRD API, as `kubectl apply -f crds/`
            await devenv.apply(emulator, kubectl_applied(build_policy_crd()))  # crds/ecsalbpolicies.yaml (tenancy)
            s.say(f"installed CRD {crd['metadata']['name']} (short name: {crd['spec']['names']['shortNames'][0]})")

            s.step("What the user already has (the operator does not own these)")
            prereqs = devenv.create_prerequisites(aws)
            s.say(f"VPC {prereqs.vpc_id}, public subnets {', '.join(prereqs.lb_subnets)}")
            s.say(f"private subnets {', '.join(prereqs.service_subnets)}")
            s.say(f"ECS cluster {prereqs.cluster}, task definition {prereqs.task_definition}")

            s.step("Start the operator (kopf), drift checks every 3 s")
            async with devenv.operator_running(emulator, settings):
                s.say("the operator is watching EcsAlbServices", always=True)
                await run_story(s, emulator, aws, prereqs)
                s.say()
                print(f"demo finished in {time.monotonic() - s.started:.1f} s: every step worked.", flush=True)
                if keep:
                    await keep_running(s, emulator, prereqs, settings, log_level)


def kubectl_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with the annotation `kubectl apply` keeps, so that a later `kubectl apply -f` of the same
    file finds it unchanged instead of warning that it was not created by apply."""
    # As kubectl writes it (Go's encoding/json: sorted keys, compact, HTML characters escaped, a newline).
    # It keeps the annotations it found, an empty map when there were none.
    obj = {**obj, "metadata": {**obj["metadata"], "annotations": dict(obj["metadata"].get("annotations", {}))}}
    applied = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    applied = applied.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = applied
    return obj


def kubeconfig(server: str) -> dict[str, Any]:
    """A kubeconfig for the emulator: plain HTTP on 127.0.0.1, no credentials."""
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "ecsalb-demo",
            "clusters": [{"name": "ecsalb-demo", "cluster": {"server": server}}],
            "users": [{"name": "ecsalb-demo", "user": {}}],
            "contexts": [{"name": "ecsalb-demo",
                          "context": {"cluster": "ecsalb-demo", "user": "ecsalb-demo", "namespace": NS}}]}


async def keep_running(s: Story, emulator: devenv.Emulator, prereqs: devenv.Prerequisites, settings: Settings,
                       log_level: str) -> None:
    """The environment stays up for the real kubectl: a kubeconfig and the story's stack as a manifest of the
    user's own (KEPT), until Ctrl-C. From here on the operator logs at `log_level`: the user explores."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ecsalb-demo-"))
    config, example = directory / "kubeconfig", directory / f"{KEPT}.yaml"
    config.write_text(yaml.safe_dump(kubeconfig(str(emulator.url)), sort_keys=False))
    example.write_text(yaml.safe_dump(story_manifest(prereqs, KEPT), sort_keys=False))
    logs.configure(settings.log_format, log_level)
    logging.getLogger("kopf").setLevel(log_level.upper())
    s.step("Still running: use kubectl (Ctrl-C stops everything)")
    s.say(f"kubeconfig: {config}", always=True)
    s.say(f"manifest:   {example}   (the story's EcsAlbService, on the VPC and subnets above)", always=True)
    s.say(f"export KUBECONFIG={config}", always=True)
    for command in ("kubectl apply -f crds/", f"kubectl apply -f {example}", "kubectl get eas -w",
                    f"kubectl wait --for=condition=Ready eas/{KEPT}", f"kubectl describe eas {KEPT}",
                    "kubectl get events --sort-by=.lastTimestamp", "kubectl explain eas.spec.listeners",
                    f"kubectl delete eas {KEPT}"):
        s.say(f"  {command}", always=True)
    s.say(f"the operator logs at {log_level} from now on (make demo-keep LOG_LEVEL=debug|info|warning|error)",
          always=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # in place of kopf's: we stop it, on the way out
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)  # the kubeconfig would point at nothing
    s.say("stopping", always=True)


def story_manifest(prereqs: devenv.Prerequisites, name: str = NAME) -> dict[str, Any]:
    manifest = devenv.example_manifest(prereqs, name=name, namespace=NS, https=True)
    https = next(listener for listener in manifest["spec"]["listeners"] if listener["protocol"] == "HTTPS")
    # The tutorial's §5 openssl step, done by the operator: a self-signed certificate imported into ACM.
    https["certificates"] = [{"selfSigned": {"commonName": "ecs-learning.example.internal", "days": 365}}]
    return manifest


async def run_story(s: Story, emulator: devenv.Emulator, aws: AwsClients, prereqs: devenv.Prerequisites) -> None:
    manifest = story_manifest(prereqs)
    s.step(f"kubectl apply -f {NAME}.yaml   (the tutorial's stack, with its HTTPS step, as one EcsAlbService)")
    spec = manifest["spec"]
    s.say(f"load balancer {spec['loadBalancer']['name']}, target group {spec['targetGroups'][0]['name']}, "
          f"listeners HTTP:80 and HTTPS:443 (self-signed certificate for ecs-learning.example.internal), "
          f"service {spec['service']['name']}")
    await devenv.apply(emulator, manifest)

    s.step(f"kubectl get eas {NAME}   (wait for READY)")
    obj = await wait_for_object(emulator, lambda o: condition(o, "Ready").get("status") == "True", 30,
                                "the resource to become Ready")
    st = obj["status"]
    s.table([("NAME", "READY", "SYNCED", "DRIFT", "DNS"),
             (NAME, condition(obj, "Ready")["status"], condition(obj, "Synced")["status"], str(st["driftCount"]),
              st["loadBalancer"]["dnsName"])])
    s.say(f"Ready: {condition(obj, 'Ready')['message']}", always=True)
    s.say(f"load balancer ARN {st['loadBalancer']['arn']}")
    s.say(f"service ARN       {st['service']['arn']}")
    await show_https(s, emulator, aws, obj)
    s.step("What now exists on AWS (describe calls)")
    s.table(aws_inventory(aws, f"{NS}/{NAME}"))
    s.step(f"kubectl describe eas {NAME}   (events)")
    for event in await devenv.events_for(emulator, NS, NAME):
        s.say(f"{event['type']:<8} {event['reason']:<16} {event['message'][:110]}")

    s.step("Someone edits the health check path in the console (an out-of-band change)")
    tg = aws.elbv2.describe_target_groups(Names=[spec["targetGroups"][0]["name"]])["TargetGroups"][0]
    aws.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/edited-by-hand")
    s.say("aws elbv2 modify-target-group --health-check-path /edited-by-hand", always=True)
    obj = await wait_for_object(emulator, lambda o: (o["status"].get("lastDriftCorrection") or {}).get("driftCount"),
                                30, "the drift to be reported and corrected")
    for entry in obj["status"]["lastDriftCorrection"]["drift"]:
        s.say(f"drift reported: {entry['resource']} {entry['field']}: desired {entry['desired']!r}, "
              f"actual {entry['actual']!r} (detected {entry['detectedAt']})", always=True)
    s.say(f"condition Drifted={condition(obj, 'Drifted')['status']}: {condition(obj, 'Drifted')['message']}",
          always=True)
    path = aws.elbv2.describe_target_groups(Names=[spec["targetGroups"][0]["name"]])["TargetGroups"][0]["HealthCheckPath"]
    if path != "/":
        raise RuntimeError(f"the drift was not corrected: health check path is {path!r}")
    s.say(f"corrected on AWS: health check path is {path!r} again", always=True)
    for event in await devenv.events_for(emulator, NS, NAME):
        if event["reason"].startswith("Drift"):
            s.say(f"event {event['type']:<8} {event['reason']:<15} {event['message'][:100]}")

    s.step(f"kubectl delete eas {NAME}")
    await devenv.delete(emulator, NS, NAME)
    await wait_for_object(emulator, lambda o: o is None, 60, "the finalizer to be released")
    s.say("the resource is gone (the finalizer was released after AWS was cleaned up)", always=True)
    s.step("What is left on AWS")
    rows = aws_inventory(aws, f"{NS}/{NAME}")
    s.table(rows)
    if rows[1][0] != "(nothing)":
        raise RuntimeError("owned AWS resources are left after deletion")
    owned = aws.resourcegroupstaggingapi.get_resources(
        TagFilters=[{"Key": OWNER_TAG, "Values": [f"{NS}/{NAME}"]}],
        ResourceTypeFilters=["elasticloadbalancing", "ec2:security-group", "acm:certificate"])["ResourceTagMappingList"]
    if owned:
        raise RuntimeError(f"owned AWS resources are left after deletion: {json.dumps(owned)[:300]}")
    s.say(f"the user's own VPC, subnets, cluster and task definition are untouched "
          f"({len(aws.ecs.list_task_definitions()['taskDefinitionArns'])} task definition, cluster "
          f"{aws.ecs.describe_clusters(clusters=[prereqs.cluster])['clusters'][0]['status']})")


async def show_https(s: Story, emulator: devenv.Emulator, aws: AwsClients, obj: dict) -> None:
    """The HTTPS listener on AWS with the self-signed certificate the operator minted, imported and kept."""
    [cert] = obj["status"]["certificates"]
    if cert["status"] != "ISSUED" or condition(obj, "CertificatesReady").get("status") != "True":
        raise RuntimeError(f"the certificate is not in use: {cert}")
    lb = aws.elbv2.describe_load_balancers(Names=[obj["spec"]["loadBalancer"]["name"]])["LoadBalancers"][0]
    listener = next((l for l in aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                     if l["Port"] == 443), None)
    if listener is None:
        raise RuntimeError("there is no HTTPS listener on the load balancer")
    used = aws.elbv2.describe_listener_certificates(ListenerArn=listener["ListenerArn"])["Certificates"]
    if [c["CertificateArn"] for c in used if c.get("IsDefault")] != [cert["arn"]]:
        raise RuntimeError(f"the HTTPS listener does not use {cert['arn']}")
    s.say(f"HTTPS:443 ({listener['SslPolicy']}) serves the {cert['source']} certificate for {cert['domain']}: "
          f"{cert['arn']}, {cert['status']}, {cert['daysLeft']} days left", always=True)
    kept = [x for x in await devenv.list_objects(emulator, NS, resource="v1/secrets")
            if (x["metadata"].get("annotations") or {}).get(OWNER_TAG) == f"{NS}/{NAME}"]
    if len(kept) != 1:
        raise RuntimeError("the self-signed certificate is not kept in a Secret")
    s.say(f"its key stays in Kubernetes: Secret {NS}/{kept[0]['metadata']['name']} ({kept[0]['type']}, owned by "
          f"the EcsAlbService), so a restart of the operator does not mint another one")


def main(quiet: bool = False, keep: bool = False, log_level: str = "info") -> int:
    try:
        asyncio.run(story(quiet, keep, log_level))
    except Exception as exc:  # the demo is a story: end it with one clear line
        print(f"\ndemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
