"""The EcsAlbService spec: the public contract, as pydantic models with validation messages.

Python attributes are the snake_case of the YAML (camelCase) field names. Every message says what is
wrong and how to fix it; `parse_spec` turns pydantic's errors into one `path: message` line per problem,
with paths in YAML form (`spec.listeners[1].certificates`). The CRD schema is generated from these models
(controller/crd.py), so the API server and the operator agree on the shape.

- errors.py: SpecError, how pydantic's errors become `path: message` lines, the CRD-schema hooks (CrdSchema,
  CEL rules), the base model.
- types.py: field types (AWS ids and names, ports, CIDRs, tags) and the AWS limits they are checked against.
- load_balancer.py, target_group.py, rule.py (actions and conditions), listener.py (and certificates),
  service.py (ECS service, autoscaling): the models, by AWS kind.
- resource.py: the whole resource (EcsAlbService, its spec's cross-field checks, policies) and parse_spec.

Every public name is importable from here: `from controller.spec import parse_spec`.
"""
from controller.spec.errors import (MAX_PROBLEMS_SHOWN, SHOWN_MAX, CrdSchema, SpecError, cel_rule, cel_rules,
                                    format_errors)
from controller.spec.types import (ACM_ARN_PATTERN, API_VERSION, DEFAULT_SSL_POLICY, ELB_NAME_MAX, ELB_NAME_PATTERN,
                                   FIXED_STATUS_CODE_PATTERN, HEADER_NAME, HEADER_VALUE, HEALTH_CHECK_PORT_PATTERN,
                                   HOST_HEADER, HTTP_METHOD_PATTERN, MATCHER_PATTERN, MAX_CERTIFICATES_PER_LISTENER,
                                   MAX_CERTIFICATES_PER_LOAD_BALANCER, MAX_CONDITION_VALUES_PER_RULE,
                                   MAX_CONDITION_VALUE_LENGTH, MAX_DESIRED_COUNT, MAX_HTTP_HEADER_NAME_LENGTH,
                                   MAX_LISTENERS_PER_LOAD_BALANCER, MAX_RULES_PER_LOAD_BALANCER,
                                   MAX_TARGET_GROUPS_PER_FORWARD, MAX_TARGET_GROUPS_PER_SERVICE, PATH_PATTERN,
                                   QUERY_STRING, REDIRECT_PORT_PATTERN, REDIRECT_PROTOCOLS, REGION_PATTERN,
                                   SECURITY_GROUP_ID_PATTERN, SERVICE_NAME_PATTERN, SUBNET_ID_PATTERN,
                                   URL_PATH_PATTERN, VPC_ID_PATTERN, WEB_ACL_ARN_PATTERN, Cidr, ElbName, ElbNameRef,
                                   IntOrStr, Port, Region, SecurityGroupId, SubnetId, UserTags, VpcId)
from controller.spec.load_balancer import (AccessLogs, LoadBalancer, LoadBalancerAttributes, LoadBalancerSecurityGroup)
from controller.spec.target_group import (Container, HealthCheck, Stickiness, TargetGroup, TargetGroupAttributes)
from controller.spec.rule import (Action, ConditionValue, Conditions, FixedResponse, Forward, HttpHeaderCondition,
                                  QueryStringCondition, Redirect, Rule, WeightedTarget)
from controller.spec.listener import (AcmRequest, CertificateSource, Listener, SecretRef, SelfSigned)
from controller.spec.service import (INT32_MAX, MAX_CAPACITY_PROVIDERS, MAX_CAPACITY_PROVIDER_BASE,
                                     MAX_CAPACITY_PROVIDER_WEIGHT, Autoscaling, CapacityProvider, CircuitBreaker,
                                     Deployment, Service, ServiceNetwork)
from controller.spec.resource import (EcsAlbService, EcsAlbServiceSpec, Metadata, Policies, derive_elb_name,
                                      parse_spec)

__all__ = [
    "MAX_PROBLEMS_SHOWN", "SHOWN_MAX", "CrdSchema", "SpecError", "cel_rule", "cel_rules", "format_errors",
    "ACM_ARN_PATTERN", "API_VERSION", "DEFAULT_SSL_POLICY", "ELB_NAME_MAX", "ELB_NAME_PATTERN",
    "FIXED_STATUS_CODE_PATTERN", "HEADER_NAME", "HEADER_VALUE", "HEALTH_CHECK_PORT_PATTERN", "HOST_HEADER",
    "HTTP_METHOD_PATTERN", "MATCHER_PATTERN", "MAX_CERTIFICATES_PER_LISTENER", "MAX_CERTIFICATES_PER_LOAD_BALANCER",
    "MAX_CONDITION_VALUES_PER_RULE", "MAX_CONDITION_VALUE_LENGTH", "MAX_DESIRED_COUNT", "MAX_HTTP_HEADER_NAME_LENGTH",
    "MAX_LISTENERS_PER_LOAD_BALANCER", "MAX_RULES_PER_LOAD_BALANCER", "MAX_TARGET_GROUPS_PER_FORWARD",
    "MAX_TARGET_GROUPS_PER_SERVICE", "PATH_PATTERN", "QUERY_STRING", "REDIRECT_PORT_PATTERN", "REDIRECT_PROTOCOLS",
    "REGION_PATTERN", "SECURITY_GROUP_ID_PATTERN", "SERVICE_NAME_PATTERN", "SUBNET_ID_PATTERN", "URL_PATH_PATTERN",
    "VPC_ID_PATTERN", "WEB_ACL_ARN_PATTERN", "Cidr", "ElbName", "ElbNameRef", "IntOrStr", "Port", "Region",
    "SecurityGroupId", "SubnetId", "UserTags", "VpcId", "AccessLogs", "LoadBalancer", "LoadBalancerAttributes",
    "LoadBalancerSecurityGroup", "Container", "HealthCheck", "Stickiness", "TargetGroup", "TargetGroupAttributes",
    "Action", "ConditionValue", "Conditions", "FixedResponse", "Forward", "HttpHeaderCondition",
    "QueryStringCondition", "Redirect", "Rule", "WeightedTarget", "AcmRequest", "CertificateSource", "Listener",
    "SecretRef", "SelfSigned", "INT32_MAX", "MAX_CAPACITY_PROVIDERS", "MAX_CAPACITY_PROVIDER_BASE",
    "MAX_CAPACITY_PROVIDER_WEIGHT", "Autoscaling", "CapacityProvider", "CircuitBreaker", "Deployment", "Service",
    "ServiceNetwork", "EcsAlbService", "EcsAlbServiceSpec", "Metadata", "Policies", "derive_elb_name", "parse_spec",
]
