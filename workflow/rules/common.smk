# Shared helpers (config validation, model ids, paths) for the rule files of each stage.
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))  # the tsmlip package, also when not installed

from tsmlip import cluster as tscluster
from tsmlip import io_utils as tsio
from tsmlip import config as tsconfig
from tsmlip import ids as tsids
from tsmlip import model_ids as tsmodel_ids
from tsmlip import figures as tsfigures
from tsmlip import kinds as tskinds
from tsmlip import stacks as tsstacks
from tsmlip.stamps import code_stamp
from tsmlip import run_lock as tsrunlock
from tsmlip import provenance as tsprov
from tsmlip import settings as tssettings

# the one check of the configuration (config/config.yaml and any --configfile overlays merged over it): the
# package's schema and the cross-field checks it cannot express, each error naming the key
# lists whose order means nothing (seeds) sorted: a reorder reruns nothing
tsconfig.canonical(tsconfig.validate(config))
# each config file once more, refusing a key given twice (Snakemake's reading keeps the last silently), and a
# results_dir that names a file
tsconfig.check_config_files(workflow.configfiles)
tsconfig.check_results_dir(config)

RESULTS = tsconfig.results_dir(config)
# a results folder on a full disk: one line now, not a traceback from the first stamp written while planning
tsio.check_free_space(RESULTS, "config key 'results_dir'")
# The params of each rule hold `code=code_stamp("<step>")`, the sha256 of the code its `tsmlip <step>` runs
# (the step's module and what it imports within the package, with the package data it reads; tsmlip.stamps).
# After a change to that code Snakemake's params rerun trigger reruns the job, and then what reads its
# outputs: a change to the figures reruns the figures only, a change to the training loop retrains.
KINDS_RE = "|".join(tskinds.KINDS)
ARCH_RE = r"w\d+-s\d+-l\d+"


def res(*parts):
    """A path under results_dir."""
    return str(RESULTS.joinpath(*parts))


#: the per-model path of every per-model rule (its model id, as wildcards)
MODEL_ID = "{kind}/{arch}/seed{seed}"


def model_dir(model_id, folder="models"):
    """<folder>/<model id> under results_dir; ``model_id`` a ModelId, or MODEL_ID in a per-model rule."""
    return res(folder, str(model_id))


def model_file(model_id, name, folder="models"):
    return os.path.join(model_dir(model_id, folder), name)


def step_config(step, *extra, **sections):
    """The one config argument of `tsmlip <step>` (`--config-json {params.cfg:q}`): the step's settings
    (tsmlip.settings.step_settings: the config under each dotted key the step reads, tsmlip.cli.STEPS, and each of
    ``extra``, what a mode of the step reads besides, e.g. "data.source" for the reference liquid; a section passed by
    name replaces the config's, e.g. the budget check's training), as JSON. In a rule's params, so a change of exactly
    what the step reads reruns it; the planned stamps, the training checkpoints and the provenance records hash the
    same settings."""
    return tssettings.settings_json(step, config, *extra, **sections)


#: one software environment for every rule (used with `--sdm conda`)
CONDA_ENV = "../../envs/tsmlip.yaml"

DATASET = res("data", "dataset.npz")
#: a calculator as the teacher (foundation.calculator, docs/foundation.md): the data stage writes the geometries'
#: dataset under data/source/, and `label_calculator` relabels it into DATASET (E, F, ref_atom_E: the calculator's)
FOUNDATION = config["foundation"]["calculator"] is not None
SOURCE_DATASET = res("data", "source", "dataset.npz") if FOUNDATION else DATASET
SPLIT = res("data", "split.npz")
LABELS = res("labels", "atom_energies.npz")
#: beyond the paper (docs/beyond.md): the reference's own atom energies (student_oracle) and the ground truth
#: plus teacher-generated configurations with their split and labels (student_synthetic)
ORACLE_LABELS = res("labels", "oracle_atom_energies.npz")
#: the calculator's atom energies: the students' labels (foundation.students_learn: calculator), or, for the
#: two-step distillation (students_learn: teacher: the HIPNN teacher learns the calculator's E/F and labels the
#: students), a file of their own
CALCULATOR_LABELS = (
    LABELS if config["foundation"]["students_learn"] == "calculator" else res("labels", "calculator_atom_energies.npz")
)
#: the calculator's own MD cost (md.smk: calculator_cost), read by the claims' headline table
FOUNDATION_COST = res("foundation", "cost.json")
FOUNDATION_COST_ON = FOUNDATION and config["foundation"]["cost"]["enabled"]
#: whether the HIPNN teacher(s) write LABELS (label.smk, label_atom_energies); always, unless the calculator labels them
HIPNN_LABELS = not FOUNDATION or CALCULATOR_LABELS != LABELS
SYNTHETIC = {name: res("synthetic", f"{name}.npz") for name in ("dataset", "split", "atom_energies")}


