"""`ecsalb import` of a template as most real ones are written: the subnets and security groups are `List<...>`
parameters, given as CloudFormation takes them (`--param Subnets=subnet-a,subnet-b`), and every resource has
`DeletionPolicy: Retain`. CloudFormation (moto's) builds the stack from that very template with those parameters;
the stack is then detached (deleted, its resources retained), imported, planned, applied and checked for drift
as in tests/test_adoption.py: the same ARNs, and no drift."""
from __future__ import annotations

import json

import yaml

from controller import cfn
from tests.test_cli import ecsalb

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  VpcId: {Type: "AWS::EC2::VPC::Id"}
  PublicSubnets: {Type: "List<AWS::EC2::Subnet::Id>"}
  ServiceSubnets: {Type: "List<AWS::EC2::Subnet::Id>"}
  TaskSecurityGroups: {Type: "List<AWS::EC2::SecurityGroup::Id>"}
  ECSCluster: {Type: String}
  ECSTaskDefinition: {Type: String}
Resources:
  AlbSecurityGroup:
    Type: AWS::EC2::SecurityGroup
    DeletionPolicy: Retain
    Properties:
      GroupName: lists-alb-sg
      GroupDescription: the load balancer's
      VpcId: !Ref VpcId
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    DeletionPolicy: Retain
    Properties:
      Name: lists-alb
      Scheme: internet-facing
      Type: application
      Subnets: !Ref PublicSubnets
      SecurityGroups: [!Ref AlbSecurityGroup]
  TargetGroup:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    DeletionPolicy: Retain
    Properties:
      Name: lists-tg
      Port: 80
      Protocol: HTTP
      TargetType: ip
      VpcId: !Ref VpcId
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    DeletionPolicy: Retain
    Properties:
      LoadBalancerArn: !Ref Alb
      Port: 80
      Protocol: HTTP
      DefaultActions:
        - {Type: forward, TargetGroupArn: !Ref TargetGroup}
  Service:
    Type: AWS::ECS::Service
    DeletionPolicy: Retain
    Properties:
      ServiceName: lists-service
      Cluster: !Ref ECSCluster
      TaskDefinition: !Ref ECSTaskDefinition
      DesiredCount: 1
      LaunchType: FARGATE
      NetworkConfiguration:
        AwsvpcConfiguration:
          AssignPublicIp: ENABLED
          Subnets: !Ref ServiceSubnets
          SecurityGroups: !Ref TaskSecurityGroups
      LoadBalancers:
        - {ContainerName: my-ecs-learning-container, ContainerPort: 80, TargetGroupArn: !Ref TargetGroup}
