"""Command line: ``gan-lightning {train,sample,experiments} ...`` (also ``python -m gan_lightning``)."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from gan_lightning.files import RunWriteError, write_error_line, write_json
from gan_lightning.registry import ConfigError, first_line

EXIT_CODES = {"completed": 0, "failed": 1, "diverged": 3, "interrupted": 130}
EXIT_CONFIG = 2  # a bad config, data or input file: one line says what and how to fix it
EXIT_WRITE = 74  # sysexits' EX_IOERR: a file could not be written (disk full, quota)
EXIT_HELP = (
    "exit codes: 0 done; 1 a run failed (see its summary.json); 2 a bad config, dataset or input file; "
    "3 a run diverged; 74 a file could not be written (disk full: free space, then resume=auto continues "
    "a run); 130 interrupted"
)


def _train(args: argparse.Namespace) -> int:
    from gan_lightning.callbacks.run import outcome_line
    from gan_lightning.config import load_config
    from gan_lightning.distributed import launched_as_rank_zero
    from gan_lightning.train import train

    result = train(load_config(args.overrides))
    if result.summary and launched_as_rank_zero():  # the other ranks know the status only
        print(outcome_line(result.summary))
        print(f"run directory: {result.run_dir}")
    return EXIT_CODES.get(result.status, 1)


def _sample(args: argparse.Namespace) -> int:
    from gan_lightning.sample import sample_to_file

    path = sample_to_file(
        args.ckpt, args.n, args.out, seed=args.seed, device=args.device, raw=args.raw, truncation=args.truncation
    )
    print(f"wrote {args.n} samples to {path}")
    return 0


def _style_mix(args: argparse.Namespace) -> int:
    from gan_lightning.sample import style_mix_to_file

    path = style_mix_to_file(
        args.ckpt, args.out, args.rows, args.cols, args.seed, args.device, args.raw, args.truncation
    )
    print(f"wrote the style mixing grid (coarse, middle, fine) to {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from gan_lightning.evaluate import evaluate_checkpoint

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    result = evaluate_checkpoint(
        args.ckpt,
        metrics,
        args.n,
        args.features,
        args.ref_split,
        args.device,
        args.seed,
        not args.no_raw,
        args.data_dir,
        args.resize,
        args.is_weights,
        args.out,
        ppl_space=args.ppl_space,
        ppl_n=args.ppl_n,
    )
    for key, value in result["values"].items():
        print(f"{key:24s} {value:.6g}")
    print(f"written to {result['written_to']}")
    return 0


def _truncation(args: argparse.Namespace) -> int:
    from gan_lightning.truncation import parse_psis, truncation_sweep

    psis = parse_psis(args.psi)
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    r = truncation_sweep(
        args.ckpt, psis, args.n, metrics, args.features, args.ref_split, args.device, args.seed, args.data_dir, args.out
    )
    from gan_lightning.truncation import table_markdown

    print(table_markdown(r["rows"], r["keys"]), end="")
    print(f"written to {', '.join(r['written_to'])}")
    return 0


def _fid(args: argparse.Namespace) -> int:
    from gan_lightning.evaluate import fid_between

    if args.n is not None and args.n < 2:  # a negative n counted from the end of a permutation
        raise ConfigError(f"bad value for '--n': at least 2 images of each, got {args.n} (leave it out for all)")

    r = fid_between(
        args.a,
        args.b,
        args.features,
        args.n,
        args.device,
        args.resize,
        args.data_dir,
        classifier_data=args.classifier_data,
    )
    print(f"FID: {r['fid']:.4f}  ({r['n_a']} vs {r['n_b']} images, {r['features']} features)")
    return 0


def _invert(args: argparse.Namespace) -> int:
    from gan_lightning.inversion import invert_checkpoint

    r = invert_checkpoint(
        args.ckpt,
        args.images,
        args.out,
        steps=args.steps,
        lr=args.lr,
        restarts=args.restarts,
        seed=args.seed,
        labels=args.labels,
        device=args.device,
        data_dir=args.data_dir,
    )
    s = r["summary"]
    print(
        f"inverted {s['n']} images ({s['start']} start, {args.steps} Adam steps, {args.restarts} restart(s)): "
        f"MSE {s['mse_mean']:.4g} (RMSE {s['rmse_mean']:.4g}), L1 {s['l1_mean']:.4g}, "
        f"PSNR median {s['psnr_median']:.2f} dB; |z| {s['z_norm_mean']:.3g} (prior ~{s['prior_norm']:.3g})"
    )
    print(f"written to {r['written_to']}")
    return 0


def _directions(args: argparse.Namespace) -> int:
    from gan_lightning.directions import directions_for_checkpoint

    r = directions_for_checkpoint(
        args.ckpt, args.n, args.classes, args.step, args.out, args.seed, args.device, args.data_dir
    )
    for d in r["directions"]:
        head = d["attribute"] + (f" ({d['conditioned_on']} projected out)" if d["conditioned_on"] else "")
        last = d["steps"][-1]
        other = f", p({d['other']}) {last['other_change']:+.3f}" if d["other"] else ""
        print(
            f"{head}: boundary accuracy {d['boundary']['held_out_accuracy']:.3f} (held out); step "
            f"+{last['step']:g}: {last['intended']:.0%} of the others become {d['attribute']}{other}"
        )
    print(f"written to {r['written_to']}")
    return 0


def _measures(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gan_lightning.config import load_config
    from gan_lightning.metrics.degradations import all_set_measures, run_measures

    if args.n < 2:
        raise ConfigError(f"bad value for '--n': at least 2 images per set (a covariance), got {args.n}")
    cfg = load_config(args.overrides, exp="quickstart")
    names = [m.strip() for m in args.metrics.split(",")] if args.metrics else all_set_measures()
    out = Path(args.out or f"runs/measures/{cfg.data.name}-{args.features}-n{args.n}")
    result = run_measures(cfg, names, args.n, args.features, out, seed=args.seed)
    from gan_lightning.metrics.degradations import table_markdown

    print(table_markdown(result))
    print(f"written to {out}/measures.json and measures.md ({result['wall_s']} s)")
    return 0


def _train_evaluator(args: argparse.Namespace) -> int:
    from gan_lightning.config import load_config
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.classifier import (
        classifier_path,
        fingerprint,
        require_domain_classifier,
        save_classifier,
        train_classifier,
    )

    cfg = load_config(args.overrides, exp="quickstart")
    dm: Any = build_datamodule(cfg)
    require_domain_classifier(dm)  # labelled images: the DataModule has split()
    train, test = dm.split(train=True, size=28), dm.split(train=False, size=28)
    net, meta = train_classifier(train, test, dm.info.name, epochs=args.epochs, device=args.device)
    path = save_classifier(net, meta, classifier_path(dm.info.name, fingerprint(*train)))
    print(f"{dm.info.name}: test accuracy {meta['test_accuracy']:.4f} ({meta['test_size']} images); saved {path}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    from gan_lightning.lab import incomplete_rows, run_lab

    out = run_lab(args.overrides)
    print((out / "lab.md").read_text())
    print(f"lab directory: {out}")
    incomplete = incomplete_rows(json.loads((out / "lab.json").read_text())["rows"])
    for line in incomplete:  # the table is written either way; the exit code says it is incomplete
        print(f"error: {line}", file=sys.stderr)
    return 1 if incomplete else 0


def _study(args: argparse.Namespace) -> int:
    if any(a.startswith("protocol=") for a in args.overrides):  # a named protocol of studies: protocol.py
        from gan_lightning.protocol import protocol_command

        return protocol_command(args.overrides)
    from gan_lightning.study import run_study

    sdir = run_study(args.overrides)
    print((sdir / "report.md").read_text())
    print(f"study directory: {sdir}")
    report = json.loads((sdir / "report.json").read_text())
    missing = [r for r in report["per_seed"] if r.get("status") != "completed"]
    if missing:  # the report is written either way; the exit code says it is incomplete
        listed = "; ".join(f"seed {r['seed']}: {r.get('error') or r.get('status') or 'no run'}" for r in missing)
        retry = any(r.get("status") != "diverged" for r in missing)  # a diverged run would diverge again
        advice = (
            "fix what an error says (a refusal repeats until then), then run the same command again to retry them "
            "(completed seeds are kept)"
            if retry
            else "an outcome"
        )
        print(
            f"error: {len(missing)} of {len(report['per_seed'])} seeds did not complete ({listed}); {advice}",
            file=sys.stderr,
        )
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    from gan_lightning.study import compare_studies

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if args.out and Path(args.out).suffix != ".json":  # else the plot (its .png sibling) could overwrite it
        raise ConfigError(f"bad value for '--out': the comparison is JSON, give a path ending in .json, got {args.out}")
    if args.plot and Path(args.plot).suffix not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"bad value for '--plot': a .png, .pdf or .svg path, got {args.plot}")
    r = compare_studies(args.a, args.b, metrics, args.alpha)
    for key, m in r["metrics"].items():
        if "note" in m:
            print(f"{key}: {m['note']}")
            continue
        verdict = "DIFFER" if m["differ"] else "no significant difference"
        if not m["mann_whitney_can_decide"]:
            verdict += (
                f" (Welch's t alone: with {m['n_a']} and {m['n_b']} seeds Mann-Whitney's p is at least "
                f"{m['mann_whitney_min_p']:.3g}; more seeds let both tests decide)"
            )
        print(
            f"{key}: A {m['mean_a']:.4g} (n={m['n_a']}) vs B {m['mean_b']:.4g} (n={m['n_b']}): {verdict} at "
            f"FDR {r['alpha']} (Welch t={m['welch_t']:.3g}, p={m['welch_p']:.3g}, "
            f"adjusted {m['welch_p_adjusted']:.3g}; Mann-Whitney U={m['mann_whitney_u']:.3g}, "
            f"p={m['mann_whitney_p']:.3g}, adjusted {m['mann_whitney_p_adjusted']:.3g}); "
            f"Cohen's d={m['cohens_d']:.3g}, P(A > B)={m['prob_a_greater']:.2f}"
        )
    if args.out:
        write_json(Path(args.out), r)
        print(f"written to {args.out}")
    target = Path(args.plot) if args.plot else Path(args.out).with_suffix(".png") if args.out else None
    if target is not None:  # nothing is written where the user did not ask for a file
        from gan_lightning.plots import plot_comparison

        plot = plot_comparison(r["values"], (str(args.a), str(args.b)), target)
        if plot is not None:
            print(f"plot: {plot}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from gan_lightning import sweep

    if args.count < 1:
        raise ConfigError(f"bad value for '--count': at least 1 trial, got {args.count}")
    if args.seed < 0:
        raise ConfigError(f"bad value for '--seed': a seed >= 0, got {args.seed}")
    if args.study_seeds:  # before any trial runs
        from gan_lightning.study import parse_seeds

        parse_seeds(args.study_seeds)
    offline = args.offline or not _online()
    if not offline:
        return sweep.run_online(args.file, args.count)
    sdir, rows = sweep.run_offline(args.file, args.count, args.out, args.seed)
    print((sdir / "results.md").read_text())
    print(f"sweep directory: {sdir}")
    unfinished = [r for r in rows if r["status"] not in sweep.OUTCOMES]
    if unfinished:  # the table is written either way; the same command runs them again
        listed = "; ".join(f"{r['trial']}: {r.get('error') or r['status']}" for r in unfinished)
        print(f"error: {len(unfinished)} of {len(rows)} trials did not complete ({listed}); the same command runs "
              "them again", file=sys.stderr)  # fmt: skip
        return 1
    if args.study_seeds:
        from gan_lightning.study import run_study

        best = sweep.best_overrides(sdir, args.file)
        print(f"studying the best configuration: {' '.join(best)}")
        study_dir = run_study([*best, f"seeds={args.study_seeds}", f"out={best_study_dir(sdir, best)}"])
        print((study_dir / "report.md").read_text())
        report = json.loads((study_dir / "report.json").read_text())
        if len(report["completed"]) < len(report["per_seed"]):
            print(f"error: seeds of the best configuration did not complete; see {study_dir}", file=sys.stderr)
            return 1
    return 0


def best_study_dir(sweep_dir: Path, best: list[str]) -> Path:
    """The study of a sweep's best configuration, named by it: an extended sweep with a new winner studies
    that one in a directory of its own."""
    import hashlib

    return sweep_dir / f"best_study_{hashlib.sha1(' '.join(sorted(best)).encode()).hexdigest()[:8]}"


def _online() -> bool:
    import socket

    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return False
    try:
        socket.create_connection(("api.wandb.ai", 443), timeout=3).close()
        return True
    except OSError:
        return False


def experiment_summary(text: str, width: int = 160) -> str:
    """The first sentence of an experiment file's leading comment (which may run over several lines): up to a
    '.' before a capital letter, a ';', or the comment's end; cut at ``width`` characters with '...'."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    words, depth, sentence = " ".join(lines), 0, None
    for i, ch in enumerate(words):  # outside parentheses only: "(Goodfellow et al. 2014; ...)" goes on
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and (ch == ";" or (ch == "." and re.match(r" [A-Z]", words[i + 1 : i + 3]))):
            sentence = words[: i + (ch == ".")]
            break
    sentence = words if sentence is None else sentence
    return sentence if len(sentence) <= width else sentence[: width - 3].rstrip() + "..."


