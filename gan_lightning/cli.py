"""Command line: ``gan-lightning {train,sample,experiments} ...`` (also ``python -m gan_lightning``)."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from gan_lightning.registry import ConfigError

EXIT_CODES = {"completed": 0, "failed": 1, "diverged": 3, "interrupted": 130}


def _train(args: argparse.Namespace) -> int:
    from gan_lightning.config import load_config
    from gan_lightning.train import train

    cfg = load_config(args.overrides)
    result = train(cfg)
    if result.summary:
        s = result.summary
        line = f"{s['status']}: {s['steps_done']}/{s['steps']} G steps"
        if s.get("diverged_at") is not None:
            line += f", a loss became non-finite at step {s['diverged_at']}; last good checkpoint kept"
        if s.get("final"):
            line += " | " + ", ".join(f"{k}={v:.4g}" for k, v in s["final"].items() if k != "step")
        print(line)
        print(f"run directory: {result.run_dir}")
    return EXIT_CODES.get(result.status, 1)


def _sample(args: argparse.Namespace) -> int:
    from gan_lightning.sample import sample_to_file

    path = sample_to_file(args.ckpt, args.n, args.out, seed=args.seed, device=args.device, raw=args.raw)
    print(f"wrote {args.n} samples to {path}")
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
    )
    for key, value in result["values"].items():
        print(f"{key:24s} {value:.6g}")
    print(f"written to {result['written_to']}")
    return 0


def _fid(args: argparse.Namespace) -> int:
    from gan_lightning.evaluate import fid_between

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


def _train_evaluator(args: argparse.Namespace) -> int:
    from gan_lightning.config import load_config
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.classifier import classifier_path, fingerprint, save_classifier, train_classifier

    cfg = load_config(args.overrides, exp="quickstart")
    dm = build_datamodule(cfg)
    train, test = dm.split(train=True, size=28), dm.split(train=False, size=28)
    net, meta = train_classifier(train, test, dm.info.name, epochs=args.epochs, device=args.device)
    path = save_classifier(net, meta, classifier_path(dm.info.name, fingerprint(*train)))
    print(f"{dm.info.name}: test accuracy {meta['test_accuracy']:.4f} ({meta['test_size']} images); saved {path}")
    return 0


def _experiments(args: argparse.Namespace) -> int:
    from gan_lightning.config import experiments_dir, known_experiments

    for name in known_experiments():
        first = (experiments_dir() / f"{name}.yaml").read_text().splitlines()
        doc = next((line.lstrip("# ").strip() for line in first if line.startswith("#")), "")
        print(f"{name:18s} {doc}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gan-lightning", description="GAN experiments on PyTorch Lightning")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train: gan-lightning train exp=NAME [seed=S] [steps=N] [out=DIR] [resume=PATH|auto] [k=v ...]"
    )
    t.add_argument("overrides", nargs="*", help="key=value config overrides")
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="write N samples of a checkpoint as .npy (data space) or a .png grid")
    s.add_argument("ckpt")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--out", required=True, help="FILE.npy or FILE.png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--raw", action="store_true", help="sample the raw generator, not its EMA")
    s.set_defaults(func=_sample)

    ev = sub.add_parser("evaluate", help="metrics of a checkpoint, printed and written as JSON")
    ev.add_argument("ckpt")
    ev.add_argument(
        "--metrics", default="", help="comma list of fid,kid,prdc,is,classes,modes (default: all that apply)"
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
    ev.add_argument("--out", default=None, help="JSON file (default: <run>/evaluate-<ckpt>.json)")
    ev.set_defaults(func=_evaluate)

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

    te = sub.add_parser("train-evaluator", help="train and cache the domain classifier: data=mnist|fashion_mnist")
    te.add_argument("overrides", nargs="*", help="data=NAME and data.* overrides")
    te.add_argument("--epochs", type=int, default=6)
    te.add_argument("--device", default="cuda" if _cuda() else "cpu")
    te.set_defaults(func=_train_evaluator)

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
        return int(args.func(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
