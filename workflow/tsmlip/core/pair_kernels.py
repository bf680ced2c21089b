"""The fast engine's pair terms as fused CPU loops (``pair_kernels.cpp``), torch operators ``torch.ops.tsmlip.*``
built with torch's C++ extension loader on first use (a C++ compiler and ninja; the build is cached per source
version in torch's extension folder, ``TORCH_EXTENSIONS_DIR``) and used by
:class:`tsmlip.core.hipnn_stack.StackedHipnn` on the CPU and by the exported model (:mod:`.export`: its compute
calls ``pair_geometry``, ``sens_env_forward`` and ``forces_virial``, its compute_half their half-list forms
``pair_geometry_half``, ``sens_env_half`` and ``forces_virial_half``; LAMMPS loads the same source built by
``make lammps`` as ``lammps/build/tsmlip_ops.so``).

The loops compute what the torch path of :mod:`.hipnn_stack` computes (the same float32 arithmetic, one pass over
the pairs per stage instead of one per torch operation); ``tests/test_fast_engine.py`` holds both paths equal to
hippynn. Where the extension cannot be built, ``auto`` falls back to the torch path and says so once in the log.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("pair_kernels.cpp")
#: training.pair_kernels / rdf MD: auto (the loops on the CPU when they build, else torch) | torch | cpp
CHOICES = ("auto", "torch", "cpp")

#: the operators' names in torch.ops.tsmlip (registered by pair_kernels.cpp's TORCH_LIBRARY)
OPS = ("sens_env_forward", "sens_env_backward", "forces_forward", "forces_backward", "forces_virial",
       "pair_geometry", "pair_geometry_half", "sens_env_half", "forces_virial_half")

_ext = None
_error: str | None = None


class PairKernelsUnavailable(RuntimeError):
    """``cpp`` was asked for and the extension could not be built (the message says why)."""


def registered() -> bool:
    """Whether this process has the operators already (this module's build, or LAMMPS's tsmlip_ops.so loaded by
    pair_style tsmlip in the same process): a second copy may not be registered."""
    try:
        return all(hasattr(torch.ops.tsmlip, name) for name in OPS)
    except (AttributeError, RuntimeError):
        return False


def _build():
    global _ext, _error
    if _ext is not None or _error is not None:
        return _ext
    try:
        if not registered():
            from torch.utils.cpp_extension import load

            tag = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:10]
            load(name=f"tsmlip_pair_kernels_{tag}", sources=[str(SOURCE)], extra_cflags=["-O3"],
                 is_python_module=False, verbose=False)
        _ext = torch.ops.tsmlip
    except Exception as e:  # no compiler, no ninja, a read-only cache folder, ...
        _error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        print(f"[pair kernels] the fused CPU loops could not be built ({_error}); using the torch path",
              file=sys.stderr)
    return _ext


def use_cpp(choice: str, device: torch.device | str) -> bool:
    """Whether the fused loops run for ``choice`` (:data:`CHOICES`) on ``device``: never on a GPU (the torch path
    runs there), always for ``cpp`` (:class:`PairKernelsUnavailable` if they cannot be built), where they build
    for ``auto``."""
    if choice not in CHOICES:
        raise ValueError(f"pair kernels {choice!r}: one of {', '.join(CHOICES)}")
    if choice == "torch" or torch.device(device).type != "cpu":
        return False
    if _build() is None:
        if choice == "cpp":
            raise PairKernelsUnavailable(f"the fused pair loops could not be built: {_error}")
        return False
    return True


class SensitivitiesEnvironment(torch.autograd.Function):
    """(env [R, 4, nu], s [P, nu], ds [P, nu]) from each model's inverse centres and squared widths [M, nu] and the
    pair geometry; its backward takes the gradients of all three (s and ds also feed the pair forces)."""

    @staticmethod
    def forward(ctx, inv_mu, sig2, dist, unit, model, row, n_rows: int, cutoff: float):
        keep = any(ctx.needs_input_grad[:2])  # g and the geometry only where a backward into mu, sigma follows
        env, s, ds, g, geo = _ext.sens_env_forward(dist, unit, inv_mu.contiguous(), sig2.contiguous(), model, row,
                                                   int(n_rows), float(cutoff), keep)
        ctx.save_for_backward(inv_mu, sig2, g, geo, unit, model, row)  # g and the geometry: no recomputation
        ctx.n_rows = int(n_rows)
        return env, s, ds

    @staticmethod
    def backward(ctx, grad_env, grad_s, grad_ds):
        inv_mu, sig2, g, geo, unit, model, row = ctx.saved_tensors
        zeros = None
        if grad_s is None or grad_ds is None:
            zeros = torch.zeros(g.shape[0], inv_mu.shape[1], dtype=g.dtype)
        if grad_env is None:  # every row is read by the loop: a full zero gradient, not a placeholder
            grad_env = torch.zeros(ctx.n_rows, 4, inv_mu.shape[1], dtype=g.dtype)
        grad_env = grad_env.contiguous()
        g_inv_mu, g_sig2 = _ext.sens_env_backward(grad_env, zeros if grad_s is None else grad_s.contiguous(),
                                                  zeros if grad_ds is None else grad_ds.contiguous(), g, geo, unit,
                                                  inv_mu.contiguous(), sig2.contiguous(), model, row)
        return g_inv_mu, g_sig2, None, None, None, None, None, None


class PairForces(torch.autograd.Function):
    """Forces [n_atoms, 3] from dE/d(env) per row ``g_rows`` [R, 4, nu] and the pairs' s, ds [P, nu]."""

    @staticmethod
    def forward(ctx, g_rows, s, ds, dist, unit, row, first, second, n_atoms: int):
        g_rows = g_rows.contiguous()
        F, dE_ds = _ext.forces_forward(g_rows, s, ds, dist, unit, row, first, second, int(n_atoms))
        ctx.save_for_backward(g_rows, s, ds, dE_ds, dist, unit, row, first, second)
        return F

    @staticmethod
    def backward(ctx, grad_F):
        g_rows, s, ds, dE_ds, dist, unit, row, first, second = ctx.saved_tensors
        grad_rows, grad_s, grad_ds = _ext.forces_backward(grad_F.contiguous(), g_rows, s, ds, dE_ds, dist, unit,
                                                          row, first, second)
        return grad_rows, grad_s, grad_ds, None, None, None, None, None, None


def main() -> int:
    """``python -m tsmlip.core.pair_kernels``: build the loops now (``make`` does, so that the workflow's jobs only
    load them) and say whether they work; exit 0 either way (the torch path remains)."""
    import time

    t = time.time()
    ok = use_cpp("auto", "cpu")
    print(f"pair kernels: {'built and loaded' if ok else 'unavailable, the torch path runs'} "
          f"({time.time() - t:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
