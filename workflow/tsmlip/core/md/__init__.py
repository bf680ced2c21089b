"""The MD engines: the ASE calculator's and the all-torch velocity Verlet / Langevin engines (:mod:`.engines`),
the deployed engines LAMMPS and TorchSim (:mod:`.deployed`), Verlet-list pair finders (:mod:`.pairs`), the crystal
systems (:mod:`.system`), the device barrier and energies they share (:mod:`.common`) and the hardware they report
(:mod:`.hardware`). The steps that time them are :mod:`tsmlip.md` and :mod:`tsmlip.rdf` (docs/md.md)."""
