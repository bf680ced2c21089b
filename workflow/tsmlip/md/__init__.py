"""The MD cost steps (paper sec. 3.1 and 3.4, Figs 2 and 5) on the engines of :mod:`tsmlip.core.md`:

- :mod:`.timing`: wall time per MD step per atom (``tsmlip md-timing``),
- :mod:`.probe`: the most atoms whose MD step fits in the device's memory, and memory per atom (``tsmlip max-atoms``),
- :mod:`.calculator_cost`: the teacher calculator's own MD cost (``tsmlip calculator-cost``),
- :mod:`.classical_cost`: the classical anchor's MD cost (``tsmlip classical-cost``).
"""
