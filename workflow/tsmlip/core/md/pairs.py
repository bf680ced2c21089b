"""Pair finders with a Verlet skin for the all-torch MD engine, as hippynn graph nodes.

hippynn (0.1.3) offers ``KDTreePairsMemory`` (scipy's KD-tree: on the CPU, orthorhombic cells only, cut-off
below half the shortest side) and ``PeriodicPairIndexerMemory`` (pure torch, so it runs on the GPU, but it
compares all pairs of atoms: memory and time grow as N^2). Their "has any atom moved more than skin/2"
test sums the squared displacements over *all atoms* (``.sum(1)`` on a (1, N, 3) tensor), so pairs are
rebuilt nearly every step in large systems. The classes here

- fix that test (largest displacement of any single atom), and
- add ``cell_list``: a linked-cell search written in torch (runs on the model's device, memory linear in N,
  any triclinic cell of any size).

:data:`PAIR_FINDERS` maps the config names (``md.pair_finder``) to node classes.
Distances in Angstrom.
"""
from __future__ import annotations

import math

import torch
from hippynn.graphs.nodes import pairs as pair_nodes
from hippynn.layers.pairs import dispatch as dispatch_layers
from hippynn.layers.pairs import periodic as periodic_layers

#: candidate pairs examined at once by the cell-list search (bounds its transient memory)
CELL_LIST_CHUNK = 1 << 22

