"""Batches of a hippynn database without its per-sample sparse indexing.

hippynn's ``Database.make_generator`` wraps each split in a ``TensorDataset`` and a ``DataLoader``: every
sample of a batch indexes every array one by one. For the pre-computed pair cache, a sparse tensor holding
the whole split's pairs, one sample's index is a scan of *all* the split's pairs (``eq`` + ``nonzero``), and
the batch is then stacked and sorted again (``coalesce``): about a fifth of a training step on a CPU
(docs/runs/2026-12-01-training-cost.md). :class:`SplitBatches` finds each configuration's pairs once (the
cache is coalesced, so they are one contiguous, sorted run), and a batch is a concatenation of those runs,
already in coalesced order. Dense arrays are indexed once per batch. The batches hold exactly the tensors,
values and order ``make_generator`` yields (``tests/test_train.py`` compares them).
"""
from __future__ import annotations

import torch


class SplitBatches:
    """The arrays of one split of a hippynn ``Database`` (``db.var_list`` order), ready to batch."""

    def __init__(self, db, split_name: str):
        arrays = db.splits[split_name]
        self.names = list(db.var_list)
        self.tensors = [arrays[k] for k in self.names]
        self.n = int(self.tensors[0].shape[0])
        self.sparse = {}
        for i, t in enumerate(self.tensors):
            if t.layout == torch.sparse_coo:
                t = t.coalesce()
                index, values = t.indices(), t.values()
                counts = torch.bincount(index[0], minlength=self.n)
                starts = torch.cumsum(counts, 0) - counts
                self.sparse[i] = (index[1:], values, starts, counts, tuple(t.shape[1:]))

    def batch(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """The tensors of the configurations ``idx`` (in that order), as ``make_generator`` would yield them."""
        out = []
        for i, t in enumerate(self.tensors):
            if i not in self.sparse:
                out.append(t[idx])
                continue
            rest, values, starts, counts, shape = self.sparse[i]
            c = counts[idx]
            # positions of each selected configuration's run of entries, concatenated in batch order
            first = torch.repeat_interleave(starts[idx] - torch.cumsum(c, 0) + c, c)
            pos = first + torch.arange(int(c.sum()))
            sample = torch.repeat_interleave(torch.arange(len(idx)), c)
            index = torch.cat([sample.unsqueeze(0), rest[:, pos]], 0)
            out.append(torch.sparse_coo_tensor(index, values[pos], size=(len(idx), *shape), is_coalesced=True))
        return out

    def batches(self, batch_size: int, shuffle: bool = False, subsample: float | None = None):
        """Batches of ``batch_size`` configurations; shuffled with torch's global generator when ``shuffle``;
        a random ``subsample`` fraction (at least one configuration) when given."""
        order = torch.randperm(self.n) if shuffle else torch.arange(self.n)
        if subsample is not None and subsample < 1:
            order = torch.argsort(torch.rand(self.n))[:max(1, int(self.n * subsample))]
        for s in range(0, len(order), batch_size):
            yield self.batch(order[s:s + batch_size])
