"""Graph containers: residual blocks and concatenated branches, composable with ``Sequential``.

    Residual(block, shortcut=None, post=None):   z = block(x) + shortcut(x);   y = post(z)
    Concat(*branches, dim=1):                    y = concatenate([b(x) for b in branches], dim)

``shortcut=None`` is the identity (shortcut(x) = x); ``post=None`` is the identity too (a ResNet
basic block ends in ``post=ReLU()``, applied after the addition, as ``F.relu(out + identity)`` in
torch code). Every child is a layer, a ``Sequential``, or another container.

Backward, by the chain rule through the graph. Write g = dL/dy.

Residual::

    g_z = post.backward(g)                        # dL/dz (identity post: g_z = g)
    dz/d(block(x)) = dz/d(shortcut(x)) = I        # the addition passes g_z to both operands unchanged
    g_x = block.backward(g_z) + shortcut.backward(g_z)     # identity shortcut: + g_z itself

Concat: y is the branches' outputs side by side along ``dim``, so dL/d(b_i(x)) is the slice of g
that b_i's output occupies::

    g_i = g[:, off_i : off_i + C_i]               # along dim; C_i = branch i's size there
    g_x = sum_i branches[i].backward(g_i)

In both, x feeds several branches (a fork): the gradient with respect to x is the SUM of the
gradients each branch sends back. That sum is written out in ``backward`` below.

State and names: ``named_parameters`` / ``named_buffers`` use the keys of the equivalent torch
module tree, a module with children ``block``, ``shortcut``, ``post`` (Residual) or ``0``, ``1``,
... (Concat, like an ``nn.ModuleList``), so ``Sequential(conv, Residual(...))`` has state_dict keys
such as ``"1.block.0.weight"``, exactly the torch module's. ``named_children()`` lists the children
as (name, layer) pairs (``children()`` the layers alone), for code that walks or flattens a graph.

Shapes: ``output_shape(per-sample in_shape)`` walks every branch and raises a ``ValueError`` naming
the container, the branch, the layer inside it and the shapes when something does not fit
(including a block and a shortcut whose outputs differ, or concatenated branches that disagree off
the concatenation axis). ``child_shapes(in_shape)`` gives each child's input and output shape, for
``summary()``.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from .base import Layer, Parameter

if TYPE_CHECKING:
    from ..model import Sequential

Child: TypeAlias = "Layer | Sequential"    # a container's child: a layer, or a chain of them

# -- how a child is asked for its names, buffers and shapes --------------------------------------
# A child is a Layer, a container, or a Sequential (which has ``layers`` but no ``named_buffers``
# or ``output_shape``: its chain is walked here, so this module needs nothing from tinycnn.model).

def _chain(child):
    """The list of layers of a Sequential child, or None for a single layer."""
    layers = getattr(child, "layers", None)
    return list(layers) if isinstance(layers, (list, tuple)) else None


def child_named_parameters(child) -> dict:
    """(name -> Parameter) of a child: a dict for a layer (or an iterator of pairs), indexed for a chain."""
    return dict(child.named_parameters())


def child_named_buffers(child) -> dict:
    chain = _chain(child)
    if chain is not None and not hasattr(child, "named_buffers"):
        return {f"{i}.{name}": buf for i, layer in enumerate(chain)
                for name, buf in child_named_buffers(layer).items()}
    if hasattr(child, "named_buffers"):
        return dict(child.named_buffers())
    return {}


def _describe(child) -> str:
    """A short name for a child in a container's repr: "4 layers", "Conv2D", "ReLU()", a container's repr."""
    chain = _chain(child)
    if chain is not None:
        return f"{len(chain)} layer{'s' if len(chain) != 1 else ''}"
    if isinstance(child, _Container) or not dict(child.named_parameters()):
        return repr(child)
    return type(child).__name__


def _layer_output_shape(layer, in_shape: tuple) -> tuple:
    """Per-sample output shape of one layer (the rule ``tinycnn.shapes`` uses: ``output_shape`` if the
    layer has one, else the shape is kept)."""
    if hasattr(layer, "kernel_size") and len(in_shape) != 3:
        raise ValueError(f"{layer!r}: expects a (C, H, W) image per sample (input (N, C, H, W)), "
                         f"got per-sample shape {in_shape}")
    rule = getattr(layer, "output_shape", None)
    if rule is None:
        return in_shape
    return tuple(int(d) for d in rule(in_shape))


@dataclass
class ChildShape:
    path: str            # key prefix in the torch module tree, relative to the container: "block.0"
    layer: object
    in_shape: tuple      # per sample
    out_shape: tuple     # per sample


def walk_child(owner: str, name: str, child, in_shape: tuple) -> list[ChildShape]:
    """Shapes through one child: one entry for a layer, one per layer for a Sequential child.

    Raises ValueError naming ``owner``, the branch ``name``, the layer inside it and the shapes."""
    chain = _chain(child)
    steps = [(f"{name}.{i}", layer) for i, layer in enumerate(chain)] if chain is not None else [(name, child)]
    out: list[ChildShape] = []
    shape = tuple(int(d) for d in in_shape)
    for path, layer in steps:
        try:
            new = _layer_output_shape(layer, shape)
        except (ValueError, TypeError) as err:
            trail = " -> ".join([str(tuple(in_shape))] + [f"[{c.path}] {c.out_shape}" for c in out])
            raise ValueError(f"{owner}: branch {name!r}, layer {path!r} ({layer!r}) cannot take its per-sample "
                             f"input of shape {shape}: {str(err).removeprefix(f'{layer!r}: ')}\n"
                             f"    shapes in branch {name!r} so far: {trail}") from None
        out.append(ChildShape(path, layer, shape, new))
        shape = new
    return out


def _output_of(steps: list[ChildShape], in_shape: tuple) -> tuple:
    return steps[-1].out_shape if steps else tuple(in_shape)


def _check_child(owner: str, name: str, child):
    if child is None:
        return None
    if not (hasattr(child, "forward") and hasattr(child, "backward") and hasattr(child, "named_parameters")):
        raise TypeError(f"{owner}: {name} must be a layer, a Sequential or a container (with forward, "
                        f"backward and named_parameters), got {type(child).__name__}: {child!r}")
    return child


def _check_float(owner, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{owner}: input dtype is {x.dtype}, but a floating array is needed")
    if x.ndim < 2:
        raise ValueError(f"{owner}: expected a batched input (N, ...) with at least 2 dimensions, "
                         f"got shape {x.shape}")
    return np.ascontiguousarray(x)


class _Container(Layer):
    """What Residual and Concat share: names, buffers, modes, parameters, of their children."""

    def named_children(self) -> list[tuple[str, Child]]:
        """(name, child) pairs, in the torch module tree's order."""
        raise NotImplementedError  # pragma: no cover

    def children(self) -> list[Child]:
        return [child for _, child in self.named_children()]

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``("block.0.weight", Parameter)`` pairs: the torch module tree's names."""
        for name, child in self.named_children():
            for key, p in child_named_parameters(child).items():
                yield f"{name}.{key}", p

    def named_buffers(self) -> dict[str, np.ndarray]:
        return {f"{name}.{key}": b for name, child in self.named_children()
                for key, b in child_named_buffers(child).items()}

    def train(self, mode: bool = True) -> _Container:
        self.training = bool(mode)
        for _, child in self.named_children():
            child.train(mode)
        return self


