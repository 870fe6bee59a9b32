"""CelebA DataModule on a synthetic tree: layouts, DCGAN crop, partitions, attributes, cache, errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.data import MissingDataError, build_datamodule
from gan_lightning.registry import ConfigError
from tests.helpers import run


def celeba(*args: str):  # type: ignore[no-untyped-def]
    return build_datamodule(load_config(["exp=dcgan_celeba", *args]))


def test_torchvision_layout_partitions_and_dcgan_crop(celeba_root) -> None:
    (celeba_root.parent / "data").mkdir(exist_ok=True)
    shutil.move(str(celeba_root), "data/celeba")  # data_dir/celeba, torchvision's layout
    dm = celeba("data.image_size=16")
    train, labels = dm.split(train=True)
    test, _ = dm.split(train=False)
    assert train.shape == (20, 3, 16, 16) and test.shape == (5, 3, 16, 16) and train.dtype == torch.uint8
    assert (labels == -1).all()
    # the centred 108-px square is white: after the DCGAN crop every pixel is (nearly) white
    assert train.float().min() > 240
    wide, _ = celeba("data.image_size=16", "data.crop=0").split(train=True)  # 178-px square
    assert wide[:, :, :, 0].float().mean() < 60 and wide[:, :, 8, 8].float().min() > 240


def test_attribute_labels_and_a_conditional_run(celeba_root) -> None:
    dm = celeba(f"data.root={celeba_root}", "data.image_size=16", "data.attribute=Male")
    _, labels = dm.split(train=True)
    assert labels.tolist() == [i % 2 for i in range(20)]
    assert dm.info.num_classes == 2 and dm.info.class_names == ["not Male", "Male"]
    result = run(
        "exp=dcgan_celeba",
        "model=cgan",
        f"data.root={celeba_root}",
        "data.image_size=16",
        "data.attribute=Male",
        "metrics.names=[]",
        "steps=2",
    )
    assert result.status == "completed"
    with pytest.raises(ConfigError, match="did you mean Male"):
        celeba(f"data.root={celeba_root}", "data.attribute=Mal").split(train=True)


def test_folder_mode_without_lists_and_max_images(celeba_root) -> None:
    (celeba_root / "list_eval_partition.txt").unlink()
    dm = celeba(f"data.root={celeba_root}", "data.image_size=8", "data.max_images=7")
    images, _ = dm.split(train=True)
    assert images.shape == (7, 3, 8, 8)
    with pytest.raises(MissingDataError, match="list_eval_partition"):
        dm.split(train=False)


def test_decoded_images_are_cached_and_reused(celeba_root) -> None:
    dm = celeba(f"data.root={celeba_root}", "data.image_size=8")
    first, _ = dm.split(train=True)
    cached = list((celeba_root / "cache").glob("*.npy"))
    assert len(cached) == 1
    import gan_lightning.data.celeba as celeba_module

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    with pytest.MonkeyPatch.context() as mp:  # the cache is read, the jpgs are not decoded
        mp.setattr(celeba_module, "open_image", no_decoding)
        again, _ = celeba(f"data.root={celeba_root}", "data.image_size=8").split(train=True)
    assert torch.equal(first, again)


def test_replaced_images_are_decoded_again(celeba_root) -> None:
    """The cache was keyed by file names only: images replaced under the same names (another crop of CelebA)
    were read from the old decoded arrays."""
    first, _ = celeba(f"data.root={celeba_root}", "data.image_size=8").split(train=True)
    from PIL import Image

    for f in (celeba_root / "img_align_celeba").glob("*.jpg"):
        Image.new("RGB", (178, 218)).save(f)  # black faces under the same names
    again, _ = celeba(f"data.root={celeba_root}", "data.image_size=8").split(train=True)
    assert first.float().max() > 200 and again.float().max() < 10


def test_missing_celeba_says_where_to_put_it(tmp_path) -> None:
    with pytest.raises(MissingDataError, match=r"img_align_celeba.*list_eval_partition"):
        celeba(f"data.data_dir={tmp_path / 'nowhere'}").prepare()


def test_no_domain_classifier_for_celeba(celeba_root) -> None:
    with pytest.raises(ConfigError, match="features=inception"):
        run(
            "exp=dcgan_celeba",
            f"data.root={celeba_root}",
            "data.image_size=16",
            "metrics.features=classifier",
            "steps=1",
        )


def test_a_run_on_a_folder_without_a_test_split_finishes_with_its_neighbour_report(celeba_root) -> None:
    """CelebA's folder mode without list_eval_partition.txt trains on every image (no test split). The
    neighbours report at the last step read the test split, so the finished run ended `failed`, exit 2."""
    (celeba_root / "list_eval_partition.txt").unlink()
    result = run("exp=dcgan_celeba", f"data.root={celeba_root}", "data.image_size=16", "metrics.n=16", "steps=2")
    assert result.status == "completed", result.summary.get("error")
    final = result.summary["final"]
    assert 0 <= final["nn/share"] <= 1 and "nn/share_test" not in final, final