def data_sources(wildcards):
    """The sha256 of each source data file (data.source ani_h5 / extxyz), as JSON: in the data rule's params, so
    an edit or a swap of any of them reruns it whatever the mtimes say. A params function: Snakemake reads the
    files only when it compares them with a finished job's record (or prints the job), never when it merely
    parses the workflow."""
    from tsmlip.data.io import source_checksums

    return json.dumps(source_checksums(config["data"]["source"], config["data"]["path"]), sort_keys=True)


# --- training (train.smk) ---------------------------------------------------------------------------
_GPUS = []


def _local_gpus():
    """GPUs this (planning) machine sees, from NVML, probed once and only when asked; 0 when there is no
    NVIDIA driver."""
    if not _GPUS:
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                _GPUS.append(pynvml.nvmlDeviceGetCount())
            finally:
                pynvml.nvmlShutdown()
        except Exception:
            _GPUS.append(0)
    return _GPUS[0]


def gpu_job(wildcards=None):
    """The `gpu` resource of device jobs (training, MD, RDF): 1 where this machine has a GPU, so a local
    run never puts two of them on one GPU; 0 on a CPU-only machine, where `threads` alone share the
    cores. Which rules have it: the `gpu` column of the config's resources table (rule_resources); cluster
    profiles set it to 1 for those (profiles/slurm asks SLURM for one GPU per such job). A function,
    so parsing the workflow probes no GPU."""
    return 1 if _local_gpus() > 0 else 0


def gpu_job_on(device):
    """gpu_job for a job on ``device`` (a calculator's): none on "cpu"."""
    return lambda wildcards: gpu_job() if device != "cpu" else 0


# --- scheduler resources ----------------------------------------------------------------------------
# Each job takes its resources and threads from the `resources` table of the config (config/config.yaml), the one
# place they live; a profile (profiles/) only maps them onto a batch system:
#   threads: rule_threads("<rule>")
#   resources: **rule_resources("<rule>")


def rule_resources(rule, **extra):
    """The `resources:` of ``rule`` from the table: runtime (minutes), mem_mb and, for a GPU rule, `gpu`
    (gpu_job; gpu_job_on the device a `gpu: foundation.device` row names), plus ``extra`` (e.g. md_device=1)."""
    row = tsconfig.rule_resources(config, rule)
    out = dict(runtime=row.runtime_min, mem_mb=row.mem_mb, **extra)
    if row.gpu is True:
        out["gpu"] = gpu_job
    elif row.gpu:
        out["gpu"] = gpu_job_on(row.gpu)
    return out


def rule_threads(rule):
    """The `threads:` of ``rule`` from the table (a number, or the step's own thread-count key it names)."""
    return tsconfig.rule_resources(config, rule).threads


#: the files a kind trains on, by where its atom-energy labels come from (tsmlip.kinds: labels): the data alone
#: (the teacher); the teacher's atom energies (controls read them only to report the atom-energy error, never in
#: their loss); the reference's own; the ground truth plus teacher-generated configurations (training split only)
TRAIN_INPUTS = {
    "none": dict(data=DATASET, split=SPLIT),
    "teacher": dict(data=DATASET, split=SPLIT, labels=LABELS),
    "oracle": dict(data=DATASET, split=SPLIT, labels=ORACLE_LABELS),
    "synthetic": dict(data=SYNTHETIC["dataset"], split=SYNTHETIC["split"], labels=SYNTHETIC["atom_energies"]),
}


def train_inputs(wildcards):
    return dict(TRAIN_INPUTS[tskinds.REGISTRY[wildcards.kind].labels])


