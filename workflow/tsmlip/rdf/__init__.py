"""Radial distribution function of the liquid: MD with any model, g(r), and errors between curves.

Paper section 3.2 / Fig. 3C: every model (teacher, students, controls, Born-Again) runs the same NVT
Langevin MD of the liquid (liquid aluminum at 1200 K for the paper's and the default data; the element is
``rdf.element`` or the model's single element, the density ``rdf.density_g_cm3`` or ASE's reference solid
density times ``rdf.liquid_density_ratio``, see :func:`resolve_liquid`); the RDF error of a model is the total absolute
difference of its g(r) from the teacher's,

    error = sum_i |g_model(r_i) - g_teacher(r_i)| * dr      (Angstrom),

over a fixed grid of bin centres r_i. With the embedded EMT data the reference potential itself can run
the same MD, so the same error is also taken against the reference's g(r).

Units: distances Angstrom, energies eV, time fs, temperature K, density g/cm^3. The initial structure
(fcc at the configured liquid density, rattled) and all random numbers (velocities, Langevin noise)
come from ``seed``, so every model starts from the identical state and differences are the potential's.

The MD itself (systems, engines, Langevin, pair finders, hippynn's kernels) is :mod:`tsmlip.core.md`'s, the same
layer that times the models: ``rdf.engine`` picks the ``ase``, ``torch`` or ``lammps`` engine for the models (the
reference potential always runs on ``ase``), and every ``rdf_md.json`` records the engine, pair finder and
kernels used. This package keeps the liquid's stages and checks (blow-up, collapse, melt) and ``rdf-md``
(:mod:`.liquid`), g(r), peaks and errors (:mod:`.gr`), and ``rdf-error`` with the comparison with experiment
(:mod:`.error`); the names below are its public ones.

Sub-commands: ``tsmlip rdf-md`` (MD + g(r) of one model or of the reference), ``tsmlip rdf-md-stack`` (the
liquids of many models of one architecture in one process, :mod:`.stacked`, ``rdf.stack``) and ``tsmlip rdf-error``.
"""
from ..core.md.system import initial_liquid_cell, number_density
from .error import (ERROR_DEFINITION, EXPERIMENT_CITATION, EXPERIMENT_DATA, EXPERIMENT_ERROR_DEFINITION,
                    compare_with_experiment, experimental_curves, main_error, read_experiment, teacher_mean_curve)
from .gr import (RdfCutoffError, cell_heights, check_cutoff, first_peak, mic_distances, r_grid, rdf_error,
                 rdf_of_frames, read_curve, write_curve)
from .liquid import (Liquid, LiquidRun, main_md, melt_indicator, nearest_neighbour_distance, reference_calculator,
                     resolve_liquid, resolve_liquid_system, run_liquid_md)
