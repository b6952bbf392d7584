"""The YAML documents have no duplicate keys: PyYAML keeps the last silently, so two features adding
the same mapping (say, two `securitySchemes:` blocks) would lose one without this check."""

import pytest
import yaml

from devstack.template import ROOT, _CfnLoader


class StrictLoader(_CfnLoader):
    pass


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        assert key not in seen, f"duplicate key {key!r} at {key_node.start_mark}"
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@pytest.mark.parametrize("name", ["template.yaml", "openapi.yaml", "events/asyncapi.yaml"])
def test_no_duplicate_keys(name):
    assert yaml.load((ROOT / name).read_text(encoding="utf-8"), Loader=StrictLoader)  # noqa: S506


def test_the_strict_loader_catches_a_duplicate():
    with pytest.raises(AssertionError, match="duplicate key 'a'"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=StrictLoader)  # noqa: S506
