"""The executor's program: a graph of nodes over numbered values, in an order that runs.

    value 0          the network's input
    node             kind "layer" (one layer's computation), "add" (the sum of its inputs: a
                     residual join) or "concat" (its inputs joined along channels)
                     inputs: the value ids it reads; output: the value id it writes
    graph.output     the value id the network returns

A chain of layers (``Sequential``) lowers to one node per layer, each reading the value before it.
A graph container adds its children's nodes: ``Residual(block, shortcut, post)`` its block's nodes
and its shortcut's (both reading the same value), an "add" and its post's; ``Concat(*branches)`` its
branches' nodes and a "concat". A value read by several nodes is a *fork*: in backward its gradient is the
sum of the gradients its readers send back (``Plan.backward`` adds them up, where a reader sees it).
Any other layer, including one a user writes, is one opaque node run on its own code.

Passes rewrite the graph (reorder or remove nodes) and set each node's op configuration before the
plan runs it; ``describe()`` prints the program, one node per line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..layers.containers import Concat, Residual


@dataclass
class Node:
    kind: str                        # "layer", "add" or "concat"
    inputs: list                     # value ids read
    output: int                      # value id written
    layer: object = None             # the layer (kind "layer"), the Concat container ("concat"), else None
    notes: list = field(default_factory=list)   # what the passes did to this node, for describe()
    op: object = None                # filled by the plan: the op that runs this node in lane 0


@dataclass
class Graph:
    nodes: list                      # topological order
    output: int                      # the value the network returns
    values: int = 1                  # how many value ids are in use (0: the input)

    def consumers(self, value: int) -> list:
        """Indices of the nodes that read ``value``."""
        return [i for i, node in enumerate(self.nodes) if value in node.inputs]

    def producer(self, value: int):
        """Index of the node that writes ``value`` (None for the input)."""
        for i, node in enumerate(self.nodes):
            if node.output == value:
                return i
        return None

    def describe(self) -> str:
        lines = []
        for node in self.nodes:
            what = repr(node.layer) if node.kind == "layer" else node.kind
            args = ", ".join(f"v{v}" for v in node.inputs)
            notes = f"   [{'; '.join(node.notes)}]" if node.notes else ""
            lines.append(f"v{node.output} = {what}({args}){notes}")
        lines.append(f"return v{self.output}")
        return "\n".join(lines)


class Builder:
    """Appends nodes; containers call ``layer(...)``, ``add(...)``, ``concat(...)`` from ``lower_into``."""

    def __init__(self):
        self.nodes: list = []
        self.values = 1

    def _new(self, kind, inputs, layer=None) -> int:
        out = self.values
        self.values += 1
        self.nodes.append(Node(kind=kind, inputs=list(inputs), output=out, layer=layer))
        return out

    def layer(self, layer, x: int) -> int:
        """Lower ``layer`` reading value ``x``; return the value it produces."""
        if type(layer) is Residual:
            f = self.layer(layer.block, x)                             # block(x)
            s = x if layer.shortcut is None else self.layer(layer.shortcut, x)   # shortcut(x): x is a fork
            z = self._new("add", [f, s])
            return z if layer.post is None else self.layer(layer.post, z)
        if type(layer) is Concat:
            outs = [self.layer(branch, x) for branch in layer.branches]   # x feeds every branch: a fork
            return self._new("concat", outs, layer)
        if isinstance(getattr(layer, "layers", None), list) and type(layer).__name__ == "Sequential":
            for inner in layer.layers:                 # a Sequential inside a graph: its chain
                x = self.layer(inner, x)
            return x
        return self._new("layer", [x], layer)


def lower(layers, *, opaque: bool = False) -> Graph:
    """A chain of layers -> its graph (containers inside it lowered by their own ``lower_into``;
    with ``opaque``, every layer one node, run on its own code)."""
    b = Builder()
    x = 0
    for layer in layers:
        x = b._new("layer", [x], layer) if opaque else b.layer(layer, x)
    return Graph(nodes=b.nodes, output=x, values=b.values)
