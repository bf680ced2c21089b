"""One HIPNN in plain torch: hippynn's ``HipnnVec`` (tensor sensitivity l_max = 1, inverse sensitivities with the
cos^2 cut-off, optional ResNet blocks, softplus) and its ``HEnergy`` read-out, written once for every part of the
workflow that computes a model without hippynn. hippynn's source is the ground truth (``networks/hipnn.py``,
``layers/hiplayers``, ``layers/transform.py``'s ``ResNetWrapper``, ``layers/targets.py``'s ``HEnergy``);
``tests/test_hipnn.py`` holds this module equal to hippynn and every user equal to this module.

* **the math** (:func:`inverse_sensitivities`, :func:`cos_cutoff`, :func:`environment`, :func:`interaction`,
  :func:`block_output`, :func:`atom_layer`, :func:`readout`, :func:`hierarchicality`): functions of tensors,
  TorchScript-able; every per-atom function takes one model's weights, or weights stacked along a leading model
  axis (features then ``(n_models, n_atoms, n_features)``), so the stacked training engine runs the same lines;
* **hippynn's state-dict keys** (:func:`interaction_keys`, :func:`atom_layer_keys`, :func:`readout_keys`,
  :func:`cusp_reg_key`): each weight's key by its role, the role being the attribute name of :class:`Hipnn`'s
  layers and the name the stacked engine reads its weights by;
* **what is supported** (:func:`check_supported`): the statement itself is
  ``tsmlip.network_support.NETWORK_SUPPORT``, so that planning checks it without importing torch; every user checks
  a model here;
* :class:`Hipnn`: one model's network and energy head as a module (atom energies from pairs).

Users: the TorchScript export (:mod:`.export`, which LAMMPS and TorchSim run) scripts :class:`Hipnn` (where the
fused pair loops of :mod:`.pair_kernels` build, its environment comes from them, then
:meth:`Hipnn.from_environment`); the stacked layout (:mod:`.hipnn_stack`: the fast training engine and the stacked
liquid) keeps its own pair terms (one-hot environment, written-out backward passes, fused C++ loops) and takes the
cut-off, the per-atom math and the keys from here.
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor, nn

__all__ = ["Hipnn", "REGULARIZED_ROLES", "UnsupportedModel", "atom_layer", "atom_layer_keys", "block_output",
           "check_supported", "cos_cutoff", "cos_cutoff_derivative", "cusp_reg_key", "hierarchicality", "interaction",
           "interaction_keys", "plain_from_payload", "readout", "readout_keys"]

#: the stacked layout of :mod:`.hipnn_stack`, and one model's network (:class:`Hipnn`: export, LAMMPS, TorchSim)
LAYOUTS = ("stacked", "plain")


class UnsupportedModel(ValueError):
    """A network setting a user of this module does not compute (one line naming the ``network:`` key)."""


def check_supported(network_cfg: dict, layout: str = "plain", who: Optional[str] = None, advice: str = "") -> None:
    """:class:`UnsupportedModel` naming the first ``network:`` setting that ``layout`` (:data:`LAYOUTS`) does not
    compute, as ``tsmlip.network_support.NETWORK_SUPPORT`` states it; ``who`` names the user, ``advice`` what to
    do."""
    from ..network_support import unsupported_network

    found = unsupported_network(network_cfg, layout)
    if found is not None:
        who = who or {"stacked": "the stacked HIPNN", "plain": "the plain-torch HIPNN"}[layout]
        raise UnsupportedModel(f"network.{found[0]}: {who} {found[1]}{'; ' + advice if advice else ''}")


# --- (a) the math ---------------------------------------------------------------------------------------------------
def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``x W^T + b``: one model's ``weight`` (out, in) on ``x`` (N, in), or weights (M, out, in) and biases (M, out)
    stacked over M models on ``x`` (M, N, in)."""
    if weight.dim() == 2:
        return nn.functional.linear(x, weight, bias)
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def cos_cutoff(dist: Tensor, hard_max: float) -> Tensor:
    """hippynn's ``CosCutoff``: cos^2(pi d / (2 d_hard)) for d <= d_hard, else 0."""
    return torch.cos(math.pi / 2 * dist / hard_max) ** 2 * (dist <= hard_max).to(dist.dtype)


