"""Writes the notebooks of this folder (edit the cells here, then: python notebooks/make_notebooks.py)."""

from pathlib import Path

import nbformat as nbf


def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    n.cells = [nbf.v4.new_markdown_cell(c[1]) if c[0] == "md" else nbf.v4.new_code_cell(c[1]) for c in cells]
    for i, cell in enumerate(n.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating changes nothing unless a cell does
    return n


SETUP = """import os, json
from pathlib import Path

# Run from the repository root, so experiments/ and data/ are found; outputs go to runs/ (or $NB_OUT).
if Path.cwd().name == "notebooks":
    os.chdir(Path.cwd().parent)
SMALL = os.environ.get("NB_SMALL") == "1"  # the test suite runs every notebook on small settings
OUT = Path(os.environ.get("NB_OUT", "runs/notebooks"))
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file() or Path("data/FashionMNIST/raw").is_dir()
print("small settings:", SMALL, "| outputs under", OUT, "| Fashion-MNIST on this machine:", FASHION)"""

quick = nb(
    [
        (
            "md",
            "# gan_lightning quickstart\n\nTrain a toy GAN and a Fashion-MNIST DCGAN briefly, then look at samples, latent interpolations and metrics. Everything here is what `gan-lightning train` does; the notebook calls the same Python functions.",
        ),
        ("code", SETUP),
        (
            "md",
            "## A toy mixture: 8 Gaussians on a ring\n\n`load_config` builds the config exactly as the command line does (`exp=...` plus `key=value` overrides); `train` runs it and returns the run directory and its `summary.json`.",
        ),
        (
            "code",
            """from IPython.display import Image, display
from gan_lightning.config import load_config
from gan_lightning.train import train

toy = train(load_config(["exp=gmm_ring", f"out={OUT / 'gmm_ring'}", "resume=auto", "log.progress=false",
                         f"steps={300 if SMALL else 10000}"]))
print(toy.status, {k: v if v is None else round(v, 4) for k, v in toy.summary["final"].items()})  # None: non-finite
display(Image(filename=sorted((toy.run_dir / "samples").glob("step_*.png"))[-1]))""",
        ),
        (
            "md",
            "The red crosses are the true modes, the circles their 3-std radius: a sample inside a circle counts as high quality (the VEEGAN/PacGAN protocol).",
        ),
        (
            "md",
            "## Fashion-MNIST\n\nThe quickstart experiment: a DCGAN with an EMA of G, shortened. `make train` itself computes no metrics (the first run would wait for the classifier); here they are asked for, in the project's domain classifier's feature space (trained once, cached).",
        ),
        (
            "code",
            """if FASHION:
    fm = train(load_config(["exp=quickstart", f"out={OUT / 'quickstart'}", "resume=auto", "log.progress=false",
                            f"steps={60 if SMALL else 3000}", "log.sample_every=1000" if not SMALL else "log.sample_every=60",
                            "metrics.names=[fid,classes]", f"metrics.n={500 if SMALL else 10000}"]))
    print(fm.status, {k: v if v is None else round(v, 3) for k, v in fm.summary["final"].items()})
    samples = fm.run_dir / "samples"
    display(Image(filename=sorted(samples.glob("step_*.png"))[-1]))
else:
    print("Fashion-MNIST is not installed here (sudo apt-get install dataset-fashion-mnist); skipping the image part.")""",
        ),
        ("md", "Interpolations between fixed pairs of z: straight lines (lerp) and great circles (slerp)."),
        (
            "code",
            """if FASHION:
    for mode in ("lerp", "slerp"):
        print(mode)
        display(Image(filename=sorted(samples.glob(f"interp_{mode}_*.png"))[-1]))""",
        ),
        (
            "md",
            "Metrics over training (`metrics.csv` has one row per logged step; every run also draws them as `curves.png`) and samples from the final checkpoint with `sample`:",
        ),
        (
            "code",
            """import matplotlib.pyplot as plt
from gan_lightning.plots import read_curves
from gan_lightning.sample import sample_data_space

if FASHION:
    curves = read_curves(fm.run_dir)
    fig, (ax_loss, ax_fid) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key in ("loss/d", "loss/g"):
        ax_loss.plot(*curves[key], label=key)
    ax_loss.set_xlabel("G step"); ax_loss.legend(); ax_loss.set_title("losses")
    for key, label in (("fid", "EMA G"), ("raw/fid", "raw G")):
        if key in curves:
            ax_fid.plot(*curves[key], marker="o", label=label)
    ax_fid.set_xlabel("G step"); ax_fid.set_ylabel("FID (classifier features)"); ax_fid.legend(); ax_fid.set_title("FID over training")
    plt.show()
    x, model = sample_data_space(fm.run_dir / "checkpoints" / "last.ckpt", 16, seed=0)
    print("samples:", tuple(x.shape), "in [", float(x.min()), ",", float(x.max()), "]")""",
        ),
    ]
)

study = nb(
    [
        (
            "md",
            '# A study report\n\n"Are GANs Created Equal?" (Lucic et al. 2018): one run per model says little. A *study* is one run per seed; its report gives the spread. This notebook runs a small study of the ring mixture (or loads one), then plots it.',
        ),
        ("code", SETUP),
        (
            "code",
            """from gan_lightning.study import run_study, compare_studies

steps = 200 if SMALL else 6000
base = ["exp=gmm_ring", f"steps={steps}", f"metrics.every={steps // 4}"]
study_a = run_study([*base, "seeds=0-2" if SMALL else "seeds=0-4", f"out={OUT / 'study_r1'}"], echo=False)
study_b = run_study([*base, "model.penalty.weight=0", "seeds=0-2" if SMALL else "seeds=0-4", f"out={OUT / 'study_no_r1'}"], echo=False)
report = json.loads((study_a / "report.json").read_text())
print((study_a / "report.md").read_text())""",
        ),
        (
            "md",
            "Each metric's final value per seed, with a box, and the curves with a band across seeds (the study writes these plots itself as `finals.png` and `curves.png`):",
        ),
        (
            "code",
            """import matplotlib.pyplot as plt
import numpy as np

reports = {"R1 (gamma 1)": report, "no penalty": json.loads((study_b / "report.json").read_text())}
keys = ["modes/covered", "modes/high_quality", "modes/kl"]
fig, axes = plt.subplots(1, len(keys), figsize=(12, 3.2))
for ax, key in zip(axes, keys):
    data = [[np.nan if r["final"].get(key) is None else r["final"][key] for r in rep["per_seed"] if r["status"] == "completed"] for rep in reports.values()]
    ax.boxplot(data, widths=0.5)
    for i, vals in enumerate(data, start=1):
        ax.scatter(np.full(len(vals), i) + np.linspace(-0.06, 0.06, len(vals)), vals, s=14, color="tab:red", zorder=3)
    ax.set_xticks([1, 2], list(reports), fontsize=8)
    ax.set_title(key)
plt.tight_layout()
plt.show()""",
        ),
        (
            "code",
            """from IPython.display import Image, display

display(Image(filename=study_a / "curves.png"))""",
        ),
        (
            "md",
            "Do the two configurations differ? Welch's t-test and the Mann-Whitney U test on the final values, with effect sizes (with 3 seeds a rank test cannot reach p < 0.05: use 5 or more seeds to conclude anything).",
        ),
        (
            "code",
            """cmp = compare_studies(study_a, study_b)
for key in keys:
    m = cmp["metrics"].get(key, {"note": "not finite in any seed of a study"})
    if "note" in m:
        print(key, m["note"])
    else:
        print(f"{key}: {m['mean_a']:.4g} vs {m['mean_b']:.4g}; Welch p={m['welch_p']:.3g}, Mann-Whitney p={m['mann_whitney_p']:.3g}, "
              f"Cohen's d={m['cohens_d']:.3g} -> {'differ' if m['differ'] else 'no significant difference'}")""",
        ),
    ]
)

latent = nb(
    [
        (
            "md",
            "# Latent space: interpolation and arithmetic\n\nTrain (or reuse) a Fashion-MNIST generator, then walk its latent space. The domain classifier labels generated samples, which gives class-mean latent vectors for arithmetic.",
        ),
        ("code", SETUP),
        (
            "code",
            """import torch
from gan_lightning.config import load_config
from gan_lightning.train import train
from gan_lightning.checkpoint import load_model

if FASHION:
    run = train(load_config(["exp=quickstart", f"out={OUT / 'latent'}", "resume=auto", "log.progress=false",
                             f"steps={40 if SMALL else 4000}", "metrics.names=[]", "log.neighbours=false"]))
    model = load_model(run.run_dir / "checkpoints" / "last.ckpt")
else:
    # no image data here: the same walk on a toy generator (2-D outputs), so the code still runs
    run = train(load_config(["exp=gmm_ring", f"out={OUT / 'latent_toy'}", "resume=auto", "log.progress=false", "steps=200"]))
    model = load_model(run.run_dir / "checkpoints" / "last.ckpt")
print(run.status, model.info.name, "z_dim", model.z_dim)""",
        ),
        (
            "md",
            "Linear vs spherical interpolation between the same two z. For a Gaussian prior in many dimensions nearly all mass sits near the sphere of radius sqrt(z_dim); the straight line's midpoint has a norm about 1/sqrt(2) of that, slerp stays on the shell (White 2016).",
        ),
        (
            "code",
            """from gan_lightning.latent import lerp, slerp

g = torch.Generator().manual_seed(3)
z0, z1 = torch.randn(2, model.z_dim, generator=g)
t = torch.linspace(0, 1, 9)
for name, path in (("lerp", lerp(z0, z1, t)), ("slerp", slerp(z0, z1, t))):
    print(name, "norms:", [round(float(v), 2) for v in path.norm(dim=1)])""",
        ),
        (
            "code",
            """import matplotlib.pyplot as plt
from gan_lightning.callbacks.samples import to_unit

if model.info.kind == "image":
    fig, axes = plt.subplots(2, 9, figsize=(12, 3))
    for row, fn in enumerate((lerp, slerp)):
        images = to_unit(model.generate_from(fn(z0, z1, t)))
        for ax, img in zip(axes[row], images):
            ax.imshow(img[0], cmap="gray"); ax.axis("off")
        axes[row][0].set_title(fn.__name__, fontsize=8, loc="left")
    plt.show()""",
        ),
        (
            "md",
            "Arithmetic: label 2,000 samples with the domain classifier, average the z of each class, and move a sample along the difference of two class means (here: towards 'Trouser' and away from 'T-shirt/top').",
        ),
        (
            "code",
            """if model.info.kind == "image":
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.classifier import get_classifier

    clf = get_classifier(build_datamodule(model.cfg), verbose=False)
    z = torch.randn(500 if SMALL else 2000, model.z_dim, generator=g)
    _, probs = clf(to_unit(model.generate_from(z)))
    labels = probs.argmax(1)
    names = model.info.class_names
    means = {c: z[labels == c].mean(0) for c in range(10) if (labels == c).sum() >= 5}
    print("class counts:", {names[c]: int((labels == c).sum()) for c in range(10)})
    if 0 in means and 1 in means:
        direction = means[1] - means[0]
        start = z[labels == 0][0]
        walk = torch.stack([start + a * direction for a in torch.linspace(0, 1.5, 7)])
        images = to_unit(model.generate_from(walk))
        fig, axes = plt.subplots(1, 7, figsize=(10, 1.8))
        for ax, img, a in zip(axes, images, torch.linspace(0, 1.5, 7)):
            ax.imshow(img[0], cmap="gray"); ax.axis("off"); ax.set_title(f"+{a:.2f} d", fontsize=7)
        plt.show()
        _, p_walk = clf(images)
        print("classifier on the walk:", [names[int(i)] for i in p_walk.argmax(1)])""",
        ),
        (
            "md",
            "Learned directions (InterFaceGAN, Shen et al. 2020): fit a linear boundary in z per class (the domain classifier labels the samples), step along its unit normal, and measure how many samples reach the class; the conditional direction projects the other class's normal out. `gan-lightning directions CKPT` does the same from the command line.",
        ),
        (
            "code",
            """if model.info.kind == "image":
    from gan_lightning.directions import domain_classifier, latent_classifier, learn_directions, most_made
    from gan_lightning.registry import ConfigError

    classify = latent_classifier(model, domain_classifier(model))
    zs = torch.randn(1000 if SMALL else 4000, model.z_dim, generator=g)
    classes = most_made(classify(zs))  # the two classes this generator makes most (enough on each side)
    try:
        report = learn_directions(classify, zs, classes, steps=[1.0, 3.0], names=names)["report"]
    except ConfigError as error:  # a generator of a few steps (NB_SMALL) makes too few clear samples of any class
        print("no boundary:", error)
        report = []
    for row in report:
        held = row["boundary"]["held_out_accuracy"]
        print(row["attribute"], "| other projected out:", row["conditioned_on"], "| held-out boundary accuracy", round(held, 3))
        for step in row["steps"]:
            print("   ", {k: round(v, 3) if isinstance(v, float) else v for k, v in step.items()})""",
        ),
        (
            "md",
            "Inversion: the z whose G(z) is closest to a real test image (Adam on the squared error), the measure of how much of the data the generator can reach. `gan-lightning invert CKPT fashion_mnist:test:16` writes the same as JSON and a grid.",
        ),
        (
            "code",
            """if model.info.kind == "image":
    from gan_lightning.inversion import invert_images, model_images

    real, _, what = model_images(model, "fashion_mnist:test:8")
    found = invert_images(model, real, steps=50 if SMALL else 500)
    print(what, {k: round(v, 4) if isinstance(v, float) else v for k, v in found.summary().items()})
    fig, axes = plt.subplots(2, 8, figsize=(10, 2.6))
    for i in range(8):
        axes[0][i].imshow(real[i, 0], cmap="gray"); axes[1][i].imshow(found.reconstructions[i, 0], cmap="gray")
        axes[0][i].axis("off"); axes[1][i].axis("off")
    axes[0][0].set_title("test images", fontsize=8, loc="left"); axes[1][0].set_title("G(z*)", fontsize=8, loc="left")
    plt.show()""",
        ),
    ]
)

lab = nb(
    [
        (
            "md",
            "# The mode-collapse lab\n\nOne seeded study per remedy on the PacGAN/VEEGAN 2-D protocol (`gmm_grid_pacgan_protocol`: G 4x400 ReLU with BatchNorm, D 3x200 maxout units of 5 pieces, z in R^2, Adam with beta1 0.8 at 1e-4 for G and 1e-3 for D, batch 100, 60,000 steps), scored on 2,500 samples: modes covered, share of high-quality samples (within 3 std of a mode) and reverse KL of the mode histogram. `make lab` (or `gan-lightning lab`) runs the whole lab; this notebook shows a finished one from `runs/lab` (or `$LAB_DIR`), else runs a small one.",
        ),
        ("code", SETUP),
        (
            "code",
            """from gan_lightning.lab import run_lab

LAB = Path(os.environ.get("LAB_DIR", "runs/lab"))
if SMALL or not (LAB / "lab.json").is_file():
    methods = "gan,pacgan4" if SMALL else "gan,pacgan4,minibatch_stddev"
    LAB = run_lab(["benchmarks=grid", f"methods={methods}", "seeds=0" if SMALL else "seeds=0-4",
                   f"steps={60 if SMALL else 5000}", f"out={OUT / 'lab'}", "log.progress=false"], echo=False)
result = json.loads((LAB / "lab.json").read_text())
print((LAB / "lab.md").read_text())""",
        ),
        ("md", "Each method's modes and high-quality share per seed: collapse shows as fewer modes or a low share."),
        (
            "code",
            """import matplotlib.pyplot as plt
import numpy as np

rows = [r for r in result["rows"] if r["seeds"] > 0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, key, label in zip(axes, ["modes/covered", "modes/high_quality"], ["modes covered", "high-quality share"]):
    for i, r in enumerate(rows):
        report = json.loads((LAB / r["benchmark"] / r["method"] / "report.json").read_text())
        vals = [s["final"].get(key) for s in report["per_seed"] if s["status"] == "completed"]
        vals = [np.nan if v is None else v for v in vals]
        ax.scatter(np.full(len(vals), i), vals, alpha=0.7)
        ax.plot([i - 0.25, i + 0.25], [np.nanmean(vals)] * 2, color="k")
    ax.set_xticks(range(len(rows)), [f"{r['benchmark']}\\n{r['method']}" for r in rows], fontsize=7)
    ax.set_ylabel(label)
plt.tight_layout()
plt.show()""",
        ),
        (
            "md",
            "Samples of seed 0 of each method at the end of training (the scatter plot each run writes), collapse beside recovery:",
        ),
        (
            "code",
            """import matplotlib.image as mpimg

fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.2), squeeze=False)
for ax, r in zip(axes[0], rows):
    pngs = sorted((LAB / r["benchmark"] / r["method"]).glob("seed_*/samples/step_*.png"))
    if pngs:
        ax.imshow(mpimg.imread(pngs[-1]))
    ax.set_title(f"{r['benchmark']}: {r['method']}", fontsize=8)
    ax.axis("off")
plt.show()""",
        ),
    ]
)

for name, n in (
    ("01_quickstart.ipynb", quick),
    ("02_study_report.ipynb", study),
    ("03_latent_space.ipynb", latent),
    ("04_mode_collapse_lab.ipynb", lab),
):
    nbf.write(n, Path(__file__).resolve().parent / name)
print("ok")
