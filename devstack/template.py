"""Reading ``template.yaml``, the single source of truth for routes, functions and the table.

CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) are loaded as their long form
(``{"Ref": ...}``) so the document can be read with a safe loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@lru_cache(maxsize=4)
def load(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (safe subclass)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    function: str
    code_uri: Path
    handler: str

    @property
    def module_file(self) -> Path:
        return self.code_uri / (self.handler.rsplit(".", 1)[0].replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def functions(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    doc = template or load()
    return {name: res for name, res in doc["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}


def routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi route, in template order."""
    found = []
    for name, res in functions(template).items():
        props = res["Properties"]
        for event in (props.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            found.append(Route(method=event["Properties"]["Method"].upper(), path=event["Properties"]["Path"],
                               function=name, code_uri=ROOT / props["CodeUri"], handler=props["Handler"]))
    return found


def table_definition(table_name: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """``CreateTable`` arguments for the template's table (on-demand, with its GSIs and stream)."""
    props = (template or load())["Resources"]["Table"]["Properties"]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props["BillingMode"],
        "StreamSpecification": {"StreamEnabled": True, **props["StreamSpecification"]},
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return definition


def ttl_attribute(template: dict[str, Any] | None = None) -> str:
    return (template or load())["Resources"]["Table"]["Properties"]["TimeToLiveSpecification"]["AttributeName"]


def stream_filter_patterns(template: dict[str, Any] | None = None) -> list[str]:
    """The event relay's FilterCriteria patterns (the local relay applies the same filter)."""
    relay = functions(template)["EventRelayFunction"]["Properties"]["Events"]["Outbox"]["Properties"]
    return [f["Pattern"] for f in relay.get("FilterCriteria", {}).get("Filters", [])]