def cell_list_pairs(cutoff: float, coords: torch.Tensor, cell: torch.Tensor, chunk: int = CELL_LIST_CHUNK,
                    bins_per_cutoff: int = 1):
    """All ordered pairs (i, j, image) with ``|r_i - r_j + image @ cell| < cutoff``, i != j or image != 0.

    Linked cells in fractional coordinates: along each lattice direction the cell is cut into
    ``max(1, floor(height / cutoff))`` bins (height = distance between opposite faces) and each atom is
    compared with the atoms of the bins within ``ceil(cutoff / bin height)`` (1 unless the cell is thinner
    than the cut-off) in every direction, periodic images included. Each (bin, image) is visited once,
    so every pair comes out exactly once, in any triclinic cell, however small.

    :param coords: (n_atoms, 3) positions (any, not necessarily wrapped into the cell)
    :param cell: (3, 3) lattice vectors as rows
    :param chunk: candidate pairs examined at once (bounds the transient memory)
    :return: ``pair_first, pair_second, offsets`` (int64; offsets (n_pairs, 3) in lattice vectors), on the
        device of ``coords``, in hippynn's convention ``r[first] - r[second] + offsets @ cell``.
    """
    with torch.no_grad():
        dev = coords.device
        inv_cell = torch.linalg.inv(cell)
        frac = coords @ inv_cell
        wrap = torch.floor(frac)
        frac = frac - wrap
        heights = (1.0 / torch.linalg.norm(inv_cell, dim=0)).tolist()  # distances between opposite faces
        n_bins_list = [max(1, int(h * bins_per_cutoff // cutoff)) for h in heights]
        reach = [int(math.ceil(cutoff * n / h)) for n, h in zip(n_bins_list, heights)]
        nx, ny, nz = n_bins_list
        n_bins = torch.tensor(n_bins_list, device=dev)
        wrapped = frac @ cell
        bin3 = torch.minimum((frac * n_bins).to(torch.int64), n_bins - 1)
        lin = (bin3[:, 0] * ny + bin3[:, 1]) * nz + bin3[:, 2]
        n_atoms = coords.shape[0]

        # padded table: the atoms of each bin
        order = torch.argsort(lin)
        lin_sorted = lin[order]
        counts = torch.bincount(lin, minlength=nx * ny * nz)
        starts = torch.cumsum(counts, 0) - counts
        width = int(counts.max())
        rank = torch.arange(n_atoms, device=dev) - starts[lin_sorted]
        table = torch.full((nx * ny * nz, width), -1, dtype=torch.int64, device=dev)
        table[lin_sorted, rank] = order

        shifts = torch.cartesian_prod(*(torch.arange(-k, k + 1, device=dev) for k in reach))
        cutoff2 = cutoff * cutoff
        step = max(1, chunk // (shifts.shape[0] * width))
        firsts, seconds, images = [], [], []
        for start in range(0, n_atoms, step):
            idx = torch.arange(start, min(start + step, n_atoms), device=dev)
            nbr = bin3[idx].unsqueeze(1) + shifts.unsqueeze(0)  # (c, n_shifts, 3)
            image = torch.div(nbr, n_bins, rounding_mode="floor")  # which periodic image of the cell
            nbr = nbr - image * n_bins
            cand = table[(nbr[..., 0] * ny + nbr[..., 1]) * nz + nbr[..., 2]]  # (c, n_shifts, width)
            j = cand.clamp(min=0)
            shift_cart = (image.to(cell.dtype) @ cell).unsqueeze(2)  # (c, n_shifts, 1, 3)
            diff = wrapped[idx].unsqueeze(1).unsqueeze(1) - wrapped[j] - shift_cart
            i = idx.view(-1, 1, 1).expand_as(cand)
            self_pair = (j == i) & (image == 0).all(-1).unsqueeze(-1)
            keep = (cand >= 0) & ~self_pair & ((diff * diff).sum(-1) < cutoff2)
            firsts.append(i[keep])
            seconds.append(j[keep])
            images.append(image.unsqueeze(2).expand(*cand.shape, 3)[keep])
        pf, ps, image = torch.cat(firsts), torch.cat(seconds), torch.cat(images)
        # offsets of the wrapped image -> offsets of the positions as given
        offsets = -image - (wrap[pf] - wrap[ps]).to(torch.int64)
    return pf, ps, offsets


_VESIN_LISTS: dict = {}


def vesin_pairs(cutoff: float, coords: torch.Tensor, cell: torch.Tensor):
    """All ordered pairs within ``cutoff`` from vesin-torch's ``NeighborList`` (a maintained C++ cell list,
    CPU and CUDA; float64 internally), in the convention of :func:`cell_list_pairs`. CPU threads: torch's."""
    from vesin_torch import NeighborList

    threads = torch.get_num_threads() if coords.device.type == "cpu" else 0
    key = (float(cutoff), threads)
    nl = _VESIN_LISTS.get(key)
    if nl is None:
        nl = _VESIN_LISTS[key] = NeighborList(cutoff=float(cutoff), full_list=True, n_threads=threads)
    with torch.no_grad():
        i, j, shifts = nl.compute(points=coords.detach(), box=cell.detach().to(coords.dtype), periodic=True,
                                  quantities="ijS")
    # vesin: r_j - r_i + S @ box; hippynn: r[first] - r[second] + offsets @ cell
    return i.to(torch.int64), j.to(torch.int64), -shifts.to(torch.int64)


def _moved_beyond_skin(memory, coordinates, cells) -> bool:
    """hippynn's PairMemory test with the displacement taken per atom."""
    if coordinates.shape[0] != 1 or memory.positions is None or memory.skin == 0:
        return True
    if memory.positions.shape != coordinates.shape or bool((memory.cells != cells).any()):
        return True
    moved2 = ((memory.positions - coordinates) ** 2).sum(-1).max()
    return bool(moved2 > (memory.skin / 2) ** 2)


class CellListNeighbors(dispatch_layers._DispatchNeighbors):
    """System-by-system linked-cell pair search (torch, on the input's device)."""

    def compute_one(self, positions, cell):
        return cell_list_pairs(self.dist_hard_max, positions, cell)


class VesinNeighbors(dispatch_layers._DispatchNeighbors):
    """System-by-system pairs from vesin-torch (:func:`vesin_pairs`)."""

    def compute_one(self, positions, cell):
        return vesin_pairs(self.dist_hard_max, positions, cell)


class KDTreeOrCellListNeighbors(dispatch_layers._DispatchNeighbors):
    """scipy's KD-tree (hippynn) where it applies (orthorhombic cell, cut-off below half of every side),
    else the linked-cell search."""

    def compute_one(self, positions, cell):
        gram = cell @ cell.T
        orthorhombic = not bool(torch.count_nonzero(gram - torch.diag(torch.diag(gram))))
        if orthorhombic and bool((self.dist_hard_max < torch.sqrt(torch.diag(gram)) / 2).all()):
            return dispatch_layers.neighbor_list_kdtree(self.dist_hard_max, positions, cell)
        return cell_list_pairs(self.dist_hard_max, positions, cell)


class CellListPairsMemoryModule(dispatch_layers.KDTreePairsMemory):
    _pair_indexer_class = CellListNeighbors
    recalculation_needed = _moved_beyond_skin


class KDTreePairsMemoryModule(dispatch_layers.KDTreePairsMemory):
    _pair_indexer_class = KDTreeOrCellListNeighbors
    recalculation_needed = _moved_beyond_skin


class VesinPairsMemoryModule(dispatch_layers.KDTreePairsMemory):
    _pair_indexer_class = VesinNeighbors
    recalculation_needed = _moved_beyond_skin


class PeriodicPairsMemoryModule(periodic_layers.PeriodicPairIndexerMemory):
    recalculation_needed = _moved_beyond_skin


class CellListPairsMemory(pair_nodes.KDTreePairsMemory):
    """Graph node: linked-cell pairs (torch, on the device) with a Verlet skin."""

    _auto_module_class = CellListPairsMemoryModule


class KDTreePairs(pair_nodes.KDTreePairsMemory):
    """Graph node: hippynn's KD-tree pairs (scipy, CPU; linked cells where the KD-tree does not apply)
    with a Verlet skin (per-atom test)."""

    _auto_module_class = KDTreePairsMemoryModule


class VesinPairs(pair_nodes.KDTreePairsMemory):
    """Graph node: vesin-torch's cell list (CPU or CUDA, any cell) with a Verlet skin (per-atom test)."""

    _auto_module_class = VesinPairsMemoryModule


class PeriodicPairs(pair_nodes.PeriodicPairIndexerMemory):
    """Graph node: hippynn's all-pairs torch search (on the device, O(N^2)) with a Verlet skin."""

    _auto_module_class = PeriodicPairsMemoryModule


#: ``md.pair_finder`` names -> node classes (each takes ``dist_hard_max`` and ``skin``)
PAIR_FINDERS = {"vesin": VesinPairs, "cell_list": CellListPairsMemory, "kdtree": KDTreePairs,
                "periodic": PeriodicPairs}


def pair_finder_class(name: str):
    try:
        return PAIR_FINDERS[name]
    except KeyError:
        raise ValueError(f"unknown pair finder {name!r}; one of {', '.join(PAIR_FINDERS)}") from None
