"""Hidden-size pruning of recurrent layers (``nn.GRU``/``LSTM``/``RNN`` and their cells) on Torch-Pruning.

Torch-Pruning 1.6 has no pruner for GRUs or cells and a single-layer-only one for LSTMs; it traces a
recurrent layer's internals as loose parameters and element-wise ops, and ``get_pruning_group`` then fails
in ``index_mapping`` (the gate slices of the fused weights). Here each recurrent layer is shown to the
dependency graph as two nodes, both custom layers:

- the layer itself, whose input and output channels are both its **hidden size** (in == out, so the
  state it reads — ``h0``, or the previous step's output in a cell rollout — and the outputs ``y``,
  ``h_n``, ``c_n`` all fall into one group); pruning hidden unit ``j`` removes row ``j`` of every gate in
  every ``weight_ih``/``weight_hh``/bias, column ``j`` of every ``weight_hh`` and of the next layer's
  ``weight_ih``;
- an :class:`InputSide` node in front of it, whose input channels are the layer's ``input_size``
  (pruning them removes ``weight_ih_l0`` columns) and whose output is the hidden size (nothing to cut).

During a trace (:func:`traceable`) a forward hook replaces the layer's outputs by equal values whose
autograd graph links straight to the input side, ``h0``/``c0`` and the outputs, so Torch-Pruning never
walks through the gate arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.prune.errors import PruneError

RECURRENT_TYPES = (nn.RNNBase, nn.RNNCellBase)
_GATES = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1, nn.GRUCell: 3, nn.LSTMCell: 4, nn.RNNCell: 1}
_SIDE_ATTR = "_edgeprune_input_side"  # where a layer keeps its InputSide (not a registered child)


def is_recurrent(module: nn.Module) -> bool:
    return isinstance(module, RECURRENT_TYPES)


def gates(module: nn.Module) -> int:
    """Number of gate blocks stacked in the layer's fused weights (GRU 3, LSTM 4, RNN 1)."""
    for cls, n in _GATES.items():
        if isinstance(module, cls):
            return n
    raise PruneError(f"{type(module).__name__} is not a recurrent layer edgeprune can prune")


def check_supported(module: nn.Module, path: str) -> None:
    """Refuse, with the way out, the recurrent variants whose hidden units are not one plain index set."""
    gates(module)
    if getattr(module, "bidirectional", False):
        raise PruneError(
            f"{path} ({type(module).__name__}) is bidirectional: its outputs concatenate two hidden states",
            expected="unidirectional recurrent layers (the pruner traces the whole model, protected parts too)",
            fix="replace it by two unidirectional layers (one fed the time-reversed sequence), then prune",
        )
    if getattr(module, "proj_size", 0):
        raise PruneError(
            f"{path} (LSTM) has proj_size={module.proj_size}: projected LSTMs are not supported",
            expected="nn.LSTM(proj_size=0) (the pruner traces the whole model, protected parts too)",
            fix="drop proj_size and add an nn.Linear after the LSTM (the same projection, prunable)",
        )


