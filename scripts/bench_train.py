"""Training cost of one model, phase by phase: start-up, s/epoch, ms/step, per-epoch evaluation, wrap-up.

Runs the package's own training pieces (``tsmlip.train``) on a dataset and split the workflow made
(``snakemake results/data/split.npz`` builds the default's), for the default config's teacher and smallest
student (the sweep's base architecture) at several batch sizes, and prints a table with the machine:

    python scripts/bench_train.py                       # default data, batch 8 16 32, 1 thread
    python scripts/bench_train.py --batch 8 --epochs 5 --models student
    python scripts/bench_train.py --profile student     # torch profiler table of one epoch
    python scripts/bench_train.py --engines --stack 9   # hippynn vs the fast engine (1 model and a stack of 9)
    python scripts/bench_train.py --engines --smoke     # seconds: the tiny config, a few steps (a test runs it)
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
    from tsmlip.config import load_config
    from tsmlip.ids import ModelId
    from tsmlip.kinds import REGISTRY
    from tsmlip.core.model import to_cpu, resolve_device
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
    data = T.load_training_data(mid, dataset, split, labels if REGISTRY[mid.kind].distilled else None)
    run = T.assemble_training(mid, cfg, data, device, *([args.pair_cache] if args.pair_cache else []))
    optimizer, controller, max_epochs = T.make_optimizer(mid, cfg, run.model)
    t_assemble = time.perf_counter() - t1

    n_train = len(data.split["train"])
    steps = -(-n_train // args.batch_size)
    w = run.schedule.final
    ckpt = T.Checkpoint(tmp / "checkpoint.pt", "bench")
    epoch_s, eval_s = [], []
    prof = None
    for epoch in range(1, args.epochs + 2):
        if args.profile and epoch == 2:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        te = time.perf_counter()
        T.train_one_epoch(mid, run, optimizer, args.batch_size, w, epoch, ckpt)
        tv = time.perf_counter()
        T.evaluate_epoch(run, tr, epoch) if hasattr(T, "evaluate_epoch") else _legacy_eval(T, run, tr, epoch)
        tw = time.perf_counter()
        if prof is not None:
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
            prof = None
        if epoch > 1:  # the first epoch warms allocators and caches
            epoch_s.append(tv - te)
            eval_s.append(tw - tv)

    state = {"best_state": to_cpu(run.model.state_dict()), "best_epoch": args.epochs, "curve": [],
             "elapsed_s": 0.0}
    t2 = time.perf_counter()
    run.model.load_state_dict(state["best_state"])
    T.finish_training(mid, cfg, data, run.graph, run.schedule, run.n_weights, run.device, state, args.epochs, max_epochs,
              tmp / "out", labels, 0.0, "hippynn")
    t_wrap = time.perf_counter() - t2
    ep = float(np.median(epoch_s))
    return {"model": str(mid), "batch": args.batch_size, "threads": args.threads, "steps_per_epoch": steps,
            "import_s": t_import, "assemble_s": t_assemble, "epoch_s": ep, "ms_per_step": 1000 * ep / steps,
            "eval_s": float(np.median(eval_s)), "wrapup_s": t_wrap,
            "startup_plus_wrapup_s": t_import + t_assemble + t_wrap}


def _legacy_eval(T, run, tr, epoch):
    with T.quiet_hippynn():
        run.evaluator.evaluate(run.db.make_generator("train", "eval", tr["eval_batch_size"],
                                                     subsample=tr["train_eval_fraction"]), "train", epoch)
        run.evaluator.evaluate(run.db.make_generator("valid", "eval", tr["eval_batch_size"]), "valid", epoch)


def engines(a) -> list[dict]:
    """hippynn's training step against the fast engine's, interleaved in one process on the same data and batch
    size: ms per model-step (minimum over ``--repeats`` rounds of ``--steps`` steps) for hippynn, the fast engine with
    one model, and a stack of ``--stack`` models; and seconds per model-epoch including the per-epoch validation, for
    the sweep's architectures and the teacher of the config."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "workflow"))
    from tsmlip import train as T
    from tsmlip.config import load_config
    from tsmlip.model_ids import sweep_archs, teacher_arch
    from tsmlip.ids import ModelId
    from tsmlip.core.geometry import pair_geometry
    from tsmlip.core.hipnn_stack import SlotBatch, StackedHipnn, loss_terms
    from tsmlip.data import load_dataset, load_split
    from tsmlip.core.losses import combine
    from tsmlip.train.fast import evaluate_stack, initial_state, stack_targets
    from tsmlip.train.optim import StackAdam

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    cfg = load_config(*[Path(c) for c in a.config])
    tr = cfg["training"]
    tr["batch_size"], tr["torch_threads"], tr["device"] = a.batch[0], a.threads, "cpu"
    res = Path(a.results)
    ds, sp = res / "data" / "dataset.npz", res / "data" / "split.npz"
    arrays = load_dataset(ds)
    split = load_split(sp, len(arrays["E"]))
    species = sorted(int(z) for z in np.unique(arrays["Z"]) if z)
    geom = pair_geometry(arrays, species, cfg["network"]["dist_hard_max"])
    B = a.batch[0]
    n_train = len(split["train"])
    archs = [("teacher", teacher_arch(cfg))] + [("control", arch) for arch in sweep_archs(cfg)]
    rows = []
    for kind, arch in archs:
        mid = ModelId(kind, arch, 1)
        data = T.load_training_data(mid, ds, sp, None)
        with T.quiet_hippynn():
            run = T.assemble_training(mid, cfg, data, torch.device("cpu"), a.pair_cache)
        optimizer, _controller, _ = T.make_optimizer(mid, cfg, run.model)
        w = run.schedule.final
        stacks = {}
        for n in (1, a.stack):
            states = [initial_state(ModelId(kind, arch, s + 1), cfg, arrays, split, species)[1:] for s in range(n)]
            st = StackedHipnn(states, arch.n_atom_layers, cfg["network"]["dist_hard_max"],
                              pair_kernels=tr["pair_kernels"])
            stacks[n] = (st, StackAdam(st.trainable(), tr["learning_rate"], tr["ema_decay"]))
        wvec = {t: torch.tensor(getattr(w, f"w_{t}")) for t in ("E", "F", "L2", "R")}

        def hippynn_steps(k):
            t = time.process_time()
            for i in range(k):
                T.train_step(run, optimizer, run.batches["train"].batch(torch.arange(i * B, (i + 1) * B) % n_train), w)
            return (time.process_time() - t) / k

        def fast_steps(n, k):
            st, adam = stacks[n]
            t = time.process_time()
            for i in range(k):
                rows_ = np.stack([split["train"][(np.arange(B) + i * B + 7 * m) % n_train] for m in range(n)])
                batch = SlotBatch(geom, torch.as_tensor(rows_))
                out = st.forward(batch, forces=True, create_graph=True)
                terms = loss_terms(st, out, batch, stack_targets(arrays, None, rows_, "cpu"), False)
                sum(wvec[t_] * terms[t_] for t_ in terms).sum().backward()
                adam.step(st.trainable())
            return (time.process_time() - t) / k / n

        def hippynn_eval():
            t = time.process_time()
            T.evaluate_epoch(run, tr, 1)
            t_eval = time.process_time() - t
            ckpt = Path(tempfile.mkdtemp(prefix="bench_ckpt_")) / "checkpoint.pt"
            t = time.process_time()
            T.loop._save_checkpoint(T.loop.Checkpoint(ckpt, "x"), run, _controller, {"epoch": 1})
            return t_eval + (time.process_time() - t) / tr["checkpoint_every"]

        def fast_eval(n):
            st, adam = stacks[n]

            class _M:  # what _evaluate reads of a member
                class data:
                    distilled, labels = False, None
            t = time.process_time()
            with adam.averaged(st.trainable()):
                evaluate_stack(st, geom, arrays, [_M] * n, np.tile(split["valid"], (n, 1)), tr["eval_batch_size"],
                               "cpu")
            t_eval = time.process_time() - t
            folder = Path(tempfile.mkdtemp(prefix="bench_ckpt_"))
            t = time.process_time()
            for m in range(n):  # what train_stack writes for each model at a checkpoint
                torch.save({"params": {key: p[m].detach().clone() for key, p in st.params.items()},
                            "adam": adam.slice(m)}, folder / f"{m}.pt")
            return (t_eval + (time.process_time() - t) / tr["checkpoint_every"]) / n

        best = {k: float("inf") for k in ("h", "f1", "fn", "he", "f1e", "fne")}
        hippynn_steps(3), fast_steps(1, 3), fast_steps(a.stack, 2)  # warm-up
        for _ in range(a.repeats):  # interleaved rounds
            best["h"] = min(best["h"], hippynn_steps(a.steps))
            best["f1"] = min(best["f1"], fast_steps(1, a.steps))
            best["fn"] = min(best["fn"], fast_steps(a.stack, a.steps))
            best["he"] = min(best["he"], hippynn_eval())
            best["f1e"] = min(best["f1e"], fast_eval(1))
            best["fne"] = min(best["fne"], fast_eval(a.stack))
        steps = -(-n_train // B)
        r = {"model": f"{kind} {arch.tag}", "batch": B, "stack": a.stack, "steps_per_epoch": steps,
             "hippynn_ms_step": 1e3 * best["h"], "fast1_ms_step": 1e3 * best["f1"], "fastN_ms_model_step": 1e3 * best["fn"],
             "hippynn_s_epoch": steps * best["h"] + best["he"], "fast1_s_epoch": steps * best["f1"] + best["f1e"],
             "fastN_s_model_epoch": steps * best["fn"] + best["fne"]}
        # hippynn over the fast engine as the config trains this model: the teacher alone when it has one seed (no
        # stack amortises its per-step overhead), every sweep architecture in a stack
        alone = kind == "teacher" and len(cfg["teacher"]["seeds"]) == 1
        r["trained_as"] = "alone" if alone else f"stack of {a.stack}"
        r["speedup_epoch"] = r["hippynn_s_epoch"] / (r["fast1_s_epoch"] if alone else r["fastN_s_model_epoch"])
        rows.append(r)
        print(f"| {r['model']} | {B} | {a.stack} | {r['hippynn_ms_step']:.2f} | {r['fast1_ms_step']:.2f} | "
              f"{r['fastN_ms_model_step']:.2f} | {r['hippynn_s_epoch']:.3f} | {r['fast1_s_epoch']:.3f} | "
              f"{r['fastN_s_model_epoch']:.3f} | {r['speedup_epoch']:.1f}x ({r['trained_as']}) |", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", default=[str(ROOT / "config" / "config.yaml")])
    p.add_argument("--results", default=str(ROOT / "results"), help="results_dir holding data/dataset.npz")
    p.add_argument("--models", nargs="+", default=["teacher", "student"], choices=["teacher", "student", "control"])
    p.add_argument("--batch", nargs="+", type=int, default=None,
                   help="batch sizes (default: 8 16 32; with --engines the config's training.batch_size)")
    p.add_argument("--epochs", type=int, default=4, help="timed epochs (after one untimed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", default=None, choices=["teacher", "student", "control"],
                   help="print a torch profiler table of one epoch of this model (batch: the first --batch)")
    p.add_argument("--pair-cache", default=None,
                   help="a pair-cache folder as the workflow's jobs share (a warm start-up: all but the first job)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--engines", action="store_true", help="hippynn vs the fast engine, interleaved (see engines())")
    p.add_argument("--stack", type=int, default=16,
                   help="--engines: models in the fast engine's stack (16: one sweep architecture of the default)")
    p.add_argument("--steps", type=int, default=30, help="--engines: steps per timed round")
    p.add_argument("--repeats", type=int, default=5, help="--engines: interleaved rounds (the minimum is kept)")
    p.add_argument("--smoke", action="store_true",
                   help="seconds, on the tiny data of config/test.yaml made in a temporary folder: one epoch of the "
                        "student; with --engines 3 steps of each engine, 1 round (the script runs, nothing is measured)")
    p.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.batch is None:
        a.batch = [8, 16, 32]
        if a.engines:  # what the default runs
            sys.path.insert(0, str(ROOT / "workflow"))
            from tsmlip.config import load_config
            a.batch = [int(load_config(*[Path(c) for c in a.config])["training"]["batch_size"])]
    if a.engines:
        import torch
        if a.smoke:
            a = _smoke_setup(a)
        print(f"# machine: {machine()}; torch {torch.__version__}; {a.threads} torch thread(s); CPU")
        print(f"# config: {' + '.join(Path(c).name for c in a.config)}; data: {a.results}/data; ms per model-step "
              f"(min of {a.repeats} interleaved rounds of {a.steps} steps, CPU time of this process); s per model-epoch "
              f"incl. validation and the checkpoints (every training.checkpoint_every epochs); the fast engine with "
              f"the config's weight average (training.ema_decay)")
        print("| model | batch | stack | hippynn ms/step | fast ms/step | fast stack ms/model-step | hippynn s/epoch | "
              "fast s/epoch | fast stack s/model-epoch | hippynn / fast per model-epoch, as trained |")
        print("|" + "---|" * 10)
        rows = engines(a)
        if a.json:
            Path(a.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
        return 0
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


def _smoke_setup(a):
    """The tiny config's data in a temporary results folder; a few steps of everything."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "workflow"))
    from tsmlip.config import load_config
    from tsmlip.data.dataset import load_dataset, pad_configurations, save_dataset
    from tsmlip.data.emt import generate
    from tsmlip.data.split import make_split

    cfgs = [str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "test.yaml")]
    cfg = load_config(*[Path(c) for c in cfgs])
    res = Path(tempfile.mkdtemp(prefix="bench_train_smoke_"))
    (res / "data").mkdir()
    configs, _ = generate(cfg["data"]["emt"], progress=False)
    save_dataset(pad_configurations(configs), res / "data" / "dataset.npz", {"source": "emt"})
    n = len(load_dataset(res / "data" / "dataset.npz")["E"])
    sp = cfg["split"]
    np.savez(res / "data" / "split.npz", **make_split(n, sp["valid_fraction"], sp["test_fraction"], sp["seed"]))
    a.config, a.results, a.stack, a.steps, a.repeats, a.batch = cfgs, str(res), 2, 3, 1, [2]
    return a
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
