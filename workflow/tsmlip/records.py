"""The JSON files the steps write, one dataclass each (docs/outputs.md): the writer builds the record and writes
:meth:`Record.to_json`, the readers take their keys from the record (:meth:`Record.keys`, :meth:`Record.select`).

A field made with :func:`part` holds a nested record whose keys are written in its place (left out when it is
None); a field made with :func:`optional` is left out of the file when it is None. Every other field is
written, None as null.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields


def part(cls, optional: bool = False):
    """A field holding a ``cls`` record whose keys are written in its place; an ``optional`` part is None by
    default, and then left out."""
    return field(default=None, metadata={"part": cls}) if optional else field(metadata={"part": cls})


def optional():
    """A field left out of the file when it is None."""
    return field(default=None, metadata={"optional": True})


def _plain(value):
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Record:
    """Base of the records: the file's JSON object and the keys it can have."""

    def to_json(self) -> dict:
        """The file's JSON object: ``dataclasses.asdict`` with parts spliced in and empty optional fields left out."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if "part" in f.metadata:
                if value is not None:
                    out.update(value.to_json())
            elif value is not None or not f.metadata.get("optional"):
                out[f.name] = _plain(value)
        return out

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every key the file can have, in the file's order (a part's keys in its place)."""
        out: list[str] = []
        for f in fields(cls):
            out += f.metadata["part"].keys() if "part" in f.metadata else [f.name]
        return tuple(out)

    @classmethod
    def select(cls, *names: str) -> tuple[str, ...]:
        """``names``, after checking that each is a key of the file (a reader's columns)."""
        unknown = [n for n in names if n not in cls.keys()]
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
        return names


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
    us_per_atom_step: float
    us_per_atom_step_all: list[float]
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

    @classmethod
    def of_rdf_md(cls, info: dict) -> LiquidOutcome:
        """The part of a read ``rdf_md.json`` (``stable`` true, the other optional keys null where missing)."""
        return cls(first_peak_r_A=info.get("first_peak_r_A"), first_peak_g=info.get("first_peak_g"),
                   n_frames=int(info["n_frames"]), device=info["device"], temperature_K=float(info["temperature_K"]),
                   n_atoms=int(info["n_atoms"]), stable=bool(info.get("stable", True)), melted=info.get("melted"),
                   clean=info.get("clean"), melt_indicator=info.get("melt_indicator"),
                   min_pair_distance_A=info.get("min_pair_distance_A"))


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


#: the record of every output file (noise_floor.json is an rdf_error.json of the noise-seed run)
RECORDS = {
    "metrics.json": TrainMetrics,
    "md_timing_<engine>.json": MdTiming,
    "max_atoms.json": MaxAtoms,
    "foundation/cost.json": CalculatorCost,
    "rdf_md.json": RdfMd,
    "rdf_error.json": RdfError,
    "noise_floor.json": RdfError,
}
