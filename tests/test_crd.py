"""The generated CRD: in sync with the models, structural, and it accepts the example and rejects bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from controller import GROUP, KIND, PLURAL, SHORT_NAME, VERSION
from controller import spec as spec_module
from controller.crd import build_crd, render_crd, structural
from controller.spec import EcsAlbServiceSpec, SpecError, parse_spec
from devenv.admission import admit, draft7, nodes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).parent / "data" / "example.yaml"

# Keywords pydantic emits that a structural schema must not contain.
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "title", "uniqueItems"}


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(render_crd())


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def shape(node: dict[str, Any]) -> dict[str, Any]:
    """A schema node without its description (what the API server checks)."""
    return {key: value for key, value in node.items() if key != "description"}


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def test_file_matches_the_models() -> None:
    on_disk = (ROOT / "crds" / "ecsalbservices.yaml").read_text()
    assert on_disk == render_crd(), "crds/ecsalbservices.yaml is stale: regenerate with make crd"


def test_render_ends_with_one_newline() -> None:
    text = render_crd()
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_names_and_version(crd: dict[str, Any]) -> None:
    assert (crd["apiVersion"], crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "ecsalbservices.ecsalb.io" == f"{PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("ecsalb.io", "Namespaced")
    assert spec["names"] == {"kind": KIND, "listKind": "EcsAlbServiceList", "plural": "ecsalbservices",
                             "singular": "ecsalbservice", "shortNames": [SHORT_NAME]}
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns == {
        "READY": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "SYNCED": ("string", '.status.conditions[?(@.type=="Synced")].status'),
        "DRIFT": ("integer", ".status.driftCount"),
        "DNS": ("string", ".status.loadBalancer.dnsName"),
        "AGE": ("date", ".metadata.creationTimestamp"),
    }


def test_status_is_described_and_open(schema: dict[str, Any]) -> None:
    # kubectl explain shows what the operator writes; status itself keeps fields the schema does not list
    # (kopf's own, or a newer operator's), while the objects inside are closed.
    status = schema["properties"]["status"]
    assert status["type"] == "object" and status["x-kubernetes-preserve-unknown-fields"] is True
    assert {"observedGeneration", "region", "conditions", "loadBalancer", "listeners", "targetGroups",
            "securityGroups", "service", "resources", "drift", "driftCount", "driftOmitted", "lastDriftCorrection",
            "lastSyncTime", "lastFullCheckTime", "fullCheckPeriodSeconds", "unsupported",
            "certificates"} == set(status["properties"])
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["properties"]) == {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert shape(status["properties"]["loadBalancer"]["properties"]["dnsName"]) == {"nullable": True, "type": "string"}
    assert status["properties"]["securityGroups"]["additionalProperties"] == {"type": "string"}
    closed = [path for path, node in nodes(status, ".status")
              if node.get("type") == "object" and node.get("x-kubernetes-preserve-unknown-fields")]
    assert closed == [".status"]
    drift = status["properties"]["drift"]["items"]["properties"]
    assert shape(drift["actual"]) == {"nullable": True, "x-kubernetes-preserve-unknown-fields": True}


def test_status_keeps_a_field_it_does_not_list(schema: dict[str, Any]) -> None:
    status = {"observedGeneration": 2, "kopf": {"progress": {}}, "driftCount": 0}
    jsonschema.Draft7Validator(draft7(schema["properties"]["status"])).validate(status)
    with pytest.raises(jsonschema.ValidationError, match="driftCount"):
        jsonschema.Draft7Validator(draft7(schema["properties"]["status"])).validate({"driftCount": "none"})


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    visited = 0
    for path, node in nodes(schema):
        visited += 1
        assert not FORBIDDEN & node.keys(), f"{path}: {sorted(FORBIDDEN & node.keys())}"
        markers = ("type", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")
        assert any(node.get(marker) for marker in markers), f"{path} has no type"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, f"{path}: int-or-string must not also set type"
        # The API server refuses additionalProperties next to properties.
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            keys = set(node["x-kubernetes-list-map-keys"])
            assert keys <= set(item.get("required", [])), f"{path}: map keys must be required"
    assert visited > 150, "the walk must reach the whole spec"


def test_defaults_are_valid_for_their_node(schema: dict[str, Any]) -> None:
    # The API server rejects a CRD whose defaults do not validate against their own schema.
    defaults = [(path, node) for path, node in nodes(schema) if "default" in node]
    assert len(defaults) > 30
    for path, node in defaults:
        jsonschema.Draft7Validator(draft7(node)).validate(node["default"])


def test_every_model_field_is_in_the_schema(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert list(spec["properties"]) == [f.alias for f in EcsAlbServiceSpec.model_fields.values()]
    listener = spec["properties"]["listeners"]["items"]
    rule_conditions = listener["properties"]["rules"]["items"]["properties"]["conditions"]
    assert list(rule_conditions["properties"]) == [
        "pathPatterns", "hostHeaders", "httpHeaders", "queryStrings", "httpRequestMethods", "sourceIps"]
    assert set(spec["required"]) == {"vpcId", "loadBalancer", "targetGroups", "listeners", "service"}


def test_generated_shapes(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]["properties"]
    target = spec["targetGroups"]["items"]["properties"]
    assert shape(target["targetType"]) == {"default": "ip", "enum": ["ip"], "type": "string"}  # from const
    # From anyOf [X, null], and not nullable: the API server drops a null, so the field is unset, as for pydantic.
    assert target["healthCheck"]["properties"]["protocol"] == {
        "description": "Default: the target group's protocol.", "enum": ["HTTP", "HTTPS"], "type": "string"}
    assert target["healthCheck"]["properties"]["port"]["x-kubernetes-int-or-string"] is True
    assert spec["loadBalancer"]["properties"]["subnets"]["minItems"] == 2
    assert spec["listeners"]["x-kubernetes-list-map-keys"] == ["port"]
    assert "default" not in spec["region"]  # null defaults are left to pydantic


def test_unions_the_api_server_cannot_express_are_refused() -> None:
    with pytest.raises(ValueError, match="union"):
        structural({"type": "object", "properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}})


def test_unknown_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="exclusiveMinimum"):
        structural({"type": "integer", "exclusiveMinimum": 0})


def test_every_model_is_reachable_from_the_spec(schema: dict[str, Any]) -> None:
    descriptions = {node.get("description") for _, node in nodes(schema)}
    models = [
        m for m in vars(spec_module).values()  # the package re-exports the models of all its modules
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__.startswith(f"{spec_module.__name__}.")
        and m.__name__ not in ("_Model", "EcsAlbService", "Metadata")
    ]
    assert len(models) > 25
    missing = [m.__name__ for m in models if m.__doc__ not in descriptions]
    assert not missing, f"models without a described node in the CRD: {missing}"


def test_kubectl_explain_describes_every_field(schema: dict[str, Any]) -> None:
    # `kubectl explain eas.<path>` prints a property's description, or <no description>. Every property counts:
    # apiVersion, kind, metadata, and spec and status down to the fields in list items and maps (list items and
    # map values themselves are not fields).
    fields = [(path.removeprefix("."), node) for path, node in nodes(schema)
              if path and not path.endswith(("[]", ".*"))]
    assert {path.split(".")[0] for path, _ in fields} == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert len(fields) > 220, "the walk must reach every field"
    undescribed = [path for path, node in fields if not str(node.get("description", "")).strip()]
    assert undescribed == [], f"{len(undescribed)} fields show <no description> in kubectl explain: {undescribed}"


def test_example_is_valid_against_the_crd(schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(draft7(schema)).validate(example())


def test_a_fully_defaulted_object_is_valid_against_the_crd(schema: dict[str, Any]) -> None:
    # Every field pydantic fills in must also be a field the API server accepts.
    dumped = parse_spec(example()).model_dump(mode="json", by_alias=True, exclude_none=True)
    jsonschema.Draft7Validator(draft7(schema)).validate(dumped)


def test_integers_are_accepted_where_yaml_gives_them(schema: dict[str, Any]) -> None:
    doc = example()
    doc["spec"]["targetGroups"][0]["healthCheck"]["port"] = 8080
    doc["spec"]["listeners"][0]["defaultAction"] = {"fixedResponse": {"statusCode": 404}}
    jsonschema.Draft7Validator(draft7(schema)).validate(doc)


BAD = [
    # (id, edit, path of the error in the document, validator keyword)
    ("wrong type", lambda d: d["spec"]["listeners"][0].update(port="eighty"), ["spec", "listeners", 0, "port"], "type"),
    ("unknown field", lambda d: d["spec"]["loadBalancer"].update(subnet=["x"]), ["spec", "loadBalancer"],
     "additionalProperties"),
    ("enum", lambda d: d["spec"]["loadBalancer"].update(scheme="public"), ["spec", "loadBalancer", "scheme"], "enum"),
    ("one subnet", lambda d: d["spec"]["loadBalancer"].update(subnets=["subnet-0aaa"]), ["spec", "loadBalancer", "subnets"],
     "minItems"),
    ("missing required", lambda d: d["spec"].pop("vpcId"), ["spec"], "required"),
    ("out of range", lambda d: d["spec"]["targetGroups"][0].update(port=70000), ["spec", "targetGroups", 0, "port"],
     "maximum"),
    ("target type", lambda d: d["spec"]["targetGroups"][0].update(targetType="instance"),
     ["spec", "targetGroups", 0, "targetType"], "enum"),
]


@pytest.mark.parametrize(("edit", "path", "keyword"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_manifest_is_rejected(schema: dict[str, Any], edit: Any, path: list[Any], keyword: str) -> None:
    doc = example()
    edit(doc)
    errors = list(jsonschema.Draft7Validator(draft7(schema)).iter_errors(doc))
    assert [(list(e.absolute_path), e.validator) for e in errors] == [(path, keyword)]


def test_build_crd_is_plain_data() -> None:
    # No shared sub-objects: yaml.safe_dump would otherwise write &id001 anchors into the file.
    assert "&id" not in render_crd() and "*id" not in render_crd()
    assert yaml.safe_load(render_crd()) == build_crd()


def test_a_region_edit_is_refused_at_admission(schema: dict[str, Any]) -> None:
    region = schema["properties"]["spec"]["properties"]["region"]
    assert region["x-kubernetes-validations"] == [{
        "rule": "self == oldSelf",
        "message": "spec.region cannot be changed: create another EcsAlbService in the new Region and delete this one"}]


TG = "ECS-Learning-TargetGroup"
REDIRECT = ["listeners", 1, "rules", 1, "action", "redirect"]


def set_at(path: list[Any], value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        parent: Any = doc["spec"]
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    return change


def listeners(count: int) -> list[dict[str, Any]]:
    return [{"port": 1000 + i, "protocol": "HTTP", "defaultAction": {"forward": {"targetGroup": TG}}}
            for i in range(count)]


def rules(count: int) -> list[dict[str, Any]]:
    return [{"priority": 100 + i, "conditions": {"pathPatterns": [f"/{i}"]},
             "action": {"fixedResponse": {"statusCode": 404}}} for i in range(count)]


# (id, edit, path the API server names, what it says): names, ids, ports and lengths the OpenAPI schema decides.
REFUSED = [
    ("vpc id", set_at(["vpcId"], "vpc_main"), "spec.vpcId", "pattern"),
    ("region", set_at(["region"], "tokyo"), "spec.region", "pattern"),
    ("subnet id", set_at(["loadBalancer", "subnets", 0], "subnet-xyz"), "spec.loadBalancer.subnets[0]", "pattern"),
    ("name too long", set_at(["loadBalancer", "name"], "a" * 33), "spec.loadBalancer.name", "maxLength"),
    ("name with an underscore", set_at(["loadBalancer", "name"], "web_alb"), "spec.loadBalancer.name", "pattern"),
    ("name beginning with a hyphen", set_at(["loadBalancer", "name"], "-web"), "spec.loadBalancer.name", "pattern"),
    ("security group by name", set_at(["loadBalancer", "extraSecurityGroups"], ["web-sg"]),
     "spec.loadBalancer.extraSecurityGroups[0]", "pattern"),
    ("service subnet", set_at(["service", "network", "subnets", 0], "subnetA"),
     "spec.service.network.subnets[0]", "pattern"),
    ("service security group", set_at(["service", "network", "securityGroups"], ["sg-XYZ"]),
     "spec.service.network.securityGroups[0]", "pattern"),
    ("service name", set_at(["service", "name"], "web service"), "spec.service.name", "pattern"),
    ("health check port text", set_at(["targetGroups", 0, "healthCheck", "port"], "70000"),
     "spec.targetGroups[0].healthCheck.port", "pattern"),
    ("health check port number", set_at(["targetGroups", 0, "healthCheck", "port"], 0),
     "spec.targetGroups[0].healthCheck.port", "minimum"),
    ("health check path", set_at(["targetGroups", 0, "healthCheck", "path"], "health"),
     "spec.targetGroups[0].healthCheck.path", "pattern"),
    ("matcher", set_at(["targetGroups", 0, "healthCheck", "matcher"], "200-"),
     "spec.targetGroups[0].healthCheck.matcher", "pattern"),
    ("certificate arn",
     set_at(["listeners", 1, "certificates", 0], {"arn": "arn:aws:iam::123456789012:server-certificate/x"}),
     "spec.listeners[1].certificates[0].arn", "pattern"),
    ("redirect port", set_at([*REDIRECT, "port"], "#{port}1"),
     "spec.listeners[1].rules[1].action.redirect.port", "pattern"),
    ("redirect protocol", set_at([*REDIRECT, "protocol"], "FTP"),
     "spec.listeners[1].rules[1].action.redirect.protocol", "enum"),
    ("redirect path", set_at([*REDIRECT, "path"], "new"), "spec.listeners[1].rules[1].action.redirect.path", "pattern"),
    ("fixed response code", set_at(["listeners", 0, "defaultAction"], {"fixedResponse": {"statusCode": "302"}}),
     "spec.listeners[0].defaultAction.fixedResponse.statusCode", "pattern"),
    ("HTTP method", set_at(["listeners", 1, "rules", 0, "conditions", "httpRequestMethods"], ["get"]),
     "spec.listeners[1].rules[0].conditions.httpRequestMethods[0]", "pattern"),
    ("header name",
     set_at(["listeners", 1, "rules", 0, "conditions", "httpHeaders"], [{"name": "X" * 41, "values": ["a"]}]),
     "spec.listeners[1].rules[0].conditions.httpHeaders[0].name", "maxLength"),
    ("path pattern", set_at(["listeners", 1, "rules", 0, "conditions", "pathPatterns"], ["/" + "a" * 128]),
     "spec.listeners[1].rules[0].conditions.pathPatterns[0]", "maxLength"),
    ("weighted target name",
     set_at(["listeners", 0, "defaultAction", "forward"], {"targetGroups": [{"name": "a" * 33}]}),
     "spec.listeners[0].defaultAction.forward.targetGroups[0].name", "maxLength"),
    ("51 listeners", set_at(["listeners"], listeners(51)), "spec.listeners", "maxItems"),
    ("101 rules", set_at(["listeners", 1, "rules"], rules(101)), "spec.listeners[1].rules", "maxItems"),
    ("6 target groups", lambda d: d["spec"]["targetGroups"].extend(
        {**d["spec"]["targetGroups"][0], "name": f"tg-{i}"} for i in range(5)), "spec.targetGroups", "maxItems"),
    ("tag value", set_at(["tags"], {"team": "w" * 257}), "spec.tags.team", "maxLength"),
    ("46 tags", set_at(["tags"], {f"k{i}": "v" for i in range(46)}), "spec.tags", "maxProperties"),
    ("a priority used twice", set_at(["listeners", 1, "rules", 1, "priority"], 10),
     "spec.listeners[1].rules[1]", "Duplicate value"),
    ("a target group listed twice in a forward",
     set_at(["listeners", 0, "defaultAction", "forward"], {"targetGroups": [{"name": TG}, {"name": TG, "weight": 2}]}),
     "spec.listeners[0].defaultAction.forward.targetGroups[1]", "Duplicate value"),
]


@pytest.mark.parametrize(("edit", "path", "keyword"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_the_schema_refuses_what_the_model_refuses(schema: dict[str, Any], edit: Any, path: str, keyword: str) -> None:
    doc = example()
    edit(doc)
    [(where, what)] = admit(schema, doc)
    assert (where, what.split(":")[0]) == (path, keyword)
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    # The model names the same field, one inside it (a duplicate key: the item's key field), or the list that holds
    # it (a quota the model counts across the load balancer, as AWS does: rules, certificates).
    assert any(p == path or p.startswith((path + ".", path + "[")) or path.startswith((p + ".", p + "["))
               for p, _ in caught.value.errors), \
        caught.value.errors


# What the CRD leaves to the operator (it reports them as InvalidSpec): beyond what a structural schema or a CEL
# rule of reasonable cost can decide.
LEFT_TO_THE_MODEL = [
    ("a CIDR with host bits", set_at(["loadBalancer", "securityGroup", "ingressCidrs"], ["10.0.0.1/16"]),
     "spec.loadBalancer.securityGroup.ingressCidrs[0]"),
    ("a matcher out of range for the protocol version", set_at(["targetGroups", 0, "healthCheck", "matcher"], "12"),
     "spec.targetGroups[0].healthCheck.matcher"),
    ("a fixed response code given as a number",
     set_at(["listeners", 0, "defaultAction"], {"fixedResponse": {"statusCode": 302}}),
     "spec.listeners[0].defaultAction.fixedResponse.statusCode"),
]


@pytest.mark.parametrize(("edit", "path"), [case[1:] for case in LEFT_TO_THE_MODEL],
                         ids=[case[0] for case in LEFT_TO_THE_MODEL])
def test_what_the_crd_leaves_to_the_model(schema: dict[str, Any], edit: Any, path: str) -> None:
    doc = example()
    edit(doc)
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    assert admit(schema, doc) == []
    assert path in [p for p, _ in caught.value.errors]
