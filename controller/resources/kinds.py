"""The resource kinds in dependency order: the one list the engine loops over (creates and updates in this
order, deletions in the reverse order after everything else) and the fleet reads (what each kind declares)."""
from __future__ import annotations

from controller.resources.base import Kind
from controller.resources.certificate import Certificates
from controller.resources.ecs_service import Services
from controller.resources.listener import Listeners
from controller.resources.load_balancer import LoadBalancers
from controller.resources.rule import Rules
from controller.resources.scaling import Scalings
from controller.resources.security_group import SecurityGroups
from controller.resources.target_group import TargetGroups

KINDS: list[Kind] = [Certificates(), SecurityGroups(), TargetGroups(), LoadBalancers(), Listeners(), Rules(), Services(),
                     Scalings()]
BY_KIND = {k.kind: k for k in KINDS}