def cos_cutoff_derivative(dist: Tensor, hard_max: float) -> Tensor:
    """d cut / d d of :func:`cos_cutoff`: -pi / (2 d_hard) sin(pi d / d_hard) for d <= d_hard, else 0."""
    return -(math.pi / 2 / hard_max) * torch.sin(math.pi * dist / hard_max) * (dist <= hard_max).to(dist.dtype)


def inverse_sensitivities(dist: Tensor, mu: Tensor, sigma: Tensor, hard_max: float) -> Tensor:
    """hippynn's ``InverseSensitivityModule``: s_nu(d) = exp(-(1/d - 1/mu_nu)^2 sigma_nu^2 / 2) cut(d), (P, nu) for
    the pair distances ``dist`` (P,) and one model's centres and widths ``mu``, ``sigma`` (1, nu)."""
    nondim = (dist.unsqueeze(1) ** -1 - mu ** -1) ** 2 / (sigma ** -2)
    return torch.exp(-0.5 * nondim) * cos_cutoff(dist, hard_max).unsqueeze(1)


def environment(sense: Tensor, unit: Tensor, x: Tensor, pair_i: Tensor, pair_j: Tensor) -> Tensor:
    """hippynn's ``envsum`` of ``InteractLayerVec``: per atom i, sum over its pairs (i, j) of the sensitivities
    ``sense`` (P, nu) and their products with the unit vectors ``unit`` (P, 3) times j's features ``x`` (N, nf):
    (N, 4, nu * nf), scalar then the three vector components, nu-major."""
    n_atoms, n_dist = x.shape[0], sense.shape[1]
    sense_vec = (sense.unsqueeze(1) * unit.unsqueeze(2)).reshape(-1, n_dist * 3)
    stacked = torch.cat([sense, sense_vec], dim=1)  # (P, 4 nu)
    env = torch.zeros((n_atoms, 4 * n_dist, x.shape[1]), dtype=x.dtype, device=x.device)
    env.index_add_(0, pair_i, stacked.unsqueeze(2) * x[pair_j].unsqueeze(1))
    return env.reshape(n_atoms, 4, n_dist * x.shape[1])


def interaction(env: Tensor, x: Tensor, int_weights: Tensor, vecscales: Tensor, selfint_weight: Tensor,
                selfint_bias: Tensor, cusp_reg: float) -> Tensor:
    """``InteractLayerVec`` after its environment sum ``env`` (..., A, 4, nu * nf_in): the interaction weights
    ``int_weights`` (..., nu, nf_out, nf_in) on the scalar part, the norm of the vector part (with ``cusp_reg``
    under the square root) times ``vecscales``, plus the self-interaction of the input features ``x``."""
    w = int_weights.transpose(-1, -2).flatten(-3, -2)  # (..., nu * nf_in, nf_out): hippynn's weights_rs
    scalar = torch.matmul(env.select(-2, 0), w)
    lead = list(env.shape[:-2])
    vec_env = env.narrow(-2, 1, 3).reshape(lead[:-1] + [lead[-1] * 3, env.shape[-1]])
    vector = torch.matmul(vec_env, w).reshape(lead + [3, w.shape[-1]])
    vector = torch.sqrt(torch.square(vector).sum(dim=-2) + cusp_reg) * vecscales.unsqueeze(-2)
    return scalar + vector + linear(x, selfint_weight, selfint_bias)


