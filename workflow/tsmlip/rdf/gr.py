"""g(r) of periodic frames: the minimum-image distances, the histogram, its first peak, the L1 error between
two curves and the g(r) CSV files. Distances in Angstrom."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..io_utils import atomic_write_text


class RdfCutoffError(ValueError):
    """The g(r) cut-off does not fit in the periodic cell (r_max must stay below half its height)."""



def cell_heights(cell) -> np.ndarray:
    """Distances between opposite faces of a (possibly triclinic) cell, rows = lattice vectors (A)."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
                     for i in range(3)])


def check_cutoff(cell, r_max: float) -> None:
    """Raise :class:`RdfCutoffError` unless ``r_max`` < half the shortest cell height, the range in which
    minimum-image distances are unique."""
    half = 0.5 * float(cell_heights(cell).min())
    if not r_max < half:
        raise RdfCutoffError(
            f"rdf r_max_A = {r_max:g} A is not below half the shortest cell height ({half:.3f} A); "
            f"lower rdf.r_max_A or enlarge rdf.supercell")


def r_grid(r_max: float, n_bins: int) -> np.ndarray:
    """Bin centres (A) of the fixed grid: n_bins bins of width r_max/n_bins from 0 to r_max."""
    dr = r_max / n_bins
    return (np.arange(n_bins) + 0.5) * dr


def mic_distances(atoms, chunk: int = 256) -> np.ndarray:
    """(N, N) minimum-image distances (A) from rounded fractional coordinate differences.

    Exact for every distance below half the shortest cell height, in any (triclinic) cell: such a
    shortest image vector has all fractional components inside (-1/2, 1/2), so rounding finds it, and
    no other image of the pair is that close. Longer distances can come out too long, never too short,
    which is harmless below that cut-off (:func:`check_cutoff`)."""
    frac = atoms.get_scaled_positions(wrap=False)
    cell = np.asarray(atoms.cell, dtype=float)
    out = np.empty((len(frac), len(frac)))
    for i in range(0, len(frac), chunk):
        d = frac[i:i + chunk, None, :] - frac[None, :, :]
        d -= np.round(d)
        out[i:i + chunk] = np.linalg.norm(d @ cell, axis=-1)
    return out


def rdf_of_frames(frames, r_max: float, n_bins: int, neighbor_list: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """g(r) averaged over ``frames`` (periodic ASE Atoms, any cell shape): pair counts in each shell of
    width r_max/n_bins divided by the ideal-gas count N * (N/V) * shell volume. Binning and
    normalisation are ASE's ``get_rdf``; the pair distances come from :func:`mic_distances` (exact below
    the checked cut-off), or, with ``neighbor_list``, from ASE's own neighbour list (slower; the tests
    check that both agree). Returns (r bin centres in A, g); g is nan without frames."""
    from ase.geometry.rdf import get_rdf

    frames = list(frames)
    if not frames:
        return r_grid(r_max, n_bins), np.full(n_bins, np.nan)
    gs = []
    for atoms in frames:
        check_cutoff(atoms.cell, r_max)
        dm = None if neighbor_list else mic_distances(atoms)
        gs.append(get_rdf(atoms, r_max, n_bins, distance_matrix=dm, no_dists=True))
    return r_grid(r_max, n_bins), np.mean(gs, axis=0).astype(float)


def first_peak(r: np.ndarray, g: np.ndarray, halfwidth_A: float = 0.0) -> tuple[float, float]:
    """Position (A) and height of the first peak of g(r).

    The peak bin is the highest between the first rise of g above 1 and its next fall below 1; a
    least-squares parabola through the bins within ``halfwidth_A`` of it (at least the two neighbours)
    gives the vertex, which averages out bin noise. (nan, nan) for a curve that never exceeds 1 or is
    not finite."""
    r, g = np.asarray(r, float), np.asarray(g, float)
    if not np.all(np.isfinite(g)) or not np.any(g > 1.0):
        return math.nan, math.nan
    i0 = int(np.argmax(g > 1.0))
    below = np.nonzero(g[i0:] < 1.0)[0]
    i1 = i0 + int(below[0]) if below.size else len(g)
    i = i0 + int(np.argmax(g[i0:i1]))
    dr = float(r[1] - r[0])
    k = max(1, int(round(halfwidth_A / dr)))
    lo, hi = max(0, i - k), min(len(g), i + k + 1)
    if hi - lo >= 3:
        c2, c1, c0 = np.polyfit(r[lo:hi] - r[i], g[lo:hi], 2)
        if c2 < 0:
            x = -c1 / (2 * c2)
            if abs(x) <= k * dr:
                return float(r[i] + x), float(c0 + c1 * x + c2 * x * x)
    return float(r[i]), float(g[i])


def rdf_error(r: np.ndarray, g: np.ndarray, g_ref: np.ndarray) -> float:
    """Total absolute error sum_i |g(r_i) - g_ref(r_i)| * dr (A) on a uniform grid of bin centres ``r``."""
    r, g, g_ref = (np.asarray(x, float) for x in (r, g, g_ref))
    if g.shape != g_ref.shape or g.shape != r.shape:
        raise ValueError(f"g(r) curves of different lengths ({g.size} vs {g_ref.size} bins)")
    dr = float(r[1] - r[0]) if r.size > 1 else 2.0 * float(r[0])
    return float(np.sum(np.abs(g - g_ref)) * dr)



def write_curve(path: str | Path, r: np.ndarray, g: np.ndarray) -> None:
    """g(r) as CSV with columns r_A, g (atomic write: a killed job leaves no partial file)."""
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([r, g]), delimiter=",", header="r_A,g", comments="", fmt="%.8g")
    atomic_write_text(path, buf.getvalue())


def read_curve(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(r_A, g) arrays from a CSV written by :func:`write_curve`."""
    data = np.genfromtxt(path, delimiter=",", names=True)
    if data.dtype.names != ("r_A", "g"):
        raise ValueError(f"{path}: expected columns r_A,g, found {data.dtype.names}")
    return np.atleast_1d(data["r_A"]).astype(float), np.atleast_1d(data["g"]).astype(float)