def _experiments(args: argparse.Namespace) -> int:
    from gan_lightning.config import experiments_dir, known_experiments

    for name in known_experiments():
        print(f"{name:18s} {experiment_summary((experiments_dir() / f'{name}.yaml').read_text())}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from gan_lightning.config import annotated_yaml, config_origins

    cfg, origins = config_origins(list(args.overrides))
    print(annotated_yaml(cfg, origins), end="")
    return 0


# benchmarks/bench_<name>.py, in make bench's order
BENCHMARKS = ("loop", "toy", "quickstart_cpu", "fid", "inception_cpu", "measures", "distances")


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        raise ConfigError(f"no benchmarks/ beside the package ({folder}): run from a source checkout (git clone)")
    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    for name in names:
        rc = subprocess.run([sys.executable, str(folder / f"bench_{name}.py"), *args.args]).returncode
        if rc:
            return rc
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gan-lightning", description="GAN experiments on PyTorch Lightning", epilog=EXIT_HELP
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train: gan-lightning train exp=NAME [seed=S] [steps=N] [out=DIR] [resume=PATH|auto] [k=v ...]"
    )
    t.add_argument(
        "overrides",
        nargs="*",
        help="key=value config overrides; `gan-lightning config exp=NAME [k=v ...]` prints the resolved "
        "config with each key's layer",
    )
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="write N samples of a checkpoint as .npy (data space) or a .png grid")
    s.add_argument("ckpt")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--out", required=True, help="FILE.npy or FILE.png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--raw", action="store_true", help="sample the raw generator, not its EMA")
    s.add_argument(
        "--truncation",
        type=float,
        default=None,
        metavar="PSI",
        help="the truncation trick at strength PSI (stylegan, biggan)",
    )
    s.set_defaults(func=_sample)

    sm = sub.add_parser(
        "style-mix",
        help="style mixing grid of a style-based generator (.png): a row of sources B, then for coarse, middle "
        "and fine layers one row per source A with that range's styles copied from each B",
    )
    sm.add_argument("ckpt")
    sm.add_argument("--out", required=True, help="FILE.png")
    sm.add_argument("--rows", type=int, default=3, help="sources A (rows of each block)")
    sm.add_argument("--cols", type=int, default=4, help="sources B (columns)")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--device", default="cpu")
    sm.add_argument("--raw", action="store_true", help="the raw generator, not its EMA")
    sm.add_argument("--truncation", type=float, default=None, metavar="PSI", help="truncation trick at strength PSI")
    sm.set_defaults(func=_style_mix)

    ev = sub.add_parser("evaluate", help="metrics of a checkpoint, printed and written as JSON")
    ev.add_argument("ckpt")
    ev.add_argument(
        "--metrics",
        default="",
        help="comma list of metrics.names (fid,kid,prdc,is,classes,... `gan-lightning measures --help`; "
        "default fid,kid,prdc,is,classes)",
    )
    ev.add_argument("--n", type=int, default=10000, help="generated samples (and reference images)")
    ev.add_argument("--features", default="classifier", choices=["classifier", "inception"])
    ev.add_argument("--ref-split", default="test", choices=["train", "test"])
    ev.add_argument("--resize", default="tf1_bilinear", help="resize to 299 for inception features")
    ev.add_argument("--is-weights", default=None, help="torch-fidelity's Inception weights for IS on ImageNet logits")
    ev.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ev.add_argument("--seed", type=int, default=4321)
    ev.add_argument("--no-raw", action="store_true", help="skip the raw generator when there is an EMA one")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument(
        "--out",
        default=None,
        help="JSON file (default: <run>/evaluate-<ckpt>-step<G>[-<settings other than the defaults>].json; "
        "another evaluation at the same settings adds its metrics to it)",
    )
    ev.add_argument(
        "--ppl-space", default="w", choices=["w", "z"], help="ppl: lerp in W (generators with a mapping) or slerp in Z"
    )
    ev.add_argument("--ppl-n", type=int, default=2000, help="ppl: pairs of latents")
    ev.set_defaults(func=_evaluate)

    tr = sub.add_parser(
        "truncation",
        help="the truncation trick's trade-off: metrics (FID, precision, recall) of the EMA generator at each "
        "strength psi, as a table (json, md) and a plot beside the run (stylegan, biggan)",
    )
    tr.add_argument("ckpt")
    tr.add_argument(
        "--psi",
        default="1.0,0.9,0.7,0.5",
        help="comma list of strengths (stylegan: 1 is none; biggan: the truncated normal's threshold)",
    )
    tr.add_argument("--n", type=int, default=10000, help="generated samples per psi (and reference images)")
    tr.add_argument("--metrics", default="", help="comma list of metrics.names (default fid,prdc)")
    tr.add_argument("--features", default="classifier", choices=["classifier", "inception"])
    tr.add_argument("--ref-split", default="test", choices=["train", "test"])
    tr.add_argument("--device", default="cuda" if _cuda() else "cpu")
    tr.add_argument("--seed", type=int, default=4321)
    tr.add_argument("--data-dir", default=None)
    tr.add_argument("--out", default=None, help="path without suffix (default <run>/truncation-<ckpt>)")
    tr.set_defaults(func=_truncation)

    f = sub.add_parser("fid", help="FID between two image sources: .npy, image folders or NAME:split")
    f.add_argument("a")
    f.add_argument("b")
    f.add_argument("--features", default="inception", choices=["classifier", "inception"])
    f.add_argument("--n", type=int, default=None, help="use N images of each (a seeded subset)")
    f.add_argument("--resize", default="tf1_bilinear")
    f.add_argument("--device", default="cuda" if _cuda() else "cpu")
    f.add_argument("--data-dir", default="data")
    f.add_argument("--classifier-data", default=None, help="dataset whose classifier gives the features")
    f.set_defaults(func=_fid)

    inv = sub.add_parser(
        "invert",
        help="latent inversion: the z whose G(z) best matches each image, by Adam on the squared error; "
        "per-image MSE/L1/PSNR, z.npy and a target/reconstruction grid",
    )
    inv.add_argument("ckpt")
    inv.add_argument(
        "images", help="a .npy (N, C, H, W) in [0, 1] as `sample` writes, an image folder, or NAME:split[:n]"
    )
    inv.add_argument("--steps", type=int, default=500, help="Adam steps per start")
    inv.add_argument("--lr", type=float, default=0.05)
    inv.add_argument("--restarts", type=int, default=1, help="random starts per image; the best is kept")
    inv.add_argument("--seed", type=int, default=0)
    inv.add_argument(
        "--labels", default=None, help="class-conditional models: a .npy of one class per image, or one class K"
    )
    inv.add_argument("--out", default=None, help="directory (default <run>/invert-<images>)")
    inv.add_argument("--device", default="cuda" if _cuda() else "cpu")
    inv.add_argument("--data-dir", default=None, help="where NAME:split data lies (default: the model's)")
    inv.set_defaults(func=_invert)

    di = sub.add_parser(
        "directions",
        help="learned latent directions (InterFaceGAN): a linear boundary per class in z, edits along its normal "
        "(optionally with another class's normal projected out), measured with the domain classifier",
    )
    di.add_argument("ckpt")
    di.add_argument("--n", type=int, default=4000, help="samples: boundaries fit on 80%%, edits measured on 20%%")
    di.add_argument(
        "--classes", default=None, help="one or two classes, a,b: indices or names (default: the two most made)"
    )
    di.add_argument("--step", type=float, default=3.0, help="largest step s of z + s n (measured at +-s/4 .. +-s)")
    di.add_argument("--seed", type=int, default=0)
    di.add_argument("--out", default=None, help="directory (default <run>/directions-<classes>)")
    di.add_argument("--device", default="cuda" if _cuda() else "cpu")
    di.add_argument("--data-dir", default=None, help="where the classifier's training data lies (default: the model's)")
    di.set_defaults(func=_directions)

    me = sub.add_parser(
        "measures",
        help="the metric of metrics: every measure on held-out real images and on known degradations "
        "(dropped classes, collapse, noise, blur, memorised training images), one table",
    )
    me.add_argument("overrides", nargs="*", help="data=NAME and data.* overrides (default: Fashion-MNIST)")
    me.add_argument("--metrics", default="", help="comma list (default: every measure a set of images can take)")
    me.add_argument("--n", type=int, default=2000, help="images per row and reference images")
    me.add_argument("--features", default="classifier", choices=["classifier", "inception"])
    me.add_argument("--seed", type=int, default=0)
    me.add_argument("--out", default=None, help="directory (default runs/measures/<data>-<features>-n<N>)")
    me.set_defaults(func=_measures)

    te = sub.add_parser("train-evaluator", help="train and cache the domain classifier: data=mnist|fashion_mnist")
    te.add_argument("overrides", nargs="*", help="data=NAME and data.* overrides")
    te.add_argument("--epochs", type=int, default=6)
    te.add_argument("--device", default="cuda" if _cuda() else "cpu")
    te.set_defaults(func=_train_evaluator)

    st = sub.add_parser("study", help="one run per seed and aggregates: study exp=NAME seeds=0-9 [jobs=K] [k=v ...]")
    st.add_argument(
        "overrides",
        nargs="*",
        help="seeds=..., jobs=K, reproducible=true, out=DIR and key=value overrides; or protocol=lucic "
        "[models=mm,ns,lsgan,wgan,wgan_gp,dragan,began] [budget=K] [seeds=0] [steps=N] [out=DIR] [jobs=J] "
        "[search_seed=0] [batch_sizes=64] [k=v ...]: Lucic et al. 2018's random search per loss (protocol.py)",
    )
    st.set_defaults(func=_study)

    lab = sub.add_parser(
        "lab",
        help="the mode-collapse lab: a study per benchmark (2-D mixtures, stacked Fashion-MNIST) and remedy, one table",
    )
    lab.add_argument(
        "overrides",
        nargs="*",
        help="benchmarks=grid,ring,stacked_fashion methods=gan,pacgan4,... seeds=0-9 out=DIR jobs=K, key=value",
    )
    lab.set_defaults(func=_lab)

    c = sub.add_parser(
        "compare",
        help="do two studies differ? Welch's t and Mann-Whitney U on final values, FDR-controlled across metrics",
    )
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--metrics", default="")
    c.add_argument("--alpha", type=float, default=0.05)
    c.add_argument("--out", default=None, help="also write the comparison as JSON")
    c.add_argument(
        "--plot",
        default=None,
        help="write a plot of both studies' final values here (default: beside --out, as .png)",
    )
    c.set_defaults(func=_compare)

    sw = sub.add_parser("sweep", help="a wandb sweep file: online with wandb, or --offline with the sweeps engine")
    sw.add_argument("file")
    sw.add_argument("--count", type=int, default=10)
    sw.add_argument("--offline", action="store_true", help="run the trials here (also the default without network)")
    sw.add_argument("--out", default=None, help="sweep directory (default runs/sweeps/<file name>)")
    sw.add_argument("--seed", type=int, default=0, help="seed of the search (random and bayes)")
    sw.add_argument("--study-seeds", default="", help="then study the best configuration over these seeds, e.g. 0-4")
    sw.set_defaults(func=_sweep)

    b = sub.add_parser("bench", help="the benchmarks of benchmarks/ (a source checkout): one of them, or all")
    b.add_argument("which", nargs="?", default="all", choices=["all", *BENCHMARKS])
    b.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark script")
    b.set_defaults(func=_bench)

    cf = sub.add_parser(
        "config",
        help="the resolved config of exp=NAME [k=v ...] as YAML, each key's layer (schema, base.yaml, "
        "paper defaults, experiment file, command line) as a comment",
    )
    cf.add_argument("overrides", nargs="*", help="exp=NAME and key=value overrides, as for train")
    cf.set_defaults(func=_config)

    e = sub.add_parser("experiments", help="list the experiments")
    e.set_defaults(func=_experiments)
    return p