@dataclass
class ResidualCache:
    out_shape: tuple          # (N, ...) shape of y, for checking grad_y


class Residual(_Container):
    """y = post(block(x) + shortcut(x)); identity shortcut and post when None.

    x: (N, ...) -> y: (N, ...) of block(x)'s shape, which must equal shortcut(x)'s (for the identity,
    x's own). Typical: ``Residual(Sequential(Conv2D(c, c, 3, padding=1), BatchNorm2D(c), ReLU(),
    Conv2D(c, c, 3, padding=1), BatchNorm2D(c)), post=ReLU())``.
    """

    def __init__(self, block: Child, shortcut: Child | None = None, post: Child | None = None) -> None:
        self.block = _check_child("Residual", "block", block)
        if self.block is None:
            raise TypeError("Residual: block is required (the branch f in y = f(x) + shortcut(x))")
        self.shortcut = _check_child("Residual", "shortcut", shortcut)
        self.post = _check_child("Residual", "post", post)
        self.training = True
        self._cache: ResidualCache | None = None

    def __repr__(self) -> str:
        parts = [f"block: {_describe(self.block)}",
                 f"shortcut: {'identity' if self.shortcut is None else _describe(self.shortcut)}"]
        if self.post is not None:
            parts.append(f"post: {_describe(self.post)}")
        return f"Residual({', '.join(parts)})"

    def named_children(self) -> list[tuple[str, Child]]:
        kids = [("block", self.block)]
        if self.shortcut is not None:
            kids.append(("shortcut", self.shortcut))
        if self.post is not None:
            kids.append(("post", self.post))
        return kids

    # -- shapes ----------------------------------------------------------------------------------

    def child_shapes(self, in_shape: tuple[int, ...]) -> list[ChildShape]:
        in_shape = tuple(int(d) for d in in_shape)
        owner = repr(self)
        block = walk_child(owner, "block", self.block, in_shape)
        shortcut = [] if self.shortcut is None else walk_child(owner, "shortcut", self.shortcut, in_shape)
        f_shape, s_shape = _output_of(block, in_shape), _output_of(shortcut, in_shape)
        if f_shape != s_shape:
            what = "the identity shortcut (x itself)" if self.shortcut is None else "the shortcut"
            hint = (" A block that changes channels or size needs a projection shortcut, e.g. "
                    "shortcut=Sequential(Conv2D(c_in, c_out, 1, stride=s, bias=False), BatchNorm2D(c_out)).")
            raise ValueError(f"{owner}: block(x) + shortcut(x) needs equal shapes, but for per-sample input "
                             f"{in_shape} the block gives {f_shape} and {what} gives {s_shape}.{hint}")
        post = [] if self.post is None else walk_child(owner, "post", self.post, f_shape)
        return block + shortcut + post

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample (..,) in -> per-sample out: the block's output shape, after ``post``."""
        in_shape = tuple(int(d) for d in in_shape)
        steps = self.child_shapes(in_shape)
        return steps[-1].out_shape if steps else in_shape

    # -- forward / backward ----------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _check_float(repr(self), x)                    # (N, ...)
        f = self.block.forward(x)                          # (N, ...) block(x)
        s = x if self.shortcut is None else self.shortcut.forward(x)
        if f.shape != s.shape:
            raise ValueError(f"{self!r}: block(x) + shortcut(x) needs equal shapes, but for input {x.shape} "
                             f"the block gives {f.shape} and the shortcut gives {s.shape}")
        z = f + s                                          # a new array: neither child's output is changed
        y = z if self.post is None else self.post.forward(z)
        self._cache = ResidualCache(out_shape=y.shape)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.out_shape)
        g_z = g if self.post is None else self.post.backward(g)           # dL/dz, z = block(x) + shortcut(x)
        # the addition hands g_z to both operands; x feeds both: its gradient is the sum of theirs
        g_from_block = self.block.backward(g_z)                           # (N, ...) like x
        g_from_shortcut = g_z if self.shortcut is None else self.shortcut.backward(g_z)
        return g_from_block + g_from_shortcut