#: the stacks of the fast engine (tsmlip.stacks; empty with training.engine: hippynn or training.stack: false)
STACKS = tsstacks.plan(config)
STACKS_BY_NAME = {(st.folder, st.name): st for st in STACKS}
STACK_OF = {(st.folder, str(m)): st.name for st in STACKS for m in st.model_ids}
#: the stacked liquids (rdf.stack: one rdf-md-stack job per architecture; empty with rdf.stack: false)
RDF_STACKS = {st.name: st for st in tsstacks.liquid_plan(config)}
RDF_STACK_OF = {str(m): st.name for st in RDF_STACKS.values() for m in st.model_ids}


def stack_inputs(wildcards):
    """The data and split of a stack (shared by its models) and every label file its models read."""
    st = STACKS_BY_NAME[(wildcards.folder, wildcards.stack)]
    inputs = [TRAIN_INPUTS[tskinds.REGISTRY[m.kind].labels] for m in st.model_ids]
    out = dict(data=inputs[0]["data"], split=inputs[0]["split"])
    labels = sorted({i["labels"] for i in inputs if "labels" in i})
    out.update({f"labels{k}": path for k, path in enumerate(labels)})
    return out


def stack_labels_arg(wildcards, input):
    """`--labels <model id>=<file> ...` of the stack's models that read labels."""
    st = STACKS_BY_NAME[(wildcards.folder, wildcards.stack)]
    pairs = [
        f"{m}={TRAIN_INPUTS[tskinds.REGISTRY[m.kind].labels]['labels']}"
        for m in st.model_ids
        if "labels" in TRAIN_INPUTS[tskinds.REGISTRY[m.kind].labels]
    ]
    return ("--labels " + " ".join(shlex.quote(p) for p in pairs)) if pairs else ""


def train_labels_arg(wildcards, input):
    return f"--labels {shlex.quote(input.labels)}" if "labels" in input.keys() else ""


# --- logs and benchmarks of the per-model rules (train, MD, RDF) -----------------------------------
def model_job_file(folder, step, suffix=""):
    """logs/<step>/<model id><suffix>.log, or benchmarks/.../...tsv, of a per-model job."""
    ext = {"logs": "log", "benchmarks": "tsv"}[folder]
    return res(folder, step, f"{MODEL_ID}{suffix}.{ext}")


# --- figures (aggregate.smk: the `figure` rule; `tsmlip plot <figure>`) ------------------------------
TABLES = res("tables")
#: the figures (tsmlip.figures): each one's inputs, config keys and labels in the report
FIGURES = tsfigures.FIGURES


def figure_inputs():
    """Every input a figure may read, by `tsmlip plot` option (tsmlip.figures: Figure.inputs)."""
    return {
        **{name: os.path.join(TABLES, f"{name}.csv") for name in ("models", "curves", "born_again")},
        "rdf_noise_floor": RDF_NOISE_FLOOR,  # its seed noise floor, drawn as a band on the capacity figure
        "classical": CLASSICAL_TABLE,  # the classical anchor (classical.smk), a star on the Pareto figure
    }


def figure_tables(wildcards):
    """The inputs one figure reads, by `tsmlip plot` option (the classical anchor's table where it is on)."""
    paths = figure_inputs()
    return {name: paths[name] for name in FIGURES[wildcards.figure].inputs if name != "classical" or CLASSICAL}


def figure_labels(wildcards):
    figure = FIGURES[wildcards.figure]
    return {"figure": figure.paper, "shows": figure.shows}


def figure_options(wildcards, input):
    """`--models <csv>` etc. for the figure's tables (not its provenance stamp)."""
    return " ".join(
        f"--{name.replace('_', '-')} {shlex.quote(path)}" for name, path in input.items() if name != "stamp"
    )


def figure_config(wildcards):
    """What `tsmlip plot` reads: the dpi and the figure's own keys (learning_curves: the architecture drawn)."""
    return step_config("plot", *FIGURES[wildcards.figure].reads)


# --- labels (label.smk) -----------------------------------------------------------------------------
#: the teachers that label the students: every seed (labels.teacher: mean) or the one seed named
LABEL_TEACHERS = [
    m
    for m in tsmodel_ids.teacher_ids(config)
    if config["labels"]["teacher"] == "mean" or m.seed == int(config["labels"]["teacher"])
]


