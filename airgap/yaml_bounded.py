"""YAML with a bound on alias expansion, for configuration files.

An alias (``*name``) makes a node appear again wherever it is named: a 448-byte file can
stand for 9**9 strings. PyYAML builds such a document cheaply (the objects are shared), but
everything that walks or prints it then runs for minutes and gigabytes. The document is
refused before it is built when, with every alias expanded, it would hold more than
:data:`MAX_CONFIG_NODES` nodes (an alias inside its own anchor counts as endless). A few
anchors, as people use them to share a list, are fine.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigError

MAX_CONFIG_NODES = 1_000_000


def load_yaml_bounded(text: str, p: str) -> Any:
    """``yaml.safe_load(text)``; a document naming more than MAX_CONFIG_NODES nodes, aliases expanded, is a ConfigError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        total = _expanded_size(node)
        if total > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{p}: expected a configuration of at most {MAX_CONFIG_NODES} values, found more once its YAML "
                f"aliases (*name) are expanded; refusing an alias bomb"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes ``root`` stands for once every alias is expanded (each shared node counted per use)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not done yet: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: a deep document cannot exhaust the interpreter's stack
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done and id(node) in open_nodes:
            return MAX_CONFIG_NODES + 1  # an alias inside its own anchor: endless once expanded
        if isinstance(node, yaml.SequenceNode):
            kids: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes.get(id(k), 1) for k in kids), MAX_CONFIG_NODES + 1)
        else:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
    return sizes[id(root)]
