"""Read IAM out of a synthesized template: resolve ARNs and decide requests.

Only what the stack uses is understood: ``Fn::GetAtt`` of a table's ``Arn``,
``Fn::Join``, ``Ref`` of pseudo parameters, action and resource patterns with
``*``/``?``, and the ``ForAllValues:StringLike`` condition on
``dynamodb:LeadingKeys``. Anything else raises, so a test never passes because
a policy was misread.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}


def table_arn(name: str) -> str:
    """The ARN of a table named ``name`` in the test account and region."""
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def resolve(template: dict[str, Any], value: Any) -> str:
    """A string with the template's intrinsics replaced by test-account values."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and argument in PSEUDO:
            return PSEUDO[argument]
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(resolve(template, part) for part in parts)
        if function == "Fn::GetAtt" and argument[1] == "Arn":
            resource = template["Resources"][argument[0]]
            if resource["Type"] == "AWS::DynamoDB::Table":
                return table_arn(resource["Properties"]["TableName"])
            if resource["Type"] == "AWS::Logs::LogGroup":
                return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{argument[0]}:*"
    raise ValueError(f"cannot resolve {value!r}")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Request:
    """One authorised action: e.g. ``dynamodb:DeleteItem`` on a table for a partition key."""

    action: str
    resource: str
    leading_key: str | None = None


@dataclass(frozen=True)
class Statement:
    """A policy statement with its resources resolved."""

    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: dict[str, Any]

    def matches(self, request: Request) -> bool:
        """Whether this statement applies to the request (conditions included)."""
        if not any(fnmatch.fnmatchcase(request.action, a) for a in self.actions):
            return False
        if not any(fnmatch.fnmatchcase(request.resource, r) for r in self.resources):
            return False
        return self._conditions_hold(request)

    def _conditions_hold(self, request: Request) -> bool:
        for operator, clauses in self.conditions.items():
            if operator != "ForAllValues:StringLike" or set(clauses) != {"dynamodb:LeadingKeys"}:
                raise ValueError(f"condition not understood: {operator} {clauses}")
            patterns = _listed(clauses["dynamodb:LeadingKeys"])
            if request.leading_key is None or not any(
                fnmatch.fnmatchcase(request.leading_key, p) for p in patterns
            ):
                return False
        return True


def statements(template: dict[str, Any], document: dict[str, Any]) -> list[Statement]:
    """The statements of a policy document, resolved."""
    return [
        Statement(
            effect=raw["Effect"],
            actions=tuple(_listed(raw["Action"])),
            resources=tuple(resolve(template, r) for r in _listed(raw["Resource"])),
            conditions=raw.get("Condition", {}),
        )
        for raw in document["Statement"]
    ]


def role_statements(template: dict[str, Any], role_id: str) -> list[Statement]:
    """Every statement that applies to a role: its inline and attached policies."""
    role = template["Resources"][role_id]["Properties"]
    found = []
    for policy in role.get("Policies", []):
        found += statements(template, policy["PolicyDocument"])
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} in resource["Properties"].get("Roles", []):
            found += statements(template, resource["Properties"]["PolicyDocument"])
    return found


def resource_policy_statements(template: dict[str, Any]) -> list[Statement]:
    """The statements of every table's resource-based policy."""
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            policy = resource["Properties"].get("ResourcePolicy")
            if policy:
                found += statements(template, policy["PolicyDocument"])
    return found


def allowed(identity: list[Statement], resource: list[Statement], request: Request) -> bool:
    """IAM's verdict within one account: an explicit deny wins, then any allow."""
    every = identity + resource
    if any(s.effect == "Deny" and s.matches(request) for s in every):
        return False
    return any(s.effect == "Allow" and s.matches(request) for s in identity)


_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _key_of(params: dict[str, Any]) -> str | None:
    item = params.get("Key") or params.get("Item") or {}
    pk = item.get("pk", {})
    return pk.get("S") if isinstance(pk, dict) else None


def requests_of(call: dict[str, Any]) -> list[Request]:
    """The IAM requests one DynamoDB API call makes (a transaction: one per item)."""
    operation, params = call["operation"], call["params"]
    if operation == "TransactWriteItems":
        found = []
        for item in params["TransactItems"]:
            ((kind, body),) = item.items()
            found.append(
                Request(
                    f"dynamodb:{_ITEM_ACTIONS[kind]}", table_arn(body["TableName"]), _key_of(body)
                )
            )
        return found
    if operation == "TransactGetItems":
        return [
            Request("dynamodb:GetItem", table_arn(i["Get"]["TableName"]), _key_of(i["Get"]))
            for i in params["TransactItems"]
        ]
    resource = table_arn(params["TableName"])
    if params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    return [Request(f"dynamodb:{operation}", resource, _key_of(params))]
