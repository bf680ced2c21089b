"""A stack of HIPNN models (hippynn's ``HipnnVec``, l_max = 1, one interaction layer, inverse sensitivities, with or
without resnet, ``HEnergy`` head) evaluated in plain torch, every model with its own weights and its own
configurations in one call.

This computes what the hippynn graph of :mod:`tsmlip.core.model` computes (``tests/test_fast_engine.py`` holds the two
equal for the same weights: energies, forces, atom energies, every loss term and its gradient), arranged for
training many small models at once:

* **the pair geometry is data**: distances and unit vectors of every configuration are computed once
  (:mod:`tsmlip.core.geometry`); a step gathers them;
* **the interaction's input is one-hot**: the first layer's environment of atom i is, per sensitivity nu and
  species t of the neighbour, ``env[i, nu, t] = sum_j s_nu(d_ij)`` and ``env_vec[i, c, nu, t] = sum_j s_nu(d_ij)
  u_ij,c`` (hippynn's ``envsum`` of one-hot features), so the pair work is a scatter of ``(n_pairs, 4, n_sens)``;
* **forces without a pair-level double backward**: autograd gives dE/d(env) per atom (``create_graph=True``, so the
  second-order pass of the force loss runs only through the per-atom network), and the pair-level chain rule is
  written out (:func:`pair_forces`): dE/dr_ij = (sum_nu dE/ds_nu s'_nu(d)) u + (I - u u^T) dE/du / d;
* **models stacked**: every weight carries a leading model axis; per-atom layers are ``bmm`` over it; each
  model's configurations sit in their own slots of ``n_atoms_max`` rows (padding masked).

Weights are kept under hippynn's state-dict names (``net.<key>`` of ``HipnnVec``, ``he.<key>`` of ``HEnergy``), so a
model's slice is its hippynn state dict (:meth:`StackedHipnn.state_dicts`) and ``model.pt`` is written as before.
The names, the cut-off, the per-atom math (interaction weights, vector norm, self-interaction, ResNet, atom layers,
read-out) and what the stacked layout supports (:func:`tsmlip.core.hipnn.check_supported`, layout ``stacked``) are
:mod:`tsmlip.core.hipnn`'s; this module holds the stacked layout and its pair terms.
"""
from __future__ import annotations

import functools

import torch

from . import hipnn, pair_kernels
from .geometry import PairGeometry

#: added to each mean squared error under the square root, as tsmlip.core.losses.RMSE_FLOOR
RMSE_FLOOR = 1e-30


