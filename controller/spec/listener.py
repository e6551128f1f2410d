"""The spec of the listeners (spec.listeners) and of the certificates an HTTPS listener serves."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from controller.spec.errors import (CrdSchema, _Model, _duplicates, _fail, _one_of_rules, _require_exactly_one,
                                    cel_rule, cel_rules)
from controller.spec.rule import Action, Rule
from controller.spec.types import (ACM_ARN_PATTERN, DEFAULT_SSL_POLICY, MAX_CERTIFICATES_PER_LISTENER,
                                   MAX_RULES_PER_LOAD_BALANCER, Port, _acm_arn)


# --- certificates ------------------------------------------------------------------------------------


class SecretRef(_Model):
    """A kubernetes.io/tls Secret, imported into ACM."""

    name: str = Field(min_length=1, description=(
        "The Secret's name: a kubernetes.io/tls Secret (tls.crt with its chain, tls.key), as cert-manager writes it."))
    namespace: str | None = Field(None, description="The Secret's namespace. Default: the namespace of this "
                                                    "EcsAlbService.")


class SelfSigned(_Model):
    """A self-signed certificate the operator generates and imports into ACM."""

    common_name: str = Field(min_length=1, description=(
        "The certificate's common name (CN), also its first DNS name, e.g. app.example.internal."))
    subject_alternative_names: list[str] = Field(default_factory=list, description=(
        "More DNS names the certificate is valid for. Default: none."))
    days: int = Field(365, ge=1, le=825, description=(
        "How long the certificate is valid, in days, 1-825. Default 365. The operator renews it before it expires."))


class AcmRequest(_Model):
    """A certificate requested from ACM (DNS validation is up to you)."""

    domain_name: str = Field(min_length=1, description=(
        "The name to certify (ACM DomainName), e.g. app.example.com or *.example.com. Changing it requests a new "
        "certificate."))
    subject_alternative_names: list[str] = Field(default_factory=list, description=(
        "More names for the certificate (ACM SubjectAlternativeNames). Default: none. Changing them requests a new "
        "certificate."))


class CertificateSource(_Model):
    """Where a listener certificate comes from: exactly one of secretRef, arn, selfSigned, acm."""

    secret_ref: SecretRef | None = None
    arn: Annotated[str, AfterValidator(_acm_arn), CrdSchema(pattern=ACM_ARN_PATTERN)] | None = Field(
        None, description="Your ACM certificate (arn:aws:acm:<region>:<account>:certificate/<id>): it must exist and "
                          "be ISSUED; the operator never modifies or deletes it.")
    self_signed: SelfSigned | None = None
    acm: AcmRequest | None = None

    model_config = ConfigDict(json_schema_extra=_one_of_rules(("secret_ref", "arn", "self_signed", "acm"),
                                                              "a certificate"))

    @model_validator(mode="after")
    def _exactly_one(self) -> CertificateSource:
        _require_exactly_one(self, ("secret_ref", "arn", "self_signed", "acm"), "a certificate")
        return self


_HTTPS_NEEDS_CERTIFICATE = ("an HTTPS listener needs at least one certificate; "
                            "add a secretRef, arn, selfSigned or acm entry")
_HTTP_TAKES_NO_CERTIFICATE = "an HTTP listener takes no certificates; remove them or set protocol: HTTPS"
_HTTP_TAKES_NO_POLICY = "only HTTPS listeners take an sslPolicy; remove it or set protocol: HTTPS"


class Listener(_Model):
    """A listener of the load balancer."""

    port: Port = Field(description=(
        "The port the load balancer listens on (1-65535), one listener per port; the load balancer's security "
        "group opens it to securityGroup.ingressCidrs. Changing it replaces the listener."))
    protocol: Literal["HTTP", "HTTPS"] = Field(description=(
        "HTTP or HTTPS (HTTPS needs certificates). Changed in place."))
    ssl_policy: str | None = Field(None, description=(
        f"The TLS security policy (SslPolicy). HTTPS only; default {DEFAULT_SSL_POLICY}."))
    certificates: list[CertificateSource] = Field(
        default_factory=list, description="HTTPS only: the first is the default certificate, the rest are SNI.",
        # maxItems for the API server's CEL cost estimate; the model counts them across the load balancer
        # (EcsAlbServiceSpec._within_quotas), with a message that says what to do.
        json_schema_extra={"maxItems": MAX_CERTIFICATES_PER_LISTENER},
    )
    default_action: Action
    rules: list[Rule] = Field(
        default_factory=list,
        description=f"Rules tried before the default action, lowest priority first; each priority once per "
                    f"listener, at most {MAX_RULES_PER_LOAD_BALANCER} across the listeners. Default: none.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["priority"],
                           "maxItems": MAX_RULES_PER_LOAD_BALANCER},
    )

    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule("self.protocol != 'HTTPS' || (has(self.certificates) && size(self.certificates) > 0)",
             _HTTPS_NEEDS_CERTIFICATE, ".certificates"),
        cel_rule("self.protocol == 'HTTPS' || !has(self.certificates) || size(self.certificates) == 0",
             _HTTP_TAKES_NO_CERTIFICATE, ".certificates"),
        cel_rule("self.protocol == 'HTTPS' || !has(self.sslPolicy)", _HTTP_TAKES_NO_POLICY, ".sslPolicy")))

    @model_validator(mode="after")
    def _protocol_settings(self) -> Listener:
        problems = []
        if self.protocol == "HTTPS":
            if not self.certificates:
                problems.append(("certificates", _HTTPS_NEEDS_CERTIFICATE))
            if self.ssl_policy is None:
                self.ssl_policy = DEFAULT_SSL_POLICY
        else:
            if self.certificates:
                problems.append(("certificates", _HTTP_TAKES_NO_CERTIFICATE))
            if self.ssl_policy is not None:
                problems.append(("sslPolicy", _HTTP_TAKES_NO_POLICY))
        problems += _duplicates("rules", "priority", [rule.priority for rule in self.rules],
                                "give each rule of a listener its own priority")
        actions = [("defaultAction", self.default_action)]
        actions += [(f"rules[{j}].action", rule.action) for j, rule in enumerate(self.rules)]
        problems += [(f"{path}.redirect", f"this redirect sends a request back to this very listener "
                                          f"({self.protocol}:{self.port}) with the same host, path and query, so it "
                                          "would loop; change the protocol, port, host, path or query")
                     for path, action in actions if action.redirect is not None and action.redirect.loops(self)]
        if problems:
            _fail(problems)
        return self
