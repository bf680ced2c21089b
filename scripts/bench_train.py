"""Training cost of one model, phase by phase: start-up, s/epoch, ms/step, per-epoch evaluation, wrap-up.

Runs the package's own training pieces (``tsmlip.train``) on a dataset and split the workflow made
(``snakemake results/data/split.npz`` builds the default's), for the default config's teacher and smallest
student (the sweep's base architecture) at several batch sizes, and prints a table with the machine:

    python scripts/bench_train.py                       # default data, batch 8 16 32, 1 thread
    python scripts/bench_train.py --batch 8 --epochs 5 --models student
    python scripts/bench_train.py --profile student     # torch profiler table of one epoch
    python scripts/bench_train.py --smoke               # seconds: tiny data of config/test.yaml, one epoch

Phases (wall seconds, one process per model so the imports are counted as a fresh job pays them):
``import`` (torch, hippynn, the package), ``assemble`` (data, model graph, losses, hippynn database,
energy-offset initialisation, pair pre-computation), ``epoch`` (training pass only; ``ms/step`` = its time
over the optimizer steps), ``eval`` (the per-epoch evaluation the stopping rule and the curve need),
``wrap-up`` (best weights saved, reloaded and scored on every split). With ``--pair-cache DIR`` the assembly
reads the pairs the workflow's first job keeps there (``results/checkpoints/_pairs``), as every later job does. The student reads the dataset's own
reference per-atom energies as labels (same cost as the teacher's labels). The first epoch is not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def one(args) -> dict:
    """Benchmark one model in this process (called in a child process by :func:`main`)."""
    t0 = time.perf_counter()
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "workflow"))
    from tsmlip import train as T
    from tsmlip.config import ModelId, load_config
    from tsmlip.kinds import REGISTRY
    from tsmlip.model import _to_cpu, resolve_device
    t_import = time.perf_counter() - t0

    cfg = load_config(*[Path(c) for c in args.config])
    tr = cfg["training"]
    tr["batch_size"] = args.batch_size
    tr["torch_threads"] = args.threads
    tr["device"] = args.device
    torch.set_num_threads(args.threads)
    if args.model == "teacher":
        a = cfg["teacher"]
        mid = ModelId.parse(f"teacher/w{a['width']}-s{a['n_sensitivities']}-l{a['n_atom_layers']}/seed0")
    else:
        b = cfg["sweep"]["base"]
        mid = ModelId.parse(f"{args.model}/w{b['width']}-s{b['n_sensitivities']}-l{b['n_atom_layers']}/seed1")
    res = Path(args.results)
    dataset, split = res / "data" / "dataset.npz", res / "data" / "split.npz"
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    labels = None
    if mid.kind in ("student", "control_fw", "student_oracle") or args.model == "student":
        from tsmlip.label import oracle_labels
        labels = tmp / "labels.npz"
        oracle_labels(str(dataset), str(labels), cfg["labels"]["sum_tolerance_eV"])

    t1 = time.perf_counter()
    device = resolve_device(tr["device"])
    data = T._load_data(mid, dataset, split, labels if REGISTRY[mid.kind].distilled else None)
    run = T._assemble(mid, cfg, data, device, *([args.pair_cache] if args.pair_cache else []))
    optimizer, controller, max_epochs = T._optimizer(mid, cfg, run.model)
    t_assemble = time.perf_counter() - t1

    n_train = len(data.split["train"])
    steps = -(-n_train // args.batch_size)
    w = run.schedule.final
    ckpt = T._Checkpoint(tmp / "checkpoint.pt", "bench")
    epoch_s, eval_s = [], []
    prof = None
    for epoch in range(1, args.epochs + 2):
        if args.profile and epoch == 2:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        te = time.perf_counter()
        T._train_one_epoch(mid, run, optimizer, args.batch_size, w, epoch, ckpt)
        tv = time.perf_counter()
        T._evaluate_epoch(run, tr, epoch) if hasattr(T, "_evaluate_epoch") else _legacy_eval(T, run, tr, epoch)
        tw = time.perf_counter()
        if prof is not None:
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
            prof = None
        if epoch > 1:  # the first epoch warms allocators and caches
            epoch_s.append(tv - te)
            eval_s.append(tw - tv)

    state = {"best_state": _to_cpu(run.model.state_dict()), "best_epoch": args.epochs, "curve": [],
             "elapsed_s": 0.0}
    t2 = time.perf_counter()
    T._finish(mid, cfg, data, run, state, args.epochs, max_epochs, tmp / "out", labels, time.time())
    t_wrap = time.perf_counter() - t2
    ep = float(np.median(epoch_s))
    return {"model": str(mid), "batch": args.batch_size, "threads": args.threads, "steps_per_epoch": steps,
            "import_s": t_import, "assemble_s": t_assemble, "epoch_s": ep, "ms_per_step": 1000 * ep / steps,
            "eval_s": float(np.median(eval_s)), "wrapup_s": t_wrap,
            "startup_plus_wrapup_s": t_import + t_assemble + t_wrap}


def _legacy_eval(T, run, tr, epoch):
    with T._quiet():
        run.evaluator.evaluate(run.db.make_generator("train", "eval", tr["eval_batch_size"],
                                                     subsample=tr["train_eval_fraction"]), "train", epoch)
        run.evaluator.evaluate(run.db.make_generator("valid", "eval", tr["eval_batch_size"]), "valid", epoch)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", default=[str(ROOT / "config" / "config.yaml")])
    p.add_argument("--results", default=str(ROOT / "results"), help="results_dir holding data/dataset.npz")
    p.add_argument("--models", nargs="+", default=["teacher", "student"], choices=["teacher", "student", "control"])
    p.add_argument("--batch", nargs="+", type=int, default=[8, 16, 32])
    p.add_argument("--epochs", type=int, default=4, help="timed epochs (after one untimed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", default=None, choices=["teacher", "student", "control"],
                   help="print a torch profiler table of one epoch of this model (batch: the first --batch)")
    p.add_argument("--pair-cache", default=None,
                   help="a pair-cache folder as the workflow's jobs share (a warm start-up: all but the first job)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--smoke", action="store_true", help="seconds: tiny data of config/test.yaml, one epoch")
    a = p.parse_args(argv)
    if a.smoke:
        return smoke()
    if a._one:
        kw = json.loads(a._one)
        print(json.dumps(one(argparse.Namespace(**kw))))
        return 0
    import torch
    print(f"# machine: {machine()}; torch {torch.__version__}; {a.threads} torch thread(s); device {a.device}")
    print(f"# config: {' + '.join(Path(c).name for c in a.config)}; data: {a.results}/data")
    rows = []
    header = ("model", "batch", "steps/ep", "import s", "assemble s", "s/epoch", "ms/step", "eval s/ep", "wrap-up s",
              "start+wrap s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model in a.models:
        for batch in a.batch:
            kw = dict(config=a.config, results=a.results, model=model, batch_size=batch, epochs=a.epochs,
                      threads=a.threads, device=a.device, pair_cache=a.pair_cache, profile=(a.profile == model and batch == a.batch[0]))
            out = subprocess.run([sys.executable, __file__, "--_one", json.dumps(kw)], capture_output=True,
                                 text=True, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            if kw["profile"]:
                print(out.stderr, file=sys.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"| {r['model']} | {batch} | {r['steps_per_epoch']} | {r['import_s']:.1f} | {r['assemble_s']:.1f} | "
                  f"{r['epoch_s']:.3f} | {r['ms_per_step']:.1f} | {r['eval_s']:.3f} | {r['wrapup_s']:.1f} | "
                  f"{r['startup_plus_wrapup_s']:.1f} |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    return 0


def smoke() -> int:
    """The benchmark on the tiny configuration's data (made here, in a temporary results_dir): the student,
    batch 4, one timed epoch."""
    import tempfile

    import numpy as np

    from tsmlip.config import load_config
    from tsmlip.data.dataset import pad_configurations, save_dataset
    from tsmlip.data.emt import generate
    from tsmlip.data.split import make_split

    configs_yaml = [str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "test.yaml")]
    cfg = load_config(*configs_yaml)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        configs, _ = generate(cfg["data"]["emt"], progress=False)
        save_dataset(pad_configurations(configs), data / "dataset.npz", {"source": "emt"})
        sp = cfg["split"]
        np.savez(data / "split.npz", **make_split(len(configs), sp["valid_fraction"], sp["test_fraction"], sp["seed"]))
        return main(["--config", *configs_yaml, "--results", tmp, "--models", "student", "--batch", "4",
                     "--epochs", "1"])


if __name__ == "__main__":
    sys.exit(main())
