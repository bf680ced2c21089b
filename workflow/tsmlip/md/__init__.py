"""The MD layer of the workflow: MD cost of a trained model (paper sec. 3.1 and 3.4, Figs 2 and 5) and the
engines, systems and Langevin integrators that the RDF liquid (:mod:`tsmlip.rdf`) runs on too.

- :mod:`.timing`: wall time per MD step per atom (NVE velocity Verlet, ASE or all-torch engine),
- :mod:`.probe`: the most atoms whose MD step fits in the device's memory, and memory per atom,
- :mod:`.engines`, :mod:`.pairs`, :mod:`.system`, :mod:`.hardware`: the pieces (docs/md.md).
"""