@dataclass
class ConcatCache:
    axis: int                 # the concatenation axis of the batched arrays (>= 1)
    sizes: list               # [C_i]: each branch's size along that axis
    out_shape: tuple          # (N, ...) shape of y


class Concat(_Container):
    """y = concatenate([branch(x) for branch in branches], dim): Inception-style branches joined
    along channels (``dim=1`` of NCHW, torch.cat's ``dim`` counting the batch axis; negative counts
    from the end). Every branch sees the same x; their outputs must agree on every axis but ``dim``.
    """

    def __init__(self, *branches: Child, dim: int = 1) -> None:
        if not branches:
            raise ValueError("Concat: needs at least one branch, got none")
        self.branches = [_check_child("Concat", f"branch {i}", b) for i, b in enumerate(branches)]
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"Concat: dim must be an integer, got {dim!r}")
        if dim == 0:
            raise ValueError("Concat: dim=0 is the batch axis; concatenating samples is not a layer "
                             "(use dim=1 for channels, or a negative dim counted from the end)")
        self.dim = int(dim)
        self.training = True
        self._cache: ConcatCache | None = None

    def __repr__(self) -> str:
        inner = ", ".join(_describe(b) for b in self.branches)
        return f"Concat({inner}, dim={self.dim})"

    def named_children(self) -> list[tuple[str, Child]]:
        return [(str(i), b) for i, b in enumerate(self.branches)]

    def _axis(self, ndim: int, where: str) -> int:
        """The batched axis ``dim`` names in an ndim-D array; errors name the numbers."""
        axis = self.dim if self.dim >= 0 else ndim + self.dim
        if not 1 <= axis < ndim:
            raise ValueError(f"{self!r}: dim={self.dim} is out of range for the branches' {ndim}-D outputs "
                             f"({where}); valid: 1..{ndim - 1} or -{ndim - 1}..-1 (dim 0 is the batch)")
        return axis

    # -- shapes ----------------------------------------------------------------------------------

    def child_shapes(self, in_shape: tuple[int, ...]) -> list[ChildShape]:
        in_shape = tuple(int(d) for d in in_shape)
        owner = repr(self)
        walks = [walk_child(owner, str(i), b, in_shape) for i, b in enumerate(self.branches)]
        outs = [_output_of(w, in_shape) for w in walks]
        self._agree([(1,) + o for o in outs], "per-sample shapes " + ", ".join(
            f"branch {i}: {o}" for i, o in enumerate(outs)), per_sample=True)
        return [c for w in walks for c in w]

    def _agree(self, shapes: list, listing: str, per_sample: bool = False) -> int:
        """Check the (batched) output shapes agree off the concatenation axis; return that axis."""
        ndims = {len(s) for s in shapes}
        if len(ndims) != 1:
            raise ValueError(f"{self!r}: the branches' outputs differ in rank, so they cannot be "
                             f"concatenated: {listing}")
        ndim = ndims.pop()
        axis = self._axis(ndim, listing)
        rest = {tuple(d for k, d in enumerate(s) if k != axis) for s in shapes}
        if len(rest) != 1:
            named = f"per-sample axis {axis - 1}" if per_sample else f"axis {axis}"
            raise ValueError(f"{self!r}: the branches' outputs must agree on every axis but the "
                             f"concatenation axis (dim={self.dim}, {named}): {listing}")
        return axis

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample in -> per-sample out: the branches' common shape, sizes along dim added."""
        in_shape = tuple(int(d) for d in in_shape)
        walks = [walk_child(repr(self), str(i), b, in_shape) for i, b in enumerate(self.branches)]
        outs = [(1,) + _output_of(w, in_shape) for w in walks]
        axis = self._agree(outs, "per-sample shapes " + ", ".join(
            f"branch {i}: {o[1:]}" for i, o in enumerate(outs)), per_sample=True)
        joined = list(outs[0])
        joined[axis] = sum(o[axis] for o in outs)
        return tuple(joined[1:])

    # -- forward / backward ----------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _check_float(repr(self), x)                               # (N, ...)
        outs = [b.forward(x) for b in self.branches]                  # each (N, ..., C_i, ...)
        axis = self._agree([o.shape for o in outs], f"input {x.shape}, outputs " + ", ".join(
            f"branch {i}: {o.shape}" for i, o in enumerate(outs)))
        y = np.concatenate([np.asarray(o) for o in outs], axis=axis)  # (N, ..., sum C_i, ...)
        self._cache = ConcatCache(axis=axis, sizes=[o.shape[axis] for o in outs], out_shape=y.shape)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.out_shape)
        offsets = np.cumsum([0] + cache.sizes)                        # where each branch's slice starts
        grad_x = None
        for i, branch in enumerate(self.branches):
            index = [slice(None)] * g.ndim
            index[cache.axis] = slice(int(offsets[i]), int(offsets[i + 1]))
            g_i = np.ascontiguousarray(g[tuple(index)])               # dL/d(branch_i(x)): its slice of g
            g_x_i = branch.backward(g_i)                              # this branch's share of dL/dx
            # x feeds every branch (a fork): dL/dx is the sum of the branches' gradients
            grad_x = np.array(g_x_i, copy=True) if grad_x is None else grad_x + g_x_i
        return grad_x