"""


def build_and_detach(aws, prereqs) -> tuple[dict[str, str], dict]:
    """The stack CloudFormation built from TEMPLATE with list parameters, then deleted with its resources
    retained. moto's CloudFormation cannot build the ECS service realistically, so boto3 makes it as the template
    says (as in tests/test_adoption.py)."""
    tasks_sg = aws.ec2.create_security_group(GroupName="lists-tasks", Description="the tasks'",
                                             VpcId=prereqs.vpc_id)["GroupId"]
    params = {"VpcId": prereqs.vpc_id, "PublicSubnets": ",".join(prereqs.lb_subnets),
              "ServiceSubnets": ", ".join(prereqs.service_subnets), "TaskSecurityGroups": tasks_sg,
              "ECSCluster": prereqs.cluster, "ECSTaskDefinition": prereqs.task_definition}
    body = cfn.load_template(TEMPLATE)
    del body["Resources"]["Service"]
    stack_id = aws.cloudformation.create_stack(StackName="lists", TemplateBody=json.dumps(body), Parameters=[
        {"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])["StackId"]
    assert aws.cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    tg_arn = aws.elbv2.describe_target_groups(Names=["lists-tg"])["TargetGroups"][0]["TargetGroupArn"]
    aws.ecs.create_service(
        cluster=prereqs.cluster, serviceName="lists-service", taskDefinition=prereqs.task_definition,
        desiredCount=1, launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {
            "assignPublicIp": "ENABLED", "securityGroups": [tasks_sg], "subnets": prereqs.service_subnets}},
        loadBalancers=[{"containerName": "my-ecs-learning-container", "containerPort": 80, "targetGroupArn": tg_arn}])
    before = {"lb": aws.elbv2.describe_load_balancers(Names=["lists-alb"])["LoadBalancers"][0]["LoadBalancerArn"],
              "tg": tg_arn, "service": aws.ecs.describe_services(cluster=prereqs.cluster, services=[
                  "lists-service"])["services"][0]["serviceArn"]}
    aws.cloudformation.delete_stack(StackName=stack_id)
    assert aws.elbv2.describe_load_balancers(Names=["lists-alb"])["LoadBalancers"], "DeletionPolicy: Retain kept it"
    return params, before


def test_import_of_list_parameters_and_retain_then_plan_apply_drift(aws, prereqs, tmp_path, moto_server):
    params, before = build_and_detach(aws, prereqs)
    source = tmp_path / "lists.yml"
    source.write_text(TEMPLATE)
    done = ecsalb(None, "import", "-f", str(source), *[x for k, v in params.items() for x in ("--param", f"{k}={v}")])
    assert done.returncode == 0, done.stderr
    assert "DeletionPolicy" not in done.stderr, "Retain is carried over, not reported as lost"
    manifest = yaml.safe_load(done.stdout)
    spec = manifest["spec"]
    assert spec["policies"] == {"adoption": "Adopt", "deletion": "Retain"}
    assert spec["loadBalancer"]["subnets"] == prereqs.lb_subnets
    assert spec["service"]["network"]["subnets"] == prereqs.service_subnets  # "a, b": each member trimmed
    assert spec["service"]["network"]["securityGroups"] == [params["TaskSecurityGroups"]]
    spec_file = tmp_path / "lists.yaml"
    spec_file.write_text(done.stdout)

    plan = ecsalb(moto_server, "plan", "-f", str(spec_file), "-o", "json")
    assert plan.returncode == 2, plan.stderr
    changes = {(c["action"], c["resource"]): c for c in json.loads(plan.stdout)[0]["changes"]}
    assert {key for verb, key in changes if verb == "adopt"} == {
        "securityGroup/loadBalancer", "targetGroup/lists-tg", "loadBalancer", "listener/80", "service"}
    assert not [key for key in changes if key[0] in ("replace", "delete")]

    applied = ecsalb(moto_server, "apply", "-f", str(spec_file))
    assert applied.returncode == 0, applied.stderr
    assert aws.elbv2.describe_load_balancers(Names=["lists-alb"])["LoadBalancers"][0]["LoadBalancerArn"] == before["lb"]
    assert [tg["TargetGroupArn"] for tg in aws.elbv2.describe_target_groups()["TargetGroups"]] == [before["tg"]]
    [service] = aws.ecs.describe_services(cluster=prereqs.cluster, services=["lists-service"])["services"]
    assert (service["serviceArn"], service["status"]) == (before["service"], "ACTIVE")

    drift = ecsalb(moto_server, "drift", "-f", str(spec_file))
    assert drift.returncode == 0 and "no drift" in drift.stdout, drift.stdout + drift.stderr

    deleted = ecsalb(moto_server, "delete", "-f", str(spec_file))
    assert deleted.returncode == 0, deleted.stderr
    assert aws.elbv2.describe_load_balancers(Names=["lists-alb"])["LoadBalancers"], "policies.deletion: Retain"


def _convert(text: str, params: dict[str, str] | None = None) -> cfn.Imported:
    return cfn.convert(cfn.load_template(text), params or {})


LB_ONLY = """\
Parameters:
  Subnets: {Type: CommaDelimitedList, Default: "subnet-a , subnet-b,subnet-c"}
  Pair: {Type: String, Default: "sg-1|sg-2"}
Resources:
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    DeletionPolicy: Retain
    Properties:
      Name: alb
      Subnets: [!Select [0, !Ref Subnets], !Select [2, !Ref Subnets]]
      SecurityGroups: !Split ["|", !Ref Pair]
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {Name: tg, Port: 80, Protocol: HTTP, TargetType: ip, VpcId: vpc-1}
"""


def test_comma_delimited_defaults_split_select_and_a_mix_of_deletion_policies():
    imported = _convert(LB_ONLY)
    lb = imported.manifest["spec"]["loadBalancer"]
    assert lb["subnets"] == ["subnet-a", "subnet-c"]
    assert lb["extraSecurityGroups"] == ["sg-1", "sg-2"]
    # Retain on the load balancer, not on the target group: the safe side, and said.
    assert imported.manifest["spec"]["policies"]["deletion"] == "Retain"
    [note] = [n for n in imported.notes if n.startswith("DeletionPolicy")]
    assert "Retain on Alb but not on Tg" in note and "policies.deletion: Retain" in note
    # A --param replaces the default, split the same way.
    again = _convert(LB_ONLY, {"Subnets": "subnet-x,subnet-y,subnet-z"})
    assert again.manifest["spec"]["loadBalancer"]["subnets"] == ["subnet-x", "subnet-z"]


def test_no_deletion_policy_is_delete_and_a_bad_select_is_named():
    imported = _convert(LB_ONLY.replace("    DeletionPolicy: Retain\n", "").replace("!Select [2,", "!Select [7,"))
    assert "deletion" not in imported.manifest["spec"]["policies"]
    assert any("Resources.Alb.Properties.Subnets" in x and "index 7" in x for x in imported.lost), imported.lost