def _layer_names(module: nn.Module) -> list[tuple[str, str, str, str]]:
    """Per layer: (weight_ih, weight_hh, bias_ih, bias_hh) attribute names."""
    if isinstance(module, nn.RNNCellBase):
        return [("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return [
        tuple(f"{w}_l{i}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for i in range(module.num_layers)
    ]


def _select(module: nn.Module, name: str, keep: torch.Tensor, dim: int) -> None:
    p = getattr(module, name, None)
    if p is None:
        return
    new = nn.Parameter(torch.index_select(p.data, dim, keep.to(p.device)), requires_grad=p.requires_grad)
    if p.grad is not None:
        new.grad = torch.index_select(p.grad, dim, keep.to(p.device))
    setattr(module, name, new)  # RNNBase.__setattr__ keeps _flat_weights in step


def _keep(size: int, idxs: list[int]) -> torch.Tensor:
    drop = set(int(i) for i in idxs)
    return torch.tensor([i for i in range(size) if i not in drop], dtype=torch.long)


class HiddenPruner(tp.pruner.BasePruningFunc):
    """Torch-Pruning pruner of a recurrent layer's hidden units (in == out: the state it reads and writes)."""

    def prune_out_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:
        hidden = layer.hidden_size
        keep = _keep(hidden, idxs)
        rows = torch.cat([keep + g * hidden for g in range(gates(layer))])
        for i, (w_ih, w_hh, b_ih, b_hh) in enumerate(_layer_names(layer)):
            _select(layer, w_ih, rows, 0)
            if i > 0:  # the previous layer's hidden units are this layer's inputs
                _select(layer, w_ih, keep, 1)
            _select(layer, w_hh, rows, 0)
            _select(layer, w_hh, keep, 1)
            _select(layer, b_ih, rows, 0)
            _select(layer, b_hh, rows, 0)
        layer.hidden_size = len(keep)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.hidden_size

    get_in_channels = get_out_channels


class InputSide(nn.Module):
    """The input columns of a recurrent layer, as a node of its own in the dependency graph.

    Holds no parameters; :meth:`parameters` shows the layer's, so probing what a pruning function
    shrinks (exact parameter accounting) sees them.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        object.__setattr__(self, "layer", layer)  # not a child: no cycle in the module tree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Link.apply(x.new_zeros(()), x, _ANCHOR)

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        return self.layer.parameters(recurse=False)


class InputPruner(tp.pruner.BasePruningFunc):
    """Torch-Pruning pruner of :class:`InputSide`: input channels are ``weight_ih_l0`` columns."""

    def prune_out_channels(self, layer: InputSide, idxs: list[int]) -> InputSide:
        return layer  # the hidden units: cut by HiddenPruner in the same group

    def prune_in_channels(self, layer: InputSide, idxs: list[int]) -> InputSide:
        rnn = layer.layer
        _select(rnn, _layer_names(rnn)[0][0], _keep(rnn.input_size, idxs), 1)
        rnn.input_size -= len(set(idxs))
        return layer

    def get_out_channels(self, layer: InputSide) -> int:
        return layer.layer.hidden_size

    def get_in_channels(self, layer: InputSide) -> int:
        return layer.layer.input_size


_HIDDEN, _INPUT = HiddenPruner(), InputPruner()
PRUNERS: dict[type, tp.pruner.BasePruningFunc] = {cls: _HIDDEN for cls in _GATES} | {InputSide: _INPUT}
_ANCHOR = torch.zeros((), requires_grad=True)  # gives every link a grad_fn (Torch-Pruning skips leaves)


class _Link(torch.autograd.Function):
    """``value`` unchanged, with an autograd node whose parents are ``parents`` (for tracing only)."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, *parents: Any) -> torch.Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, ...]:
        return (None,) * len(ctx.needs_input_grad)


def input_side(layer: nn.Module) -> InputSide:
    """The input-side node of ``layer``, kept on the layer (outside its modules and state_dict; a deep copy
    of the layer copies it along, pointing at the copy)."""
    side = layer.__dict__.get(_SIDE_ATTR)
    if side is None:
        side = InputSide(layer)
        object.__setattr__(layer, _SIDE_ATTR, side)
    return side


def _relink(layer: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    """The layer's outputs re-parented: main output ← (input side, initial state); others ← main output."""
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, torch.Tensor):
        raise PruneError(
            f"{type(layer).__name__} was called with {type(x).__name__}: only padded tensors can be traced",
            expected="a (batch, time, features) or (time, batch, features) tensor, not a PackedSequence",
        )
    state = args[1] if len(args) > 1 else kwargs.get("hx")
    states = [s for s in (state if isinstance(state, tuple) else (state,)) if isinstance(s, torch.Tensor)]
    u = input_side(layer)(x)
    if isinstance(layer, nn.LSTMCell):
        h, c = output
        h = _Link.apply(h.detach(), u, *states, _ANCHOR)
        return h, _Link.apply(c.detach(), h)
    if isinstance(layer, nn.RNNCellBase):
        return _Link.apply(output.detach(), u, *states, _ANCHOR)
    y, last = output
    y = _Link.apply(y.detach(), u, *states, _ANCHOR)
    if isinstance(last, tuple):  # LSTM (h_n, c_n)
        return y, tuple(_Link.apply(t.detach(), y) for t in last)
    return y, _Link.apply(last.detach(), y)


class _Holder(nn.Module):
    """``module`` with the input sides of its recurrent layers beside it (Torch-Pruning hooks only modules
    it finds in the traced model, and skips the children of custom layers)."""

    def __init__(self, module: nn.Module, sides: list[InputSide]):
        super().__init__()
        self.module = module
        self.sides = nn.ModuleList(sides)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


@contextmanager
def traceable(module: nn.Module) -> Iterator[tuple[nn.Module, dict[type, tp.pruner.BasePruningFunc]]]:
    """While open, ``module``'s recurrent layers trace as hidden/input nodes.

    Yields the module to trace (``module`` itself when it has no recurrent layer) and the custom pruners
    to register with Torch-Pruning.
    """
    layers = [(path, m) for path, m in module.named_modules() if is_recurrent(m)]
    if not layers:
        yield module, PRUNERS
        return
    for path, layer in layers:
        check_supported(layer, path or type(module).__name__)
    with ExitStack() as stack:
        for _, layer in layers:
            handle = layer.register_forward_hook(_relink, prepend=True, with_kwargs=True)
            stack.callback(handle.remove)
        yield _Holder(module, [input_side(layer) for _, layer in layers]), PRUNERS


def owned_state(group_members: list[tuple[str, str]], layer_paths: set[str]) -> str | None:
    """The recurrent layer whose hidden state a group is, when every produced dimension in it is that state.

    ``group_members``: (target path, side) pairs. A hidden state read by other components is still its
    layer's own dimension: the readers lose input columns (``None`` when another layer produces it too).
    """
    producers = {t for t, side in group_members if side == "out"}
    return next(iter(producers)) if len(producers) == 1 and producers <= layer_paths else None


def macs(module: nn.Module, inputs: tuple, output: Any) -> float:
    """Multiply-accumulates of one call: gates × (input + hidden) × hidden per step and layer."""
    x = inputs[0]
    g, hidden = gates(module), module.hidden_size
    if isinstance(module, nn.RNNCellBase):
        rows = x.shape[0] if x.dim() > 1 else 1
        return rows * g * hidden * (module.input_size + hidden)
    steps = x.numel() // x.shape[-1]  # batch × time
    per_step = g * hidden * (module.input_size + hidden) + (module.num_layers - 1) * g * hidden * 2 * hidden
    return steps * per_step


class MagnitudeImportance(tp.importance.GroupMagnitudeImportance):
    """Torch-Pruning's group magnitude importance, with recurrent layers' own weights counted.

    Torch-Pruning scores only its built-in layer types; here a hidden unit's rows in every gate of every
    ``weight_ih``/``weight_hh`` and its columns in ``weight_hh`` (and the next layer's ``weight_ih``) join
    the group's reduction like any other member.
    """

    @torch.no_grad()
    def __call__(self, group: tp.Group) -> torch.Tensor | None:
        self._extra = _hidden_magnitudes(group, self.p)
        imp = super().__call__(group)
        if imp is None and self._extra[0]:  # a group of recurrent layers only
            imp = self._normalize(self._reduce([], []), self.normalizer)
        return imp

    def _reduce(self, group_imp: list, group_idxs: list) -> torch.Tensor:
        imps, idxs = self._extra
        return super()._reduce([*group_imp, *imps], [*group_idxs, *idxs])


def _hidden_magnitudes(group: tp.Group, p: int) -> tuple[list[torch.Tensor], list[list[int]]]:
    imps, idxs = [], []
    for item in group:
        layer = item.dep.target.module
        if not (is_recurrent(layer) and item.dep.handler == _HIDDEN.prune_out_channels):
            continue
        hidden, g = layer.hidden_size, gates(layer)
        total = torch.zeros(hidden)
        for i, (w_ih, w_hh, _, _) in enumerate(_layer_names(layer)):
            for name in (w_ih, w_hh):
                total += getattr(layer, name).detach().abs().pow(p).reshape(g, hidden, -1).sum((0, 2)).cpu()
            total += getattr(layer, w_hh).detach().abs().pow(p).sum(0).cpu()
            if i > 0:
                total += getattr(layer, w_ih).detach().abs().pow(p).sum(0).cpu()
        imps.append(total[list(item.idxs)])
        idxs.append(item.root_idxs)
    return imps, idxs
