"""A small IAM policy evaluator for the operators our policies use (jupyter_config/iam/).

Pure code, no network. Why it exists: moto's server ignores IAM conditions for EC2 (and matches
EC2 requests as resource "*"; tests/integration/test_iam_moto_conditions.py), so
the conditions in the hub's policy (tag only at launch, launch only tagged nodes, end only this
hub's nodes) would otherwise be checked by nobody before a real account. It follows the semantics
AWS documents for identity-based policies in one account:

- a request is allowed when some statement allows it and none denies it (explicit deny wins;
  no match is an implicit deny);
- Action and Resource match with the ``*`` and ``?`` wildcards, actions case-insensitively;
  ``NotAction`` / ``NotResource`` are honoured;
- within a Condition, every operator must hold and, within an operator, every key; the values
  listed for one key are alternatives (OR);
- a key missing from the request context makes every operator false except ``Null`` (true when
  asked ``"true"``) and ``ForAllValues:*`` (true: "all of nothing");
- multivalued context keys (``aws:TagKeys``) must go through a ``ForAllValues:`` or
  ``ForAnyValue:`` operator; using one with a single-valued operator is an error here rather
  than a guess.

Not modelled (and refused with :class:`UnsupportedPolicy` when a policy uses them): other
operators, ``...IfExists``, policy variables (``${aws:username}``), Principal / resource-based
policies, permission boundaries, SCPs and session policies.

An EC2 action that touches several resources (RunInstances: instance, volume, subnet, security
group, network interface, image, key pair) is authorized resource by resource, each with its own
context keys; the request succeeds only if every resource is allowed. :func:`authorize` models
that with a list of :class:`Resource`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

OPERATORS = ("StringEquals", "StringLike", "ArnLike", "Bool", "Null")
SET_PREFIXES = ("ForAllValues:", "ForAnyValue:")


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not model."""