def label_teachers(wildcards=None):
    return [model_file(m, "model.pt") for m in LABEL_TEACHERS]


# --- targets of `rule all` -------------------------------------------------------------------------
# Every stage's final files, computed from the configuration alone (never from what exists on disk).
MODEL_IDS = tsmodel_ids.all_model_ids(config)
#: the embedded data come from a potential that can run MD itself; external data (ANI-Al) have none
RDF_REFERENCE = tsconfig.reference_potential(config) is not None  # with a calculator, EMT is not the reference
#: the teacher calculator's own liquid (foundation.liquid; slow: GPU nodes), then the reference of error_vs_reference
CALCULATOR_LIQUID = FOUNDATION and config["foundation"]["liquid"]
#: the g(r) that error_vs_reference is taken against: EMT's (embedded data) or the teacher calculator's
REFERENCE_RDF = (
    res("foundation", "rdf.csv") if CALCULATOR_LIQUID else res("reference", "rdf.csv") if RDF_REFERENCE else None
)
#: the seed noise floor of the RDF error (rdf.smk), stated on the RDF rows of the claims table
RDF_NOISE_FLOOR = res("rdf_noise", "noise_floor.json")

#: the classical anchor (classical.smk; config classical:): its files, and its one-row table the headline, the claims
#: and the Pareto figure read
CLASSICAL = config["classical"]["enabled"]
CLASSICAL_FILES = {"errors": res("classical", "errors.json"), "rdf_error": res("classical", "rdf_error.json")}
CLASSICAL_TABLE = res("tables", "classical.csv")


def classical_files():
    """What classical_table reads: the errors, the liquid's g(r) error and the cost on each classical engine (MD cost
    only with md.enabled)."""
    if not CLASSICAL:
        return []
    timing = [res("classical", f"md_timing_{e}.json") for e in config["classical"]["engines"]]
    return [CLASSICAL_FILES["errors"], CLASSICAL_FILES["rdf_error"]] + (timing if config["md"]["enabled"] else [])


def md_models():
    """The models whose MD cost is measured (md.smk). Cost depends only on the architecture: with
    md.per_architecture one model per architecture (the first of teacher, student, control, ... in the
    config's order) and the tables share it."""
    if not config["md"]["enabled"]:
        return []
    if config["md"]["per_architecture"]:
        return list({m.arch: m for m in reversed(MODEL_IDS)}.values())
    return list(MODEL_IDS)


def md_files():
    """md_timing_<engine>.json and max_atoms.json of each measured model."""
    files = []
    for m in md_models():
        files += [model_file(m, f"md_timing_{engine}.json") for engine in config["md"]["engines"]]
        files.append(model_file(m, "max_atoms.json"))
    return files


def analysis_files():
    """The per-model MD/RDF files that `aggregate` reads besides metrics.json and curve.csv, sorted."""
    return sorted(md_files() + [model_file(m, "rdf_error.json") for m in MODEL_IDS])


BUDGET_CHECK_IDS = tsmodel_ids.budget_check_ids(config)


def budget_check_metrics():
    """metrics.json of every budget-check model (trained again from scratch with every budget times
    budget_check.scale, <results>/budget_check/<id>/, train.smk), which `aggregate` reads into the
    budget_check_* columns of models.csv."""
    return [model_file(m, "metrics.json", "budget_check") for m in BUDGET_CHECK_IDS]


#: what training reads; a budget-check model the same with its budgets (patiences, warm-up and epoch cap times the
#: scale): the section its settings replace
BUDGET_CHECK_SECTIONS = dict(
    training=tsmodel_ids.budget_check_training(config["training"], config["budget_check"]["scale"]),
)
TRAIN_CONFIG = step_config("train")
BUDGET_CHECK_CONFIG = step_config("train", **BUDGET_CHECK_SECTIONS)


def data_targets():
    return [DATASET, SPLIT]


def train_targets():
    return [model_file(m, "metrics.json") for m in MODEL_IDS] + budget_check_metrics()


