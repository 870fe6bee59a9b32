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


def _experiments(args: argparse.Namespace) -> int:
    from gan_lightning.config import experiments_dir, known_experiments

    for name in known_experiments():
        first = (experiments_dir() / f"{name}.yaml").read_text().splitlines()
        doc = next((line.lstrip("# ").strip() for line in first if line.startswith("#")), "")
        print(f"{name:18s} {doc}")
    return 0


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