def quiet_libraries() -> None:
    """Keep Lightning's info banners (accelerator, tips) and known deprecation noise off the terminal."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    for message in (".*LeafSpec.*", ".*torch.jit.load.*", ".*does not have many workers.*"):
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        if isinstance(getattr(args, "device", None), str):
            check_device(args.device)
        return int(args.func(args))
    except KeyboardInterrupt:  # a run (train) stops on SIGINT itself; a study or sweep waiting on its runs ends here
        print("interrupted (what finished is kept; the same command continues)", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:
        if isinstance(e, RunWriteError) or e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: {write_failure(e)}", file=sys.stderr)
            return EXIT_WRITE
        if e.errno in PATH_ERRORS and e.filename:  # a path given that cannot be one: a directory, under a file, ...
            where = f"{e.filename} -> {e.filename2}" if e.filename2 else str(e.filename)
            print(f"error: {where}: {e.strerror}; give another path", file=sys.stderr)
            return EXIT_CONFIG
        raise


def check_device(device: str) -> None:
    """A ``--device`` this machine has, before any work: a bad name or a missing GPU was a traceback."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"bad value for '--device': '{device}' ({first_line(e)}); use cpu or cuda") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"bad value for '--device': '{device}', but this machine has no CUDA GPU; use --device cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ConfigError(f"bad value for '--device': '{device}', but there are {torch.cuda.device_count()} GPUs")


# errors of a path itself (not of the disk): a directory where a file was asked for and the like
PATH_ERRORS = (errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS)


def write_failure(error: OSError) -> str:
    """One line on a file that could not be written: which, why, the free space, what to do."""
    if isinstance(error, RunWriteError):
        return str(error)
    path = Path(error.filename) if error.filename else None
    what = write_error_line(path, error) if path else f"cannot write a file: {error.strerror or error}"
    return f"{what}; free space and run the command again (resume=auto continues a run)"


if __name__ == "__main__":
    sys.exit(main())