def label_targets():
    sources = {tskinds.REGISTRY[k].labels for k in config["sweep"]["kinds"]}
    return (
        [LABELS]
        + ([CALCULATOR_LABELS] if FOUNDATION else [])
        + ([ORACLE_LABELS] if "oracle" in sources else [])
        + ([SYNTHETIC["dataset"]] if "synthetic" in sources else [])
    )


def rdf_targets():
    return (
        [model_file(m, "rdf_error.json") for m in MODEL_IDS]
        + ([res("reference", "rdf_peak.json")] if RDF_REFERENCE else [])
        + ([res("foundation", "rdf_md.json")] if CALCULATOR_LIQUID else [])
        + [res("figures", "coverage.pdf"), RDF_NOISE_FLOOR]
    )


def figure_names():
    """The figures of this run (aggregate.smk): a figure whose data the configuration does not produce
    is not a target (a stage that is off, e.g. md.enabled: false, leaves its columns NaN)."""
    kinds = {m.kind for m in MODEL_IDS}
    timing = bool(md_models()) and bool(config["md"]["engines"])
    max_atoms = bool(md_models())
    sweep = bool(kinds & set(tskinds.PAPER_SWEEP_KINDS))
    return (
        (["pareto_time"] if timing and sweep else [])
        + (["pareto_memory"] if max_atoms and sweep else [])
        + (["capacity", "learning_curves"] if sweep else [])
        + (["scaling"] if timing or max_atoms else [])
        + (["born_again"] if has_born_again() else [])
    )


def has_born_again():
    return any(tskinds.REGISTRY[m.kind].born_again for m in MODEL_IDS)


def aggregate_targets():
    """Figures and tables; called by `rule all` (the Snakefile's last rule), after aggregate.smk."""
    figures = [res("figures", f"{name}.{ext}") for name in figure_names() for ext in ("pdf", "png")]
    tables = list(rules.aggregate.output) + list(rules.claims.output) + list(rules.data_quality.output)
    if has_born_again():
        tables += list(rules.born_again_table.output)
    return figures + tables


def all_targets():
    """The files the default target (`all`) builds, stage by stage."""
    return (
        data_targets()
        + train_targets()
        + label_targets()
        + md_files()
        + ([FOUNDATION_COST] if FOUNDATION_COST_ON else [])
        + ([CLASSICAL_TABLE] if CLASSICAL else [])
        + rdf_targets()
        + aggregate_targets()
    )


# --- provenance stamps (tsmlip.provenance.planned): a rerun of a stale file without Snakemake's metadata --------
#: the settings of the fingerprinted steps (their rules pass the same JSON as --config-json)
if config["data"]["source"] == "emt":
    DATA_STEP, DATA_CFG = "generate-dataset", step_config("generate-dataset")
else:
    from tsmlip.data.io import source_checksums as _source_checksums

    DATA_STEP = "prepare-dataset"
    DATA_CFG = step_config(
        "prepare-dataset",
        *[
            f"{sec}.element"
            for sec, on in (("md", config["md"]["enabled"]), ("rdf", True))
            if on and config[sec].get("element") is None
        ],
    )
SPLIT_CFG = step_config("split")
LABEL_CFG = step_config("label")
ORACLE_CFG = step_config("label-oracle")
CALCULATOR_CFG = step_config("label-calculator")
SYNTHESIZE_CFG = step_config("synthesize")
_SOURCES = (
    []
    if config["data"]["source"] == "emt"
    else [json.dumps(_source_checksums(config["data"]["source"], config["data"]["path"]), sort_keys=True)]
)
#: (step, settings, upstream) of each fingerprinted file
PLAN = {"source": (DATA_STEP, DATA_CFG, _SOURCES)}
PLAN["dataset"] = (
    ("label-calculator", CALCULATOR_CFG, [tsprov.planned(*PLAN["source"])]) if FOUNDATION else PLAN["source"]
)
_DATA_FP = tsprov.planned(*PLAN["dataset"])
PLAN["split"] = ("split", SPLIT_CFG, [_DATA_FP])
_SPLIT_FP = tsprov.planned(*PLAN["split"])