def block_output(h: Tensor, x: Tensor, res_weight: Optional[Tensor], res_bias: Optional[Tensor],
                 adjust_weight: Optional[Tensor]) -> Tensor:
    """A layer's output from its pre-activation ``h`` and input ``x``: softplus(h) without ResNet, else hippynn's
    ``ResNetWrapper``: res(softplus(h)) + x (+ adjust(x) instead of x where the widths differ)."""
    if res_weight is None:
        return nn.functional.softplus(h)
    res = linear(nn.functional.softplus(h), res_weight, res_bias)
    if adjust_weight is None:
        return res + x
    return res + linear(x, adjust_weight, None)


def atom_layer(x: Tensor, base_weight: Tensor, base_bias: Tensor, res_weight: Optional[Tensor],
               res_bias: Optional[Tensor]) -> Tensor:
    """An atom layer: ``Linear`` then softplus, or its ResNet block."""
    return block_output(linear(x, base_weight, base_bias), x, res_weight, res_bias, None)


def readout(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """One level's atom energies of ``HEnergy`` (a ``Linear`` to one output), the output axis dropped."""
    return linear(x, weight, bias).squeeze(-1)


def hierarchicality(levels: List[Tensor]) -> Tensor:
    """``HEnergy``'s per-atom hierarchicality of the levels' atom energies: sum_k e_k^2 / (e_k^2 + e_{k-1}^2)."""
    sq = [e.square() for e in levels]
    out = torch.zeros_like(sq[0])
    for k in range(1, len(sq)):
        out = out + sq[k] / (sq[k] + sq[k - 1])
    return out


# --- (b) hippynn's state-dict keys, by role --------------------------------------------------------------------------
#: the roles of hippynn's ``HipnnVec.regularization_params`` (its L2 term): every weight matrix of the network, no
#: biases, vector scales or sensitivity centres and widths, none of the energy head
REGULARIZED_ROLES = ("int_weights", "selfint_weight", "res_weight", "adjust_weight", "base_weight")


def _linear_keys(role: str, key: str, bias: bool = True) -> dict[str, str]:
    pre = f"{role}_" if role else ""
    return {f"{pre}weight": f"{key}.weight", **({f"{pre}bias": f"{key}.bias"} if bias else {})}


def interaction_keys(block: int, resnet: bool, adjust: bool = False, prefix: str = "") -> dict[str, str]:
    """The keys of block ``block``'s interaction layer of ``HipnnVec`` (its ResNet wrapper's with ``resnet``;
    ``adjust``: the wrapper's size adjustment, where input and output widths differ), by role."""
    top = f"{prefix}blocks.{block}.0"
    base = top + (".base_layer" if resnet else "")
    keys = {"mu": f"{base}.sensitivity.mu", "sigma": f"{base}.sensitivity.sigma", "int_weights": f"{base}.int_weights",
            "vecscales": f"{base}.vecscales", **_linear_keys("selfint", f"{base}.selfint")}
    if resnet:
        keys.update(_linear_keys("res", f"{top}.res_layer"))
        if adjust:
            keys.update(_linear_keys("adjust", f"{top}.adjust_layer", bias=False))
    return keys


def cusp_reg_key(block: int, resnet: bool, prefix: str = "") -> str:
    """The key of the interaction layer's extra state (``{"cusp_reg": ...}``)."""
    return f"{prefix}blocks.{block}.0{'.base_layer' if resnet else ''}._extra_state"


def atom_layer_keys(block: int, layer: int, resnet: bool, prefix: str = "") -> dict[str, str]:
    """The keys of atom layer ``layer`` (0-based) of block ``block``, by role."""
    key = f"{prefix}blocks.{block}.{layer + 1}"
    if not resnet:
        return _linear_keys("base", key)
    return {**_linear_keys("base", f"{key}.base_layer"), **_linear_keys("res", f"{key}.res_layer")}


def readout_keys(level: int, prefix: str = "") -> dict[str, str]:
    """The keys of ``HEnergy``'s read-out of feature level ``level`` (0: the one-hot input, no bias)."""
    return _linear_keys("", f"{prefix}layers.{level}", bias=level > 0)


# --- one model as a module -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HipnnShape:
    """What fixes a model's layers: its species (atomic numbers, sorted), width, sensitivities, atom layers per
    block, interaction blocks, ResNet, cut-off and ``cusp_reg``."""

    species: tuple
    width: int
    n_sensitivities: int
    n_atom_layers: int
    n_interactions: int
    resnet: bool
    hard_max: float
    cusp_reg: float

    @classmethod
    def from_payload(cls, payload: dict) -> "HipnnShape":
        """The shape of a model file's payload (:func:`tsmlip.core.model.read_model_payload`)."""
        arch, net = payload["arch"], payload["network_cfg"]
        return cls(tuple(sorted(int(z) for z in payload["species"] if int(z) != 0)), int(arch["width"]),
                   int(arch["n_sensitivities"]), int(arch["n_atom_layers"]), int(net["n_interaction_layers"]),
                   bool(net["resnet"]), float(net["dist_hard_max"]), float(net["cusp_reg"]))

    @property
    def feature_sizes(self) -> list[int]:
        return [len(self.species)] + [self.width] * self.n_interactions

    def adjust(self, block: int) -> bool:
        """Whether block ``block``'s ResNet wrapper adjusts the input width."""
        return self.resnet and self.feature_sizes[block] != self.feature_sizes[block + 1]


def _parameter(module: nn.Module, name: str, *shape: int, present: bool = True) -> None:
    module.register_parameter(name, nn.Parameter(torch.zeros(shape)) if present else None)


class _Block(nn.Module):
    """One interaction block: the interaction layer (+ ResNet), its atom layers, and the next level's read-out."""

    def __init__(self, s: HipnnShape, nf_in: int, adjust: bool):
        super().__init__()
        nf, nu = s.width, s.n_sensitivities
        for name, shape in (("mu", (1, nu)), ("sigma", (1, nu)), ("int_weights", (nu, nf, nf_in)),
                            ("vecscales", (nf,)), ("selfint_weight", (nf, nf_in)), ("selfint_bias", (nf,))):
            _parameter(self, name, *shape)
        _parameter(self, "res_weight", nf, nf, present=s.resnet)
        _parameter(self, "res_bias", nf, present=s.resnet)
        _parameter(self, "adjust_weight", nf, nf_in, present=adjust)
        self.atom_layers = nn.ModuleList(_AtomLayer(nf, s.resnet) for _ in range(s.n_atom_layers))
        self.readout = _Readout(nf, True)
        self.hard_max, self.cusp_reg = s.hard_max, s.cusp_reg

    def forward(self, x: Tensor, pair_i: Tensor, pair_j: Tensor, dist: Tensor, unit: Tensor) -> Tensor:
        env = environment(inverse_sensitivities(dist, self.mu, self.sigma, self.hard_max), unit, x, pair_i, pair_j)
        return self.from_environment(env, x)

    def from_environment(self, env: Tensor, x: Tensor) -> Tensor:
        """The block after its environment sum ``env`` (N, 4, nu * nf_in) of the input features ``x``: the
        interaction, its output (ResNet) and the atom layers."""
        h = interaction(env, x, self.int_weights, self.vecscales, self.selfint_weight, self.selfint_bias,
                        self.cusp_reg)
        x = block_output(h, x, self.res_weight, self.res_bias, self.adjust_weight)
        for layer in self.atom_layers:
            x = layer(x)
        return x


class _AtomLayer(nn.Module):
    def __init__(self, nf: int, resnet: bool):
        super().__init__()
        _parameter(self, "base_weight", nf, nf)
        _parameter(self, "base_bias", nf)
        _parameter(self, "res_weight", nf, nf, present=resnet)
        _parameter(self, "res_bias", nf, present=resnet)

    def forward(self, x: Tensor) -> Tensor:
        return atom_layer(x, self.base_weight, self.base_bias, self.res_weight, self.res_bias)


class _Readout(nn.Module):
    def __init__(self, nf: int, bias: bool):
        super().__init__()
        _parameter(self, "weight", 1, nf)
        _parameter(self, "bias", 1, present=bias)

    def forward(self, x: Tensor) -> Tensor:
        return readout(x, self.weight, self.bias)


class Hipnn(nn.Module):
    """One model's ``HipnnVec`` and ``HEnergy``: atom energies (N,) from the one-hot species (N, n_species) and a
    full pair list (both orders; r_ij = ``vec``, a message goes from ``pair_j`` to ``pair_i``, as in hippynn)."""

    __jit_ignored_attributes__ = ["shape"]

    def __init__(self, shape: HipnnShape):
        super().__init__()
        sizes = shape.feature_sizes
        self.blocks = nn.ModuleList(_Block(shape, sizes[k], shape.adjust(k)) for k in range(shape.n_interactions))
        self.readout0 = _Readout(sizes[0], False)
        self.shape = shape

    def forward(self, onehot: Tensor, pair_i: Tensor, pair_j: Tensor, vec: Tensor) -> Tensor:
        dist = torch.linalg.vector_norm(vec, dim=1)
        unit = vec / dist.unsqueeze(1)
        x = onehot
        energies = self.readout0(x)
        for block in self.blocks:
            x = block(x, pair_i, pair_j, dist, unit)
            energies = energies + block.readout(x)
        return energies

    def from_environment(self, onehot: Tensor, env: Tensor) -> Tensor:
        """Atom energies (N,) of a model with one interaction layer from that layer's environment sum ``env``
        (N, 4, nu * n_species), the pair terms computed elsewhere (the fused loops of :mod:`.pair_kernels`, as the
        stacked engine and the export with compiled pair terms do); :meth:`forward` is this after
        :func:`environment`."""
        if len(self.blocks) != 1:
            raise ValueError("from_environment: a model with one interaction layer only")
        energies = self.readout0(onehot)
        for block in self.blocks:
            energies = energies + block.readout(block.from_environment(env, onehot))
        return energies

    def layers_and_keys(self, net: str = "", he: str = ""):
        """Each layer with its hippynn keys by role (state-dict prefixes ``net``, ``he``)."""
        s = self.shape
        out = [(self.readout0, readout_keys(0, he))]
        for k, block in enumerate(self.blocks):
            out.append((block, interaction_keys(k, s.resnet, s.adjust(k), net)))
            out += [(lay, atom_layer_keys(k, a, s.resnet, net)) for a, lay in enumerate(block.atom_layers)]
            out.append((block.readout, readout_keys(k + 1, he)))
        return out

    def load_hippynn(self, network_state: dict, henergy_state: dict) -> "Hipnn":
        """Copy hippynn's state dicts (``HipnnVec``'s and ``HEnergy``'s) in, every parameter from its key
        (``KeyError`` for a key missing, ``RuntimeError`` for weights of another shape)."""
        state = {**{"net." + k: v for k, v in network_state.items()},
                 **{"he." + k: v for k, v in henergy_state.items()}}
        for layer, keys in self.layers_and_keys("net.", "he."):
            for role, key in keys.items():
                getattr(layer, role).data.copy_(state[key])
        for k, block in enumerate(self.blocks):
            extra = state.get(cusp_reg_key(k, self.shape.resnet, "net."))
            if isinstance(extra, dict) and "cusp_reg" in extra:
                block.cusp_reg = float(extra["cusp_reg"])
        return self


def plain_from_payload(payload: dict) -> Hipnn:
    """The :class:`Hipnn` (float32, CPU) holding a model file's weights (:class:`UnsupportedModel` for a network it
    does not compute)."""
    check_supported(payload["network_cfg"], "plain")
    return Hipnn(HipnnShape.from_payload(payload)).load_hippynn(payload["network_state"], payload["henergy_state"])