@dataclass(frozen=True)
class Resource:
    """One resource of a request and the context keys that apply to it (merged over the
    request's global keys)."""

    arn: str
    context: dict = field(default_factory=dict)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _wildcard(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's ``*`` (any run, also empty) and ``?`` (one character); nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (0 if case_sensitive else re.IGNORECASE)) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike: the six colon-separated parts match one by one (the resource part may itself
    contain colons), each with wildcards."""
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(_wildcard(p, v) for p, v in zip(p_parts, v_parts))


def _single(operator: str, policy_value: str, context_value) -> bool:
    policy_value, context_value = str(policy_value), context_value
    if operator == "StringEquals":
        return policy_value == str(context_value)
    if operator == "StringLike":
        return _wildcard(policy_value, str(context_value))
    if operator == "ArnLike":
        return _arn_like(policy_value, str(context_value))
    if operator == "Bool":
        # AWS compares the string forms case-insensitively ("true" / "false").
        return policy_value.lower() == str(context_value).lower()
    raise UnsupportedPolicy(f"condition operator {operator!r} is not modelled")


def _condition_holds(operator: str, key: str, policy_values, context: dict) -> bool:
    policy_values = [str(v) if not isinstance(v, bool) else str(v).lower() for v in _as_list(policy_values)]
    present = key in context
    if operator == "Null":
        if len(policy_values) != 1 or policy_values[0] not in ("true", "false"):
            raise UnsupportedPolicy(f"Null takes 'true' or 'false', not {policy_values}")
        return (not present) if policy_values[0] == "true" else present
    prefix = next((p for p in SET_PREFIXES if operator.startswith(p)), "")
    base = operator[len(prefix):]
    if base not in OPERATORS or base == "Null" or base.endswith("IfExists"):
        raise UnsupportedPolicy(f"condition operator {operator!r} is not modelled")
    if prefix:
        values = _as_list(context.get(key, []))
        matches = [any(_single(base, p, v) for p in policy_values) for v in values]
        # "All of nothing" is true, "any of nothing" is false (AWS's documented edge).
        return all(matches) if prefix == "ForAllValues:" else any(matches)
    if not present:
        return False
    value = context[key]
    if isinstance(value, (list, tuple)):
        raise UnsupportedPolicy(f"{key} is multivalued: use ForAllValues:/ForAnyValue: with {operator}")
    return any(_single(base, p, value) for p in policy_values)


def conditions_hold(condition: dict, context: dict) -> bool:
    for operator, keys in (condition or {}).items():
        for key, values in keys.items():
            if not _condition_holds(operator, key, values, context):
                return False
    return True


def _matches_any(patterns, value: str, case_sensitive: bool) -> bool:
    return any(_wildcard(p, value, case_sensitive) for p in _as_list(patterns))


def _statement_applies(statement: dict, action: str, arn: str, context: dict) -> bool:
    for unsupported in ("Principal", "NotPrincipal"):
        if unsupported in statement:
            raise UnsupportedPolicy(f"{unsupported} belongs to resource-based policies, not modelled")
    text = str(statement)
    if "${" in text:
        raise UnsupportedPolicy("policy variables are not modelled")
    if "Action" in statement:
        if not _matches_any(statement["Action"], action, case_sensitive=False):
            return False
    elif _matches_any(statement["NotAction"], action, case_sensitive=False):
        return False
    if "Resource" in statement:
        if not _matches_any(statement["Resource"], arn, case_sensitive=True):
            return False
    elif _matches_any(statement["NotResource"], arn, case_sensitive=True):
        return False
    return conditions_hold(statement.get("Condition", {}), context)


def decide(policies: list[dict], action: str, arn: str, context: dict) -> str:
    """``"Allow"``, ``"ExplicitDeny"`` or ``"ImplicitDeny"`` for one action on one resource."""
    allowed = False
    for policy in policies:
        for statement in _as_list(policy["Statement"]):
            if _statement_applies(statement, action, arn, context):
                if statement["Effect"] == "Deny":
                    return "ExplicitDeny"
                allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def authorize(policies: list[dict], action: str, resources: list[Resource], context: dict | None = None) -> dict:
    """Decide each resource of one request; the request is allowed only if all are.

    Returns ``{"allowed": bool, "decisions": {arn: decision}}`` so a test can say which resource
    failed."""
    decisions = {}
    for resource in resources:
        merged = {**(context or {}), **resource.context}
        decisions[resource.arn] = decide(policies, action, resource.arn, merged)
    return {"allowed": bool(resources) and all(d == "Allow" for d in decisions.values()), "decisions": decisions}


def substitute(document, values: dict):
    """The policy with its placeholders (``REGION``, ``HUB_ID``, ...) replaced, for a test or an
    install script. A placeholder's value may be a list (``INSTANCE_TYPE`` -> several types,
    ``SUBNET_ID`` -> several subnets): a string in a list that holds such a placeholder becomes
    one string per value (``subnet/SUBNET_ID`` -> one ARN per subnet), spliced into the list. A
    list value in a string that is not in a list is a :class:`ValueError` (there is no place for
    the second string). Inside longer strings the longest placeholder is replaced first."""
    if isinstance(document, dict):
        return {substitute(k, values): substitute(v, values) for k, v in document.items()}
    if isinstance(document, list):
        out = []
        for item in document:
            out.extend(_expand(item, values) if isinstance(item, str) else [substitute(item, values)])
        return out
    if isinstance(document, str):
        if document in values:  # a whole-string placeholder may stand for a list (a condition's values)
            return values[document]
        expanded = _expand(document, values)
        if len(expanded) == 1:
            return expanded[0]
        raise ValueError(f"{document!r}: a list for {', '.join(_placeholders(document, values))} "
                         "fits only in a list (e.g. Resource: [...])")
    return document


def _placeholders(text: str, values: dict) -> list[str]:
    if not values:
        return []
    pattern = re.compile("|".join(map(re.escape, sorted(values, key=len, reverse=True))))
    return pattern.findall(text)


def _expand(text: str, values: dict) -> list[str]:
    """Every string ``text`` stands for: one per combination of its list-valued placeholders,
    each made in one pass (a value that happens to contain a placeholder's name stays as it is)."""
    if text in values:
        value = values[text]
        return list(value) if isinstance(value, list) else [value]
    found = list(dict.fromkeys(_placeholders(text, values)))
    if not found:
        return [text]
    pattern = re.compile("|".join(map(re.escape, sorted(values, key=len, reverse=True))))
    choices = [values[name] if isinstance(values[name], list) else [values[name]] for name in found]
    return [pattern.sub(lambda m, pick=dict(zip(found, combo)): str(pick[m.group(0)]), text)
            for combo in itertools.product(*choices)]


__all__ = ["Resource", "UnsupportedPolicy", "authorize", "conditions_hold", "decide", "substitute"]