def _train_plan(model_id, budget=False):
    src = tskinds.REGISTRY[model_id.kind].labels
    ups = {
        "none": [_DATA_FP, _SPLIT_FP],
        "teacher": lambda: [_DATA_FP, _SPLIT_FP, tsprov.planned(*PLAN["labels"])],
        "oracle": lambda: [_DATA_FP, tsprov.planned(*PLAN["oracle"])],
        "synthetic": lambda: [tsprov.planned(*PLAN["synthetic"])],
    }[src]
    ups = ups if isinstance(ups, list) else ups()
    # the settings of the model's training (tsmlip.settings): the rule's --config-json with the model id, the same
    # settings its checkpoint and its provenance record hash
    sections = BUDGET_CHECK_SECTIONS if budget else {}
    return ("train", tssettings.settings_json("train", config, model_id=model_id, **sections), ups)


_TEACHERS_FP = lambda: [tsprov.planned(*_train_plan(m)) for m in LABEL_TEACHERS]
PLAN["labels"] = (
    ("label", LABEL_CFG, [_DATA_FP, _SPLIT_FP] + _TEACHERS_FP())
    if LABELS != CALCULATOR_LABELS
    else ("label-calculator", CALCULATOR_CFG, [tsprov.planned(*PLAN["source"])])
)
PLAN["oracle"] = ("label-oracle", ORACLE_CFG, [_DATA_FP])
PLAN["synthetic"] = (
    "synthesize",
    SYNTHESIZE_CFG,
    [_DATA_FP, _SPLIT_FP, tsprov.planned(*PLAN["labels"])] + _TEACHERS_FP(),
)


def stamp_file(name, plan, recorded=None):
    """The stamp input of a fingerprinted rule: <results>/stamps/<name>/<planned fingerprint>.stamp.

    Whether the rule's output is current is read first from the record inside it (``recorded``: the output file
    that holds the record; tsmlip.provenance.made_as_planned), not from file times:

    * it records the plan's settings and code: current. The stamp is given as ``ancient``, so no stamp time (a
      copy, a restore, a touch, a clock skew) reruns it;
    * it records other settings or code: stale, planned again whatever the file times say (a file restored from
      another run, a results folder whose files carry later times), with one line naming both hashes;
    * it records nothing (an older file, a missing output): the stamp's time decides, as before (a stamp newer than
      the rule's outputs reruns it).

    A stamp that must be written makes it newer than every output. A dry run writes nothing into the results
    folder: such a stamp goes to a scratch folder outside it (tsmlip.provenance.scratch_stamp), so the plan shows
    the same reruns and a read-only results folder can be planned. A real run writes it only once it holds the
    results folder's lock (tsmlip.run_lock), so planning never changes a folder that another checkout's run holds
    (and, under the lock, moves back the times of files from the future first)."""
    fp = tsprov.planned(*plan)
    path = res(tsprov.STAMPS_DIR, name, f"{fp}.stamp")
    current, why = tsprov.made_as_planned(recorded, plan[0], plan[1]) if recorded else (None, "")
    if current is False:
        if recorded not in _STALE:
            _STALE.add(recorded)
            print(f"{recorded}: {why}; planned again", file=sys.stderr)
        if os.path.exists(path) and os.path.getmtime(path) > os.path.getmtime(recorded):
            return path  # its stamp already reruns it (a cluster job's own planning, after the run wrote the stamp)
        if workflow.dryrun:
            return tsprov.scratch_stamp(RESULTS, name, fp, *plan)
        _hold_results()
        tsprov.write_stamp(path, *plan)
        return path
    given = _stamp_path(name, fp, path, plan)
    return ancient(given) if current else given


_STALE = set()


def _stamp_path(name, fp, path, plan):
    """The stamp of ``name``/``fp``: where it is; else the old hidden folder's (used there by a dry run, moved by a
    run); else written (to a scratch folder by a dry run, into the results folder under its lock by a run)."""
    if os.path.exists(path):
        return path  # (a job's own planning on a cluster node finds every stamp and takes no lock)
    old = str(tsprov.stamp_path(RESULTS, name, fp, move=False))
    if old != path:  # a stamp of the old hidden folder: used where it is by a dry run, moved by a run
        if workflow.dryrun:
            return old
        _hold_results()
        return str(tsprov.stamp_path(RESULTS, name, fp, move=True))
    if workflow.dryrun:
        return tsprov.scratch_stamp(RESULTS, name, fp, *plan)
    _hold_results()
    tsprov.write_stamp(path, *plan)
    return path