class StackedHipnn:
    """``n_models`` HIPNN models of one architecture and species set, weights stacked along axis 0.

    :param states: per model, ``(network_state, henergy_state)`` as hippynn's modules hold them
    :param frozen: keys not trained (hippynn's E0 layer after ``hierarchical_energy_initialization``)
    """

    def __init__(self, states: list[tuple[dict, dict]], n_atom_layers: int, dist_hard_max: float,
                 device="cpu", frozen=(hipnn.readout_keys(0, "he.")["weight"],), pair_kernels: str = "auto"):
        if not states:
            raise ValueError("an empty stack")
        self.n_atom_layers = int(n_atom_layers)
        #: the pair terms on the CPU: auto (the fused loops of :mod:`.pair_kernels` where they build) | torch | cpp
        self.pair_kernels = pair_kernels
        self.dist_hard_max = float(dist_hard_max)
        self.extra = {}
        tensors: dict[str, list] = {}
        for net, he in states:
            for prefix, sd in (("net.", net), ("he.", he)):
                for k, v in sd.items():
                    if isinstance(v, torch.Tensor):
                        tensors.setdefault(prefix + k, []).append(v.detach().to(device, torch.float32))
                    else:
                        self.extra[prefix + k] = v
        self.params = {k: torch.stack(v).contiguous() for k, v in tensors.items()}
        self.frozen = tuple(k for k in frozen if k in self.params)
        for k, p in self.params.items():
            p.requires_grad_(k not in self.frozen)
        self._keys()
        self.n_species = int(self.params[self.keys["interaction"]["int_weights"]].shape[-1])
        self.n_sens = int(self.params[self.keys["interaction"]["int_weights"]].shape[1])

    def _keys(self) -> None:
        """hippynn's keys of the one interaction block (:mod:`tsmlip.core.hipnn`), by role; ResNet and the size
        adjustment as the weights have them."""
        resnet = hipnn.interaction_keys(0, True, prefix="net.")["res_weight"] in self.params
        adjust = hipnn.interaction_keys(0, True, True, "net.")["adjust_weight"] in self.params
        self.keys = {"interaction": hipnn.interaction_keys(0, resnet, adjust, "net."),
                     "atom_layers": [hipnn.atom_layer_keys(0, a, resnet, "net.") for a in range(self.n_atom_layers)],
                     "readouts": [hipnn.readout_keys(k, "he.") for k in (0, 1)]}
        self.cusp_reg = float(self.extra[hipnn.cusp_reg_key(0, resnet, "net.")]["cusp_reg"])
        layers = [self.keys["interaction"], *self.keys["atom_layers"]]
        self.l2_keys = {k for keys in layers for role, k in keys.items() if role in hipnn.REGULARIZED_ROLES}

    def weights(self, keys: dict) -> dict:
        """The stacked weights of one layer by role (``.get``: None for a role it does not have)."""
        return {role: self.params[k] for role, k in keys.items()}

    @property
    def n_models(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    def trainable(self) -> dict[str, torch.Tensor]:
        return {k: p for k, p in self.params.items() if k not in self.frozen}

    def keep(self, rows: list[int]) -> None:
        """Keep only the models ``rows`` (in that order), e.g. when stopped models leave the stack."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=next(iter(self.params.values())).device)
        for k, p in self.params.items():
            self.params[k] = p.detach().index_select(0, idx).contiguous().requires_grad_(k not in self.frozen)

    def state_dicts(self, m: int) -> tuple[dict, dict]:
        """Model ``m``'s ``(network_state, henergy_state)``, hippynn's keys, detached CPU tensors."""
        net, he = {}, {}
        for k, p in self.params.items():
            (net if k.startswith("net.") else he)[k.split(".", 1)[1]] = p[m].detach().cpu().clone()
        for k, v in self.extra.items():
            (net if k.startswith("net.") else he)[k.split(".", 1)[1]] = v
        return net, he

    def l2(self) -> torch.Tensor:
        """hippynn's ``l2reg`` of each model: the sum of squared network weight matrices, shape (n_models,)."""
        return sum(p.pow(2).flatten(1).sum(1) for k, p in self.params.items() if k in self.l2_keys)

    # --- the forward pass -------------------------------------------------------------------------------
    def sensitivities(self, batch: "SlotBatch") -> tuple[torch.Tensor, torch.Tensor]:
        """hippynn's ``InverseSensitivityModule`` times ``CosCutoff`` for each pair with its model's centres and
        widths, and its derivative in the distance: (s, ds/dd), each (n_sens, n_pairs), the pair axis last and
        contiguous. The cut-off and 1/d are the batch's (no weights in them)."""
        mop = batch.model_of_pair
        w = self.weights(self.keys["interaction"])
        inv_mu = (1.0 / w["mu"][:, 0]).t().contiguous()
        sig2 = w["sigma"][:, 0].square().t().contiguous()
        return _Sensitivities.apply(inv_mu.index_select(1, mop), sig2.index_select(1, mop), batch.inv_dist,
                                    batch.inv_dist2, batch.cut, batch.dcut)

    def atom_network(self, env: torch.Tensor, onehot: torch.Tensor):
        """The per-atom part: (atom energies, e0, e1), each (n_models, n_rows), from the environment
        ``env`` (n_models, n_rows, 4, n_sens * n_species: scalar and three vector components, nu-major) and the
        one-hot species (n_models, n_rows, n_species; padding rows all zero)."""
        w = self.weights(self.keys["interaction"])
        h = hipnn.interaction(env, onehot, w["int_weights"], w["vecscales"], w["selfint_weight"], w["selfint_bias"],
                              self.cusp_reg)
        x = hipnn.block_output(h, onehot, w.get("res_weight"), w.get("res_bias"), w.get("adjust_weight"))
        for keys in self.keys["atom_layers"]:
            a = self.weights(keys)
            x = hipnn.atom_layer(x, a["base_weight"], a["base_bias"], a.get("res_weight"), a.get("res_bias"))
        r0, r1 = (self.weights(keys) for keys in self.keys["readouts"])
        e0, e1 = hipnn.readout(onehot, r0["weight"], None), hipnn.readout(x, r1["weight"], r1["bias"])
        return e0 + e1, e0, e1

    def forward(self, batch: "SlotBatch", forces: bool = True, create_graph: bool = False) -> dict:
        """Energies (n_models, n_slots_per_model), atom energies and hierarchicality per atom row (n_models,
        n_rows; padding 0), and forces (n_models, n_rows, 3) of the batch's configurations."""
        M, A = self.n_models, batch.rows_per_model
        if abs(batch.cutoff - self.dist_hard_max) > 1e-9:
            raise ValueError(f"pairs within {batch.cutoff} A for models of dist_hard_max {self.dist_hard_max} A")
        S, nu = self.n_species, self.n_sens
        fused = pair_kernels.use_cpp(self.pair_kernels, batch.dist.device)
        if fused:  # the same terms as fused loops over the pairs, (n_pairs, ...) layout
            w = self.weights(self.keys["interaction"])
            env, s, ds = pair_kernels.SensitivitiesEnvironment.apply(
                1.0 / w["mu"][:, 0], w["sigma"][:, 0].square(), batch.dist,
                batch.unit_rows, batch.model_of_pair, batch.env_row, M * A * S, batch.cutoff)
            env = env.reshape(M, A, S, 4, nu).permute(0, 1, 3, 4, 2).reshape(M, A, 4, nu * S)
        else:
            s, ds = self.sensitivities(batch)
            env = _Environment.apply(s, batch.unit4, batch.env_row, M * A * S)  # (4, nu, rows x species)
            env = env.reshape(4, nu, M, A, S).permute(2, 3, 0, 1, 4).reshape(M, A, 4, nu * S)
        if forces and not env.requires_grad:  # frozen weights (MD): forces still need dE/d(env)
            env = env.detach().requires_grad_(True)
        atom_E, e0, e1 = self.atom_network(env, batch.onehot)
        atom_E = atom_E * batch.mask
        hier = hipnn.hierarchicality([e0, e1]) * batch.mask
        out = {"atom_E": atom_E, "E": atom_E.reshape(M, batch.slots_per_model, -1).sum(2),
               "hier": hier.reshape(M, batch.slots_per_model, -1).sum(2)}
        if forces:
            (g_env,) = torch.autograd.grad(atom_E.sum(), env, create_graph=create_graph)
            if fused:
                g_rows = g_env.reshape(M, A, 4, nu, S).permute(0, 1, 4, 2, 3).reshape(M * A * S, 4, nu)
                out["F"] = pair_kernels.PairForces.apply(g_rows, s, ds, batch.dist, batch.unit_rows, batch.env_row,
                                                         batch.first, batch.second, M * A).reshape(M, A, 3)
            else:
                out["F"] = pair_forces(g_env, s, ds, batch, S).reshape(M, A, 3)
        return out


def pair_forces(g_env: torch.Tensor, s: torch.Tensor, ds: torch.Tensor, batch: "SlotBatch", n_species: int):
    """Forces (n_models * n_rows, 3) from dE/d(env) (n_models, n_rows, 4, nu * species): the chain rule through the
    sensitivities and unit vectors of every pair, written out (first order in the pair quantities)."""
    M, A = g_env.shape[0], g_env.shape[1]
    nu = s.shape[0]
    g_rows = g_env.reshape(M, A, 4, nu, n_species).permute(2, 3, 0, 1, 4).reshape(4, nu, M * A * n_species)
    return _PairForces.apply(g_rows, s, ds, batch.unit, batch.inv_dist, batch.env_row, batch.first,
                             batch.second, M * A).t()


# --- the pair terms: the pair axis last (contiguous), forward and backward written out ----------------------------
# Every pair quantity is (k, n_pairs): elementwise work runs over long contiguous rows, and each step's pair work is
# a handful of passes (eager torch on tiny inner dimensions, or autograd's bookkeeping of (P, 4, nu) products, cost
# several times more). The backward passes are first order: the force loss's second-order pass runs through the
# per-atom network only (forward() above). tests/test_fast_engine.py holds them equal to hippynn (every loss term
# and gradient), which also checks each backward here.

class _Sensitivities(torch.autograd.Function):
    """s = g cut and ds/dd = g (x sigma^2 / d^2 cut + cut'), g = exp(-x^2 sigma^2 / 2), x = 1/d - 1/mu, for
    per-pair inv_mu and sig2 = sigma^2 (n_sens, P); geometry (1, P)."""

    @staticmethod
    def forward(ctx, inv_mu, sig2, inv_dist, inv_dist2, cut, dcut):
        x = inv_dist - inv_mu
        xs = x * sig2
        g = torch.exp(-0.5 * x * xs)
        q = xs * inv_dist2 * cut + dcut
        ctx.save_for_backward(inv_dist2, cut, sig2, x, xs, g, q)
        return g * cut, g * q

    @staticmethod
    def backward(ctx, grad_s, grad_ds):
        inv_dist2, cut, sig2, x, xs, g, q = ctx.saved_tensors
        through_g = (grad_s * cut + grad_ds * q) * g  # dg/dx = -xs g, dg/dsig2 = -x^2 g / 2
        direct = grad_ds * g * inv_dist2 * cut  # dq/dx = sig2 / d^2 cut, dq/dsig2 = x / d^2 cut
        grad_x = direct * sig2 - xs * through_g
        grad_sig2 = direct * x - 0.5 * x * x * through_g
        return -grad_x, grad_sig2, None, None, None, None


class _Environment(torch.autograd.Function):
    """env[k, nu, r] = sum over the pairs p of row r of unit4[k, p] s[nu, p] (k: 1 and the unit vector), (4, nu,
    n_rows): hippynn's envsum of one-hot features."""

    @staticmethod
    def forward(ctx, s, unit4, row, n_rows: int):
        ctx.save_for_backward(unit4, row)
        nu, P = s.shape
        vals = (unit4.unsqueeze(1) * s.unsqueeze(0)).reshape(4 * nu, P)
        env = torch.zeros(4 * nu, n_rows, dtype=s.dtype, device=s.device).index_add_(1, row, vals)
        return env.reshape(4, nu, n_rows)

    @staticmethod
    def backward(ctx, grad_env):
        unit4, row = ctx.saved_tensors
        k, nu = grad_env.shape[0], grad_env.shape[1]
        g = grad_env.reshape(k * nu, -1).index_select(1, row).reshape(k, nu, -1)
        return (g * unit4.unsqueeze(1)).sum(0), None, None, None


class _PairForces(torch.autograd.Function):
    """Forces (3, n_atoms) from dE/d(env) per row ``g_rows`` (4, nu, n_rows): dE/dr_ij = (sum_nu dE/ds_nu
    ds_nu/dd) u + (I - u u^T) dE/du / d, with dE/ds_nu = g_0 + u . g_vec and dE/du = sum_nu g_vec s_nu, scattered
    to both atoms of each pair."""

    @staticmethod
    def forward(ctx, g_rows, s, ds, unit, inv_dist, row, first, second, n_atoms: int):
        nu = s.shape[0]
        g = g_rows.reshape(4 * nu, -1).index_select(1, row).reshape(4, nu, -1)
        g_vec = g[1:]
        dE_ds = g[0] + (unit.unsqueeze(1) * g_vec).sum(0)  # (nu, P)
        dE_du = (g_vec * s.unsqueeze(0)).sum(1)  # (3, P)
        radial = (dE_ds * ds).sum(0, keepdim=True)
        grad_r = radial * unit + (dE_du - (dE_du * unit).sum(0, keepdim=True) * unit) * inv_dist  # dE/dr_ij
        ctx.save_for_backward(g_vec, s, ds, unit, inv_dist, row, first, second, dE_ds)
        ctx.n_rows = g_rows.shape[2]
        F = torch.zeros(3, n_atoms, dtype=s.dtype, device=s.device)
        return F.index_add_(1, first, grad_r).index_add_(1, second, -grad_r)

    @staticmethod
    def backward(ctx, grad_F):
        g_vec, s, ds, unit, inv_dist, row, first, second, dE_ds = ctx.saved_tensors
        grad_F = grad_F.contiguous()
        grad_r = grad_F.index_select(1, first) - grad_F.index_select(1, second)  # (3, P)
        grad_radial = (grad_r * unit).sum(0, keepdim=True)
        grad_du = (grad_r - grad_radial * unit) * inv_dist  # (3, P): through the tangential term
        grad_dE_ds = grad_radial * ds  # (nu, P)
        grad_ds = grad_radial * dE_ds
        grad_s = (grad_du.unsqueeze(1) * g_vec).sum(0)
        nu, P = s.shape
        G = torch.empty(4, nu, P, dtype=s.dtype, device=s.device)
        G[0] = grad_dE_ds
        torch.addcmul(unit.unsqueeze(1) * grad_dE_ds.unsqueeze(0), grad_du.unsqueeze(1), s.unsqueeze(0), out=G[1:])
        grad_rows = torch.zeros(4 * nu, ctx.n_rows, dtype=s.dtype, device=s.device)
        grad_rows.index_add_(1, row, G.reshape(4 * nu, P))
        return grad_rows.reshape(4, nu, ctx.n_rows), grad_s, grad_ds, None, None, None, None, None, None


class SlotBatch:
    """Configurations laid out for a stack: model m's ``slots_per_model`` configurations occupy rows
    ``m * rows_per_model + k * n_atoms_max + (0..n_atoms_max-1)``; pairs gathered from the geometry."""

    def __init__(self, geom: PairGeometry, configs: torch.Tensor):
        """``configs``: (n_models, slots_per_model) dataset rows (each model its own)."""
        device = geom.dist.device
        configs = configs.to(device)
        M, B = configs.shape
        n_max = geom.species_slot.shape[1]
        self.slots_per_model, self.rows_per_model = B, B * n_max
        flat = configs.reshape(-1)
        counts = geom.n_pairs[flat]
        slot = torch.repeat_interleave(torch.arange(M * B, device=device), counts)
        starts = geom.ptr[flat]
        offset = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        pos = offset + torch.arange(slot.shape[0], device=device)
        base = slot * n_max
        self.first = geom.first.index_select(0, pos) + base
        self.second = geom.second.index_select(0, pos) + base
        self.species_second = geom.species_second.index_select(0, pos)
        self.model_of_pair = torch.div(slot, B, rounding_mode="floor")
        self._env_row(geom.n_species)
        self._pair_terms(geom.dist.index_select(0, pos), geom.unit.index_select(0, pos), geom.cutoff)
        sp = geom.species_slot[flat].reshape(M, B * n_max)
        self.mask = (sp >= 0).to(self.dist.dtype)
        self.onehot = (torch.nn.functional.one_hot(sp.clamp(min=0), geom.n_species).to(self.dist.dtype)
                       * self.mask.unsqueeze(2))
        self.configs = configs

    def _env_row(self, n_species: int) -> None:
        # each pair's row of the environment: its first atom's row times the species count plus the second atom's
        # species slot
        self.env_row = self.first * n_species + self.species_second if n_species > 1 else self.first

    def _pair_terms(self, dist: torch.Tensor, unit: torch.Tensor, cutoff: float) -> None:
        # what the pair terms need of the geometry alone (no weights): the fused loops read d and u (P, 3); the torch
        # path's terms below, each (k, n_pairs) with the pair axis last, are made on first use (a step of the fused
        # loops never builds them)
        self.dist = dist.contiguous()
        self.unit_rows = unit.contiguous()  # (P, 3): the fused loops' layout
        self.cutoff = cutoff

    @functools.cached_property
    def unit(self) -> torch.Tensor:  # u (3, P)
        return self.unit_rows.t().contiguous()

    @functools.cached_property
    def unit4(self) -> torch.Tensor:  # (1, u) (4, P)
        return torch.cat([torch.ones_like(self.dist).unsqueeze(0), self.unit], 0)

    @functools.cached_property
    def inv_dist(self) -> torch.Tensor:  # 1/d (1, P)
        return 1.0 / self.dist.unsqueeze(0)

    @functools.cached_property
    def inv_dist2(self) -> torch.Tensor:  # 1/d^2 (1, P)
        return self.inv_dist * self.inv_dist

    @functools.cached_property
    def cut(self) -> torch.Tensor:  # hippynn's CosCutoff (1, P)
        return hipnn.cos_cutoff(self.dist.unsqueeze(0), self.cutoff)

    @functools.cached_property
    def dcut(self) -> torch.Tensor:  # its derivative in d (1, P)
        return hipnn.cos_cutoff_derivative(self.dist.unsqueeze(0), self.cutoff)

    @classmethod
    def from_pairs(cls, first: torch.Tensor, second: torch.Tensor, species_second: torch.Tensor, dist: torch.Tensor,
                   unit: torch.Tensor, model_of_pair: torch.Tensor, species_slot: torch.Tensor, n_species: int,
                   cutoff: float) -> "SlotBatch":
        """One configuration per model from pair arrays already in the slot layout (e.g. an MD step's pairs):
        ``first``/``second`` atom rows ``model * n_atoms + i``, ``species_second`` the second atom's species slot,
        float32 ``dist`` and ``unit`` (r_ij = (R_j + shift - R_i) / d_ij) of the pairs within ``cutoff``,
        ``model_of_pair``, and the species slot of every atom row ``species_slot`` (n_models, n_atoms; -1 for
        padding)."""
        self = cls.__new__(cls)
        M, n_atoms = species_slot.shape
        self.slots_per_model, self.rows_per_model = 1, n_atoms
        self.first, self.second, self.species_second = first, second, species_second
        self.model_of_pair = model_of_pair
        self._env_row(n_species)
        self._pair_terms(dist, unit, float(cutoff))
        self.mask = (species_slot >= 0).to(dist.dtype)
        self.onehot = (torch.nn.functional.one_hot(species_slot.clamp(min=0), n_species).to(dist.dtype)
                       * self.mask.unsqueeze(2))
        self.configs = None
        return self


def _err(diff: torch.Tensor, mask: torch.Tensor, count: torch.Tensor):
    """Per model (RMSE + MAE, RMSE, MAE) of ``diff`` (n_models, ...) over the entries where ``mask`` is 1,
    ``count`` of them per model: eq. 3 of the paper, hippynn's MSELoss and MAELoss over real entries."""
    dims = tuple(range(1, diff.ndim))
    mse = (diff.square() * mask).sum(dims) / count
    mae = (diff.abs() * mask).sum(dims) / count
    rmse = torch.sqrt(mse + RMSE_FLOOR)
    return rmse + mae, rmse, mae


def loss_terms(model: StackedHipnn, out: dict, batch: SlotBatch, targets: dict, atom_energies: bool) -> dict:
    """Each model's loss terms, shape (n_models,): E, F, (A,) L2, R as :func:`tsmlip.core.losses.build_loss_terms`
    builds them in hippynn (L_err = RMSE + MAE over the batch's real atoms/configurations)."""
    n_real = batch.mask.sum(1)
    ones = torch.ones_like(out["E"])
    terms = {"E": _err(out["E"] - targets["E"], ones, ones.shape[1])[0],
             "F": _err(out["F"] - targets["F"], batch.mask.unsqueeze(2), 3 * n_real)[0]}
    if atom_energies:
        terms["A"] = _err(out["atom_E"] - targets["atom_E"], batch.mask, n_real)[0]
    terms["L2"] = model.l2()
    terms["R"] = out["hier"].mean(1)
    return terms


def metrics(out: dict, batch: SlotBatch, targets: dict) -> dict:
    """Validation metrics per model (n_models,), as tsmlip.core.losses.build_loss_terms names them: RMSE/MAE of energy,
    energy per atom, forces, (atom energies when ``targets`` has them), and the err_* terms of the stopping rule."""
    n_real = batch.mask.sum(1)
    ones = torch.ones_like(out["E"])
    n_atoms = batch.mask.reshape(out["E"].shape[0], out["E"].shape[1], -1).sum(2)
    err_E, rmse_E, mae_E = _err(out["E"] - targets["E"], ones, ones.shape[1])
    err_F, rmse_F, mae_F = _err(out["F"] - targets["F"], batch.mask.unsqueeze(2), 3 * n_real)
    _, rmse_Epa, _ = _err((out["E"] - targets["E"]) / n_atoms, ones, ones.shape[1])
    m = {"energy_rmse_eV": rmse_E, "energy_mae_eV": mae_E, "energy_per_atom_rmse_eV": rmse_Epa,
         "force_rmse_eV_A": rmse_F, "force_mae_eV_A": mae_F, "err_E": err_E, "err_F": err_F}
    if "atom_E" in targets:
        err_A, rmse_A, _ = _err(out["atom_E"] - targets["atom_E"], batch.mask, n_real)
        m.update(atom_energy_rmse_eV=rmse_A, err_A=err_A)
    return m
