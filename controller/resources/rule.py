"""ELBv2 listener rules. All non-default rules of one listener are one unit (`rules/<port>`), converged
together in one update: desired rules are matched to actual ones by content first, then by priority (as the
AWS Load Balancer Controller's listener_rule_synthesizer does), so a re-prioritised rule moves with
set_rule_priorities instead of being deleted and created again, and a swap needs no transient conflict.

The listener's default rule is its defaultAction (resources/listener.py) and is never touched here: moto
answers delete_rule of it with HTTP 500, AWS with OperationNotPermitted."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code
from controller.resources.reads import LiveReads
from controller.ownership import to_aws
from controller.resources import actions
from controller.resources.base import UNKNOWN, Context, FieldDiff, Kind, Observed
from controller.resources.elbv2 import retag_arns

MAX_PRIORITY = 50000
# AWS field -> (its *Config key, the spec's name for it).
CONDITIONS = {
    "path-pattern": ("PathPatternConfig", "pathPatterns"),
    "host-header": ("HostHeaderConfig", "hostHeaders"),
    "http-header": ("HttpHeaderConfig", "httpHeader"),
    "query-string": ("QueryStringConfig", "queryStrings"),
    "http-request-method": ("HttpRequestMethodConfig", "httpRequestMethods"),
    "source-ip": ("SourceIpConfig", "sourceIps"),
}


def canonical_conditions(conditions: list[dict]) -> list[dict[str, Any]]:
    """AWS conditions -> one comparable form in the spec's words. describe_rules echoes each condition as it
    was sent (`Values` or `*Config`), in any order; every condition counts, so one added by hand is drift
    (amazon.aws compares a subset and misses it). Each condition stays separate: conditions AND, values OR."""
    out = []
    for c in conditions:
        config_key, name = CONDITIONS.get(c["Field"], ("", c["Field"]))
        config = c.get(config_key) or {}
        values = config.get("Values", c.get("Values", []))
        if c["Field"] == "http-header":
            out.append({name: config.get("HttpHeaderName"), "values": sorted(values)})
        elif c["Field"] == "query-string":
            pairs = [{"key": v["Key"], "value": v.get("Value")} if v.get("Key") else {"value": v.get("Value")}
                     for v in values]
            out.append({name: sorted(pairs, key=_text)})
        else:
            out.append({name: sorted(values)})
    return sorted(out, key=_text)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _content(conditions: list[dict[str, Any]], action: dict[str, Any] | None) -> str:
    """What a rule does, as one comparable value (priority apart)."""
    return _text([conditions, action])


def _field(priority: int, part: str) -> str:
    return f"rules[priority={priority}].{part}"


@dataclasses.dataclass
class Plan:
    """How one listener's rules get from actual to desired. Applied in this order: vacate (to free
    temporary priorities), move (to final priorities), create, modify, delete. Creates come before
    deletes, and a rule that moves keeps existing, so traffic always has the rules it should."""

    vacate: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (rule ARN, temporary priority)
    move: list[tuple[str, int]] = dataclasses.field(default_factory=list)    # (rule ARN, final priority)
    create: list[int] = dataclasses.field(default_factory=list)              # desired priorities
    modify: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (rule ARN, desired priority)
    delete: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.vacate, self.move, self.create, self.modify, self.delete))


def plan(want: dict[int, str], have: list[tuple[str, int, str]]) -> Plan:
    """want: desired priority -> content; have: (ARN, priority, content) of the actual rules."""
    result = Plan()
    wanted = dict(want)
    left = []
    for arn, priority, content in have:  # unchanged
        if wanted.get(priority) == content:
            del wanted[priority]
        else:
            left.append((arn, priority, content))
    unmatched = []
    for arn, priority, content in left:  # same rule, new priority: move it
        target = next((p for p, c in sorted(wanted.items()) if c == content), None)
        if target is None:
            unmatched.append((arn, priority))
        else:
            del wanted[target]
            result.move.append((arn, target))
    for arn, priority in unmatched:  # same priority, new content: modify in place
        if priority in wanted:
            del wanted[priority]
            result.modify.append((arn, priority))
        else:
            result.delete.append(arn)
    result.create = sorted(wanted)

    # A rule leaving a priority that a move or create needs goes to a free temporary priority first:
    # AWS (and moto) refuse a priority in use, even within one set_rule_priorities call (a swap).
    targets = {p for _, p in result.move} | set(result.create)
    leaving = {arn for arn, _ in result.move} | set(result.delete)
    used = {p for _, p, _ in have} | set(want)
    free = (p for p in range(MAX_PRIORITY, 0, -1) if p not in used)
    result.vacate = [(arn, next(free)) for arn, priority, _ in have if arn in leaving and priority in targets]
    return result


class Rules(Kind):
    kind = "rule"
    immutable = frozenset({"listenerArn"})  # rules belong to their listener: a new listener gets new ones
    stale_after = ("rules",)
    # Its Observed stands for all of a listener's rules, and the listener's CloudFormation stack is theirs.
    adopted_with = "listener"

    def fields(self, ctx: Context, desired: d.ListenerRules, actual: Observed | None) -> dict[str, Any]:
        out: dict[str, Any] = {"listenerArn": ctx.resolve(desired.listener)}
        for rule in desired.rules:
            out[_field(rule.priority, "conditions")] = canonical_conditions(rule.conditions)
            out[_field(rule.priority, "action")] = actions.canonical_desired(ctx, rule.action)
        return out

    def diff(self, ctx: Context, desired: d.ListenerRules, actual: Observed) -> list[FieldDiff]:
        # Both ways: a rule the spec does not have (added by hand) is a difference too.
        diffs = super().diff(ctx, desired, actual)
        want = self.fields(ctx, desired, actual)
        return diffs + [FieldDiff(desired.key, path, None, value)
                        for path, value in actual.fields.items() if path not in want]

    def observe(self, ctx: Context, desired: list[d.ListenerRules], owned: dict[str, dict[str, str]]) -> list[Observed]:
        # Rules are found through the owned listeners (the tagging API does not list rules). Every rule on an
        # owned listener is ours; a listener with no rule but its default has nothing to observe.
        found = []
        for listener in ctx.observed.get("listener", []):
            if listener.key is None:
                continue
            rules = self._describe(ctx.reads, listener.id)
            if rules:
                found.append(self._observed(listener.id, listener.info["port"], rules))
        return found

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        """Rules are read without tags (they belong to their listener): this tags the rules of an adopted one."""
        retag_arns(ctx, [r["RuleArn"] for r in actual.raw.get("rules", [])], tags, remove)

    def _describe(self, reads: LiveReads, listener_arn: str) -> list[dict]:
        rules = [r for r in reads.rules(listener_arn) if not r.get("IsDefault")]
        return sorted(rules, key=lambda r: int(r["Priority"]))  # moto lists them in creation order

    def parent_id(self, actual: Observed) -> str | None:
        return actual.info.get("listenerArn")

    def _observed(self, listener_arn: str, port: int, rules: list[dict]) -> Observed:
        fields: dict[str, Any] = {"listenerArn": listener_arn}
        for r in rules:
            fields[_field(int(r["Priority"]), "conditions")] = canonical_conditions(r.get("Conditions", []))
            fields[_field(int(r["Priority"]), "action")] = actions.canonical_actual(r.get("Actions", []))
        # The ARN prefix every rule of this listener shares names the set (the listener's own ARN is taken).
        return Observed(kind=self.kind, key=d.rules_key(port), id=listener_arn.replace(":listener/", ":listener-rule/", 1),
                        name=f"rules of listener {port}", fields=fields, raw={"rules": rules},
                        info={"port": port, "listenerArn": listener_arn, "count": len(rules)})

    def create(self, ctx: Context, desired: d.ListenerRules) -> Observed:
        listener_arn = ctx.resolve(desired.listener)
        if listener_arn == UNKNOWN:
            raise RuntimeError(f"{desired.key}: listener {desired.listener.key} does not exist yet")
        self._converge(ctx, desired, listener_arn, [])
        return self._observed(listener_arn, desired.port, self._live(ctx, listener_arn))

    def update(self, ctx: Context, desired: d.ListenerRules, actual: Observed, diffs: list[FieldDiff]) -> None:
        listener_arn = actual.info["listenerArn"]
        self._converge(ctx, desired, listener_arn, actual.raw["rules"])
        fresh = self._observed(listener_arn, desired.port, self._live(ctx, listener_arn))
        actual.fields, actual.raw, actual.info = fresh.fields, fresh.raw, fresh.info  # for the status

    def _converge(self, ctx: Context, desired: d.ListenerRules, listener_arn: str, current: list[dict]) -> None:
        elbv2 = ctx.aws.elbv2
        by_priority = {r.priority: r for r in desired.rules}
        want = {r.priority: _content(canonical_conditions(r.conditions), actions.canonical_desired(ctx, r.action))
                for r in desired.rules}
        have = [(r["RuleArn"], int(r["Priority"]),
                 _content(canonical_conditions(r.get("Conditions", [])), actions.canonical_actual(r.get("Actions", []))))
                for r in current]
        steps = plan(want, have)
        for moves in (steps.vacate, steps.move):
            if moves:
                try:
                    elbv2.set_rule_priorities(RulePriorities=[{"RuleArn": arn, "Priority": p} for arn, p in moves])
                except botocore.exceptions.ClientError as exc:
                    # A retry after a lost answer: the rules are already there (AWS refuses a priority in use,
                    # even the rule's own). Anything else in the way is a real conflict.
                    now = {r["RuleArn"]: int(r["Priority"]) for r in self._live(ctx, listener_arn)}
                    if error_code(exc) != "PriorityInUse" or any(now.get(arn) != p for arn, p in moves):
                        raise
        for priority in steps.create:
            rule = by_priority[priority]
            try:
                elbv2.create_rule(ListenerArn=listener_arn, Priority=priority, Conditions=rule.conditions,
                                  Actions=actions.to_aws(ctx, rule.action), Tags=to_aws(ctx.tags_for(desired.key)))
            except botocore.exceptions.ClientError as exc:
                # A retry after a lost answer finds the rule it created: success if it is the one we want.
                there = [_content(canonical_conditions(r.get("Conditions", [])),
                                  actions.canonical_actual(r.get("Actions", [])))
                         for r in self._live(ctx, listener_arn) if int(r["Priority"]) == priority]
                if error_code(exc) != "PriorityInUse" or there != [want[priority]]:
                    raise
        for arn, priority in steps.modify:
            rule = by_priority[priority]
            elbv2.modify_rule(RuleArn=arn, Conditions=rule.conditions, Actions=actions.to_aws(ctx, rule.action))
        for arn in steps.delete:
            self._delete_rule(ctx, arn)
        if steps:
            ctx.changed("Updated" if current else "Created", desired.key,
                        f"{len(steps.create)} created, {len(steps.modify)} modified, {len(steps.move)} moved, "
                        f"{len(steps.delete)} deleted")

    def _live(self, ctx: Context, listener_arn: str) -> list[dict]:
        return self._describe(LiveReads(ctx.aws, ctx.owner), listener_arn)

    def delete(self, ctx: Context, actual: Observed) -> None:
        for rule in actual.raw["rules"]:
            self._delete_rule(ctx, rule["RuleArn"])
        ctx.changed("Deleted", actual.key or actual.id, actual.id)

    def _delete_rule(self, ctx: Context, arn: str) -> None:
        try:
            ctx.aws.elbv2.delete_rule(RuleArn=arn)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in ("RuleNotFound", "ListenerNotFound"):
                raise