_HELD = []


def _hold_results():
    """Take the results folder's lock for this planning process (a no-op once taken; onstart takes it again), and,
    once, move back the times of files that come from the future (tsmlip.provenance.shift_future_times), before
    the plan writes a stamp. True."""
    if not _HELD:
        tsrunlock.acquire(RESULTS)
        tsprov.shift_future_times(RESULTS, log=lambda m: print(m, file=sys.stderr))
        _HELD.append(True)
    return True


#: the output of each planned step (PLAN) whose record says what made it (stamp_file: current by content); the info
#: JSON beside an npz holds the same record and reads without opening the arrays
RECORDED = {
    "source": os.path.join(os.path.dirname(SOURCE_DATASET), "provenance.json"),
    "dataset": res("data", "provenance.json"),
    "split": res("data", "split.json"),
    "labels": LABELS.replace(".npz", ".json"),
    "oracle": ORACLE_LABELS.replace(".npz", ".json"),
}
# not "synthetic": synthetic.json records its settings in another layout than the plan's (read by file time)


def stamp_input(name):
    return lambda wildcards: stamp_file(name, PLAN[name], RECORDED.get(name))


def stack_stamps(wildcards):
    """The stamps of every model of a stack (train_stack): a changed plan of any of them reruns the stack."""
    st = STACKS_BY_NAME[(wildcards.folder, wildcards.stack)]
    budget = wildcards.folder == "budget_check"
    folder = "train_budget_check" if budget else "train"
    return [
        stamp_file(f"{folder}/{m}", _train_plan(m, budget), model_file(m, "metrics.json", wildcards.folder))
        for m in st.model_ids
    ]


def train_stamp(budget=False):
    def stamp(wildcards):
        mid = tsids.ModelId.parse(f"{wildcards.kind}/{wildcards.arch}/seed{wildcards.seed}")
        folder = "train_budget_check" if budget else "train"
        recorded = model_file(mid, "metrics.json", "budget_check" if budget else "models")
        return stamp_file(f"{folder}/{mid}", _train_plan(mid, budget), recorded)

    return stamp


# --- provenance stamps of the MD, RDF, table and figure rules (the same mechanism as training's) ---------------
# Each is computed from the configuration and the code stamps alone (tsmlip.provenance.planned caches both), so
# planning a run of hundreds of jobs reads no file for them.
_TRAIN_FP = {}


def train_fp(model_id):
    """The planned fingerprint of a model (its training plan), once per model id."""
    key = str(model_id)
    if key not in _TRAIN_FP:
        _TRAIN_FP[key] = tsprov.planned(*_train_plan(model_id))
    return _TRAIN_FP[key]


def _wildcard_model(wildcards):
    return tsids.ModelId.parse(f"{wildcards.kind}/{wildcards.arch}/seed{wildcards.seed}")


def model_step_stamp(step, settings, name=None, recorded=None):
    """The stamp input of a per-model MD/RDF rule: ``step`` with ``settings`` (its --config-json) on the model of
    the job's wildcards; ``name``: the stamp's folder below the model id (default: the step; per-engine rules
    add the engine); ``recorded``: the name of the output in the model's folder whose record says what made it
    (stamp_file: current by content)."""

    def stamp(wildcards):
        mid = _wildcard_model(wildcards)
        folder = name(wildcards) if callable(name) else (name or step)
        return stamp_file(f"{folder}/{mid}", (step, settings, [train_fp(mid)]), recorded and model_file(mid, recorded))

    return stamp


def rule_stamp(name, step, settings, upstream=()):
    """The stamp input of the rules after the models (aggregate, claims, MD, liquids, figures).

    ``settings``: a JSON string or a function of the wildcards (the figure rule's); ``upstream``: planned
    fingerprints or a function of the wildcards returning them; ``name``: the stamp's folder (or a function of the
    wildcards)."""

    def stamp(wildcards):
        s = settings(wildcards) if callable(settings) else settings
        ups = upstream(wildcards) if callable(upstream) else list(upstream)
        folder = name(wildcards) if callable(name) else name
        return stamp_file(folder, (step, s, ups))

    return stamp
