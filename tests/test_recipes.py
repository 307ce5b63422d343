"""Recipes: a tiny synthetic dataset in each bundled layout, built by name and by path.

Expected labels and instances are recomputed here from the files the obvious
way, following the rules documented in maskprep.ingest and maskprep.recipes.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image
from skimage.measure import label as cc_label

from maskprep import (
    BuildConfig,
    DataError,
    border_weights_reference,
    build_weights,
    discover,
    make_sample,
    open_shards,
    reweight,
    verify_store,
)
from maskprep.cli import main
from maskprep.recipes import Recipe, RecipeError, available_recipes, load_recipe
from maskprep.weighting import ClassWeightConfig

pycocotools_mask = pytest.importorskip("pycocotools.mask")

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"
H, W = 32, 48
VOID = 255

CAMVID_CODES = [
    *("Animal", "Archway", "Bicyclist", "Bridge", "Building", "Car", "CartLuggagePram"),
    *("Child", "Column_Pole", "Fence", "LaneMkgsDriv", "LaneMkgsNonDriv", "Misc_Text"),
    *("MotorcycleScooter", "OtherMoving", "ParkingBlock", "Pedestrian", "Road"),
    *("RoadShoulder", "Sidewalk", "SignSymbol", "Sky", "SUVPickupTruck", "TrafficCone"),
    *("TrafficLight", "Train", "Tree", "Truck_Bus", "Tunnel", "VegetationMisc", "Void", "Wall"),
]
CAMVID_THINGS = [
    *("Animal", "Bicyclist", "Car", "CartLuggagePram", "Child", "MotorcycleScooter"),
    *("OtherMoving", "Pedestrian", "SUVPickupTruck", "Train", "Truck_Bus"),
]
# The official Cityscapes label table: label id -> train id (255 = void).
CITYSCAPES_TRAIN_ID = {
    **dict.fromkeys([0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30], 255),
    **{7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10},
    **{24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18},
}
CITYSCAPES_NAMES = [
    *("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light"),
    *("traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck"),
    *("bus", "train", "motorcycle", "bicycle"),
]


@dataclass
class Synthetic:
    """A generated dataset and what its store must hold."""

    root: Path
    class_names: list[str]
    labels: dict[str, np.ndarray]
    instances: dict[str, np.ndarray]
    split: dict[str, str]
    images: dict[str, np.ndarray] | None = None
    spacing: tuple[float, ...] | None = None


def _rgb(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _blocks(values: list[int]) -> np.ndarray:
    """A 4 x 8 grid of 8 x 6 blocks holding the 32 values in raster order."""
    assert len(values) == 32
    return np.kron(np.asarray(values).reshape(4, 8), np.ones((8, 6), dtype=np.int64))


def _components(labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """Documented numbering: lowest class first, raster order, full connectivity."""
    out = np.zeros(labels.shape, np.int32)
    offset = 0
    for c in sorted(classes):
        comp = cc_label(labels == c, connectivity=labels.ndim)
        out[comp > 0] = comp[comp > 0] + offset
        offset += int(comp.max())
    return out


def make_camvid(root: Path) -> Synthetic:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "codes.txt").write_text("\n".join(CAMVID_CODES) + "\n")
    stems = ["0001TP_006690", "0001TP_006720", "0016E5_07959"]
    (root / "valid.txt").write_text("0016E5_07959.png\n")
    names = [n for n in CAMVID_CODES if n != "Void"]
    things = [names.index(n) for n in CAMVID_THINGS]
    out = Synthetic(root, names, {}, {}, {})
    for stem in stems:
        raw = _blocks([int(v) for v in rng.permutation(32)])
        # a second, separate Car inside the Sky block
        sky = np.argwhere(raw == CAMVID_CODES.index("Sky"))[0]
        raw[sky[0] + 3 : sky[0] + 5, sky[1] + 2 : sky[1] + 4] = CAMVID_CODES.index("Car")
        Image.fromarray(_rgb(rng)).save(root / "images" / f"{stem}.png")
        Image.fromarray(raw.astype(np.uint8)).save(root / "labels" / f"{stem}_P.png")
        void_code = CAMVID_CODES.index("Void")
        labels = np.where(raw == void_code, VOID, np.where(raw > void_code, raw - 1, raw))
        out.labels[stem] = labels
        out.instances[stem] = _components(labels, things)
        out.split[stem] = "valid" if stem == stems[-1] else "train"
    return out


def make_partial(root: Path) -> Synthetic:
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "valid.txt").write_text("c\n")
    out = Synthetic(root, ["background", "object"], {}, {}, {})
    for k, stem in enumerate(["a", "b", "c"]):
        raw = np.ones((H, W), np.uint8)  # 1 = background
        raw[:, 40:] = 0  # a band nobody annotated
        raw[4:10, 4:10] = 2
        raw[10:16, 10:16] = 2  # touches the first one diagonally: one instance
        raw[20:28, 20 + k : 30 + k] = 2
        Image.fromarray(_rgb(rng)).save(root / "images" / f"{stem}.png")
        Image.fromarray(raw).save(root / "masks" / f"{stem}.png")
        labels = np.select([raw == 0, raw == 1], [VOID, 0], 1)
        out.labels[stem] = labels
        inst = _components(labels, [1])
        assert inst.max() == 2
        out.instances[stem] = inst
        out.split[stem] = "valid" if stem == "c" else "train"
    return out


def make_cityscapes(root: Path) -> Synthetic:
    rng = np.random.default_rng(2)
    samples = [
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "aachen", "aachen_000001_000019"),
        ("train", "bochum", "bochum_000000_000313"),
        ("val", "frankfurt", "frankfurt_000000_000294"),
        ("test", "berlin", "berlin_000000_000019"),  # left out
    ]
    out = Synthetic(root, CITYSCAPES_NAMES, {}, {}, {})
    for k, (split, city, stem) in enumerate(samples):
        ids = np.roll(np.arange(34), -2 * k)[:32]
        raw = _blocks([int(v) for v in ids])
        for j, lid in enumerate(ids):
            if lid in (24, 25, 26, 27, 28, 29, 31, 32, 33) and not (k == 1 and lid == 26):
                # an instance: label id * 1000 + k, k from 0 (26000 is a car)
                raw[raw == lid] = lid * 1000 + (0 if lid == 26 else j % 3)
        car = np.argwhere(raw // 1000 == 26)
        if k == 0:  # two touching cars in one block
            r, c = car[0]
            raw[r : r + 8, c + 3 : c + 6] = 26999
        image_dir = root / "leftImg8bit" / split / city
        label_dir = root / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(rng)).save(image_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(raw.astype(np.uint16)).save(label_dir / f"{stem}_gtFine_instanceIds.png")
        if split == "test":
            continue
        label_id = np.where(raw >= 1000, raw // 1000, raw)
        labels = np.vectorize(CITYSCAPES_TRAIN_ID.__getitem__)(label_id)
        out.labels[stem] = labels
        out.instances[stem] = np.where((raw >= 1000) & (labels != VOID), raw, 0)
        out.split[stem] = "train" if split == "train" else "valid"
    assert (out.instances["aachen_000000_000019"] == 26999).any()
    assert (out.instances["aachen_000000_000019"] == 26000).any()
    return out


def _poly_mask(polys: list[list[float]]) -> np.ndarray:
    rles = pycocotools_mask.frPyObjects(polys, H, W)
    with warnings.catch_warnings():
        # pycocotools' decode trips NumPy 2's __array__(copy=) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return pycocotools_mask.decode(pycocotools_mask.merge(rles)).astype(bool)


def _rle(mask: np.ndarray, compressed: bool) -> dict[str, object]:
    if compressed:
        enc = pycocotools_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [H, W], "counts": enc["counts"].decode("ascii")}
    # uncompressed: run lengths in column-major order, starting with zeros
    flat = mask.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0]:
        runs = [0, *runs]
    return {"size": [H, W], "counts": runs}


def make_coco(root: Path) -> Synthetic:
    rng = np.random.default_rng(3)
    cats = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 18, "name": "dog", "supercategory": "animal"},
    ]
    cls = {1: 1, 3: 2, 18: 3}
    box = np.zeros((H, W), bool)
    box[10:26, 15:36] = True
    crowd = np.zeros((H, W), bool)
    crowd[26:32, 0:11] = True
    overlap_crowd = np.zeros((H, W), bool)
    overlap_crowd[0:12, 0:12] = True
    # (file, split, gray, [(ann id, category, iscrowd, segmentation, mask)])
    images = [
        (
            "000000000001.jpg",
            "train2017",
            False,
            [
                (11, 3, 0, _rle(box, compressed=True), box),  # listed first, painted second
                (
                    10,
                    1,
                    0,
                    [[4, 4, 20, 4, 20, 20, 4, 20]],
                    _poly_mask([[4, 4, 20, 4, 20, 20, 4, 20]]),
                ),
                (12, 18, 1, _rle(crowd, compressed=False), crowd),
            ],
        ),
        (
            "000000000002.jpg",
            "train2017",
            True,
            [
                (19, 3, 0, [[1, 1, 2, 2]], np.zeros((H, W), bool)),  # < 3 points: no area
                (
                    20,
                    18,
                    0,
                    [[2, 2, 10, 2, 10, 10], [30, 20, 40, 20, 40, 30, 30, 30]],
                    _poly_mask([[2, 2, 10, 2, 10, 10], [30, 20, 40, 20, 40, 30, 30, 30]]),
                ),
                (21, 1, 1, _rle(overlap_crowd, compressed=False), overlap_crowd),
            ],
        ),
        ("000000000003.jpg", "train2017", False, []),
        (
            "000000000004.jpg",
            "val2017",
            False,
            [
                (30, 1, 0, [[5, 5, 25, 5, 25, 25]], _poly_mask([[5, 5, 25, 5, 25, 25]])),
            ],
        ),
    ]
    (root / "annotations").mkdir(parents=True)
    out = Synthetic(root, ["background", "person", "car", "dog"], {}, {}, {}, {})
    jsons: dict[str, dict[str, list[object]]] = {}
    for image_id, (name, split, gray, anns) in enumerate(images, start=1):
        (root / split).mkdir(exist_ok=True)
        pixels = _rgb(rng)
        img = Image.fromarray(pixels).convert("L") if gray else Image.fromarray(pixels)
        img.save(root / split / name, quality=95)
        with Image.open(root / split / name) as im:
            assert im.mode == ("L" if gray else "RGB")
            assert out.images is not None
            out.images[Path(name).stem] = np.asarray(im.convert("RGB"))
        js = jsons.setdefault(split, {"images": [], "annotations": [], "categories": cats})
        js["images"].append({"id": image_id, "file_name": name, "height": H, "width": W})
        labels = np.zeros((H, W), np.int64)
        inst = np.zeros((H, W), np.int64)
        rank = 0
        for _, cid, iscrowd, _, mask in sorted(anns, key=lambda a: a[0]):
            if iscrowd:
                labels[mask], inst[mask] = VOID, 0
            else:
                rank += 1
                labels[mask], inst[mask] = cls[cid], rank
        for aid, cid, iscrowd, seg, _ in anns:
            js["annotations"].append(
                {
                    "id": aid,
                    "image_id": image_id,
                    "category_id": cid,
                    "iscrowd": iscrowd,
                    "segmentation": seg,
                    "area": 1.0,
                    "bbox": [0, 0, 1, 1],
                }
            )
        stem = Path(name).stem
        out.labels[stem] = labels
        out.instances[stem] = inst
        out.split[stem] = "train" if split == "train2017" else "valid"
    for split, js in jsons.items():
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(js))
    # the documented rules at work
    first = out.labels["000000000001"]
    assert first[15, 17] == 2 and first[5, 5] == 1 and first[28, 5] == VOID
    assert out.labels["000000000002"][5, 5] == VOID
    return out


def make_dsb2018(root: Path) -> Synthetic:
    data = make_sample(root, n_images=3, size=(H, W), layout="dsb2018", seed=4)
    out = Synthetic(data, ["background", "object"], {}, {}, {})
    for d in sorted(p for p in data.iterdir() if p.is_dir()):
        inst = np.zeros((H, W), np.int64)
        for k, m in enumerate(sorted((d / "masks").glob("*.png")), start=1):
            inst[np.asarray(Image.open(m)) > 0] = k
        out.instances[d.name] = inst
        out.labels[d.name] = (inst > 0).astype(np.int64)
        out.split[d.name] = "train"
    return out


def make_cremi(root: Path) -> Synthetic:
    """Two CREMI-style HDF5 volumes: uint64 ids, 2**64-1 "no label", valid.txt."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(7)
    root.mkdir(parents=True)
    out = Synthetic(root, ["background", "object"], {}, {}, {}, {}, (40.0, 4.0, 4.0))
    for k, name in enumerate(["sample_A", "sample_B"]):
        ids = np.zeros((3, H, W), np.uint64)
        ids[:, 4:14, 5:20] = 12 + k
        ids[:, 14:26, 5:20] = 2**31 - 1  # touching, the largest id that fits int32
        ids[1, 26:30, 30:40] = np.uint64(2**64 - 1)  # CREMI's "no label": void
        raw = rng.integers(0, 256, ids.shape, dtype=np.uint8)
        with h5py.File(root / f"{name}.hdf", "w") as f:
            f["volumes/raw"] = raw
            f.create_dataset("volumes/labels/neuron_ids", data=ids, chunks=(1, 16, 16))
            f["volumes/labels/neuron_ids"].attrs["resolution"] = (40.0, 4.0, 4.0)
        void = ids == np.uint64(2**64 - 1)
        inst = np.where(void, 0, ids).astype(np.int64)
        out.instances[name] = inst
        out.labels[name] = np.where(void, VOID, inst > 0).astype(np.int64)
        out.split[name] = "valid" if name == "sample_B" else "train"
        assert out.images is not None
        out.images[name] = raw
    (root / "valid.txt").write_text("sample_B.hdf\n")
    return out


MAKERS: dict[str, Callable[[Path], Synthetic]] = {
    "camvid": make_camvid,
    "cremi": make_cremi,
    "partial": make_partial,
    "cityscapes": make_cityscapes,
    "coco": make_coco,
    "dsb2018": make_dsb2018,
}


def _digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def _build(data: Path, out: Path, recipe: str, *extra: str) -> Result:
    result = _cli(
        "build-weights",
        str(data),
        "-o",
        str(out),
        "--recipe",
        recipe,
        "--scheduler",
        "sync",
        "-q",
        *extra,
    )
    assert result.exit_code == 0, result.output
    return result


def _check_store(out: Path, exp: Synthetic) -> None:
    s = open_shards(out)
    c = len(exp.class_names)
    assert s.class_names == exp.class_names
    assert s.void_label == VOID
    assert s.sample_ids == sorted(exp.labels)
    assert list(s.metadata["split"]) == [exp.split[i] for i in s.sample_ids]
    counts = np.zeros(c, np.int64)
    for i, sid in enumerate(s.sample_ids):
        got = s[i]
        labels, inst = exp.labels[sid], exp.instances[sid]
        np.testing.assert_array_equal(got["labels"], labels, err_msg=sid)
        np.testing.assert_array_equal(got["instances"], inst, err_msg=sid)
        if exp.images is not None:
            np.testing.assert_array_equal(got["image"], exp.images[sid], err_msg=sid)
        void = labels == VOID
        border = border_weights_reference(
            inst.astype(np.int32), w0=10.0, sigma=5.0, spacing=exp.spacing
        )
        class_w = np.asarray(s.class_weights)[np.where(void, 0, labels)]
        expected_w = np.where(void, 0.0, class_w + border)
        np.testing.assert_allclose(got["weights"], expected_w, rtol=0, atol=1e-4, err_msg=sid)
        if exp.split[sid] == "train":
            counts += np.bincount(labels[~void].ravel(), minlength=c)
    np.testing.assert_array_equal(s.class_counts, counts)
    assert (counts > 0).all()
    report = verify_store(out)
    assert report.ok, report.problems


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_recipe_builds_by_name_and_by_path(tmp_path: Path, name: str) -> None:
    exp = MAKERS[name](tmp_path / name)
    by_name, by_path = tmp_path / "name.zarr", tmp_path / "path.zarr"
    result = _build(exp.root, by_name, name)
    assert "Wrote" in result.output
    # by path, on another scheduler
    _build(exp.root, by_path, str(PIPELINES / f"{name}.toml"), "--scheduler", "threads")
    assert _digest(by_name) == _digest(by_path)
    # what process and cluster workers receive survives pickling
    config = BuildConfig.from_recipe(name, exp.root)
    samples = discover(exp.root, source=config.source).samples if config.source else ()
    assert pickle.loads(pickle.dumps((config, samples))) == (config, samples)
    _check_store(by_name, exp)


def test_dsb2018_recipe_equals_the_plain_layout(tmp_path: Path) -> None:
    data = make_dsb2018(tmp_path / "dsb").root
    _build(data, tmp_path / "recipe.zarr", "dsb2018")
    plain = _cli(
        "build-weights",
        str(data),
        "-o",
        str(tmp_path / "plain.zarr"),
        "--layout",
        "dsb2018",
        "--scheduler",
        "sync",
        "-q",
    )
    assert plain.exit_code == 0, plain.output
    assert _digest(tmp_path / "recipe.zarr") == _digest(tmp_path / "plain.zarr")


def test_recipe_defaults_and_cli_overrides(tmp_path: Path) -> None:
    exp = make_camvid(tmp_path / "camvid")
    _build(exp.root, tmp_path / "a.zarr", "camvid")
    meta = open_shards(tmp_path / "a.zarr").metadata
    assert meta["class_weight_scheme"] == "median-frequency"  # the recipe's [build] default
    assert meta["layout"] == "semantic"
    assert meta["config"]["source"]["label_map"][30] == [31, 30]  # Wall moves down past Void
    _build(
        exp.root, tmp_path / "b.zarr", "camvid", "--class-weights-max", "3", "--void-label", "200"
    )
    s = open_shards(tmp_path / "b.zarr")
    assert s.metadata["class_weight_config"]["scheme"] == "median-frequency"
    assert s.metadata["class_weight_config"]["max_weight"] == 3.0
    assert s.void_label == 200
    labels = s[0]["labels"]
    np.testing.assert_array_equal(labels == 200, exp.labels[s.sample_ids[0]] == VOID)
    _build(exp.root, tmp_path / "c.zarr", "camvid", "--class-weights", "balanced")
    assert open_shards(tmp_path / "c.zarr").metadata["class_weight_scheme"] == "balanced"


def test_unlabeled_value_override_and_conflict(tmp_path: Path) -> None:
    exp = make_partial(tmp_path / "p")
    for mask in (exp.root / "masks").iterdir():  # "not annotated" is 9 in this dataset
        raw = np.asarray(Image.open(mask))
        Image.fromarray(np.where(raw == 0, 9, raw).astype(np.uint8)).save(mask)
    assert "masks/a.png: mask value 9" in _build_fails(exp.root, tmp_path / "o.zarr", "partial")
    _build(exp.root, tmp_path / "o.zarr", "partial", "--unlabeled-value", "9")
    s = open_shards(tmp_path / "o.zarr")
    assert s.metadata["config"]["unlabeled_value"] == 9
    for i, sid in enumerate(s.sample_ids):
        np.testing.assert_array_equal(s[i]["labels"], exp.labels[sid])
    conflict = _cli(
        *("build-weights", str(exp.root), "-o", str(tmp_path / "x.zarr")),
        *("--recipe", "partial", "--unlabeled-value", "1"),
    )
    assert conflict.exit_code == 2
    assert "--unlabeled-value 1 is also the source value of class 'background'" in conflict.output


def test_library_from_recipe_equals_cli(tmp_path: Path) -> None:
    exp = make_partial(tmp_path / "p")
    _build(exp.root, tmp_path / "cli.zarr", "partial")
    config = BuildConfig.from_recipe("partial", exp.root)
    assert BuildConfig.from_dict(config.to_dict()) == config
    build_weights(exp.root, tmp_path / "lib.zarr", config, scheduler="sync")
    assert _digest(tmp_path / "lib.zarr") == _digest(tmp_path / "cli.zarr")
    # re-derived from the store alone
    reweight(tmp_path / "lib.zarr", ClassWeightConfig(scheme="none"), scheduler="sync")
    assert verify_store(tmp_path / "lib.zarr").ok


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_bundled_recipes_round_trip(name: str) -> None:
    recipe = load_recipe(name)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert load_recipe(PIPELINES / f"{name}.toml") == recipe
    assert set(available_recipes()) == set(MAKERS)


def test_cityscapes_recipe_is_the_official_table() -> None:
    recipe = load_recipe("cityscapes")
    assert recipe.class_names == tuple(CITYSCAPES_NAMES)
    mapped = {k: v for k, v in recipe.label_map}
    assert {k: mapped.get(k, 255) for k in range(34)} == CITYSCAPES_TRAIN_ID
    assert set(recipe.void_values) == {k for k, v in CITYSCAPES_TRAIN_ID.items() if v == 255}


def test_unknown_recipe_name_lists_the_bundled_ones(tmp_path: Path) -> None:
    result = _cli(
        "build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr"), "--recipe", "camvd"
    )
    assert result.exit_code == 2
    assert "unknown recipe 'camvd'" in result.output
    assert "camvid, cityscapes, coco, cremi, dsb2018, partial" in result.output


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "mine.toml"
    bad.write_text((PIPELINES / "partial.toml").read_text().replace("labels =", "lables ="))
    with pytest.raises(
        RecipeError, match=r"mine\.toml: unknown key 'lables' \(did you mean 'labels'"
    ):
        load_recipe(bad)
    result = _cli(
        "build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr"), "--recipe", str(bad)
    )
    assert result.exit_code == 1
    assert "mine.toml: unknown key 'lables'" in result.output
    build = tmp_path / "build.toml"
    build.write_text('layout = "dsb2018"\n[build]\nsigmaa = 3\n')
    with pytest.raises(RecipeError, match=r"build\.toml: unknown key \[build\] 'sigmaa'"):
        load_recipe(build)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        'layout = "coco"\nimages = "{file_name}"\nannotations = "a.json"\n'
        'codes_file = "codes.txt"\n'
    )
    with pytest.raises(RecipeError, match=r"wrong\.toml: key 'codes_file' does not apply"):
        load_recipe(wrong)


def _one_partial_mask(root: Path, value: int) -> Path:
    data = make_partial(root).root
    mask = np.asarray(Image.open(data / "masks" / "b.png")).copy()
    mask[0, 0] = value
    Image.fromarray(mask).save(data / "masks" / "b.png")
    return data


def test_value_colliding_with_void_names_the_file(tmp_path: Path) -> None:
    data = _one_partial_mask(tmp_path / "p", 255)
    result = _build_fails(data, tmp_path / "o.zarr", "partial")
    assert "masks/b.png: mask value 255 (1 pixel(s)) collides with the void label 255" in result


def test_undeclared_class_value_names_the_file_and_value(tmp_path: Path) -> None:
    data = _one_partial_mask(tmp_path / "p", 7)
    result = _build_fails(data, tmp_path / "o.zarr", "partial")
    assert "masks/b.png: mask value 7 (1 pixel(s)) is not a declared class value" in result
    with pytest.raises(DataError, match=r"b\.png: mask value 7"):
        build_weights(
            data, tmp_path / "x.zarr", BuildConfig.from_recipe("partial", data), scheduler="sync"
        )


def test_cityscapes_undeclared_label_id(tmp_path: Path) -> None:
    exp = make_cityscapes(tmp_path / "cs")
    path = next((exp.root / "gtFine" / "val").rglob("*.png"))
    raw = np.asarray(Image.open(path)).copy()
    raw[0, 0] = 40
    Image.fromarray(raw).save(path)
    result = _build_fails(exp.root, tmp_path / "o.zarr", "cityscapes")
    assert f"{path.name}: label id 40 (1 pixel(s)) is not a declared class value" in result


def test_coco_annotation_with_unknown_category(tmp_path: Path) -> None:
    exp = make_coco(tmp_path / "coco")
    path = exp.root / "annotations" / "instances_val2017.json"
    js = json.loads(path.read_text())
    js["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(js))
    result = _build_fails(exp.root, tmp_path / "o.zarr", "coco")
    assert "instances_val2017.json: annotation 30 has category_id 99" in result


def test_missing_mask_and_layout_conflict(tmp_path: Path) -> None:
    exp = make_camvid(tmp_path / "camvid")
    (exp.root / "labels" / "0001TP_006720_P.png").unlink()
    result = _build_fails(exp.root, tmp_path / "o.zarr", "camvid")
    assert "1 image(s) have no mask: images/0001TP_006720.png" in result
    conflict = _cli(
        "build-weights",
        str(exp.root),
        "-o",
        str(tmp_path / "o.zarr"),
        "--recipe",
        "camvid",
        "--layout",
        "instances",
    )
    assert conflict.exit_code == 2
    assert "conflicts with the semantic layout" in conflict.output


def _build_fails(data: Path, out: Path, recipe: str) -> str:
    result = _cli(
        "build-weights", str(data), "-o", str(out), "--recipe", recipe, "--scheduler", "sync", "-q"
    )
    assert result.exit_code == 1, result.output
    assert not out.exists()
    return result.output


def test_preview_of_a_recipe_dataset_equals_its_build(tmp_path: Path) -> None:
    from maskprep.tools.preview import load_dataset_preview

    syn = make_camvid(tmp_path / "camvid")
    store = tmp_path / "camvid.zarr"
    r = CliRunner().invoke(
        main, ["build-weights", str(syn.root), "-o", str(store), "--recipe", "camvid", "-q"]
    )
    assert r.exit_code == 0, r.output
    config = load_recipe("camvid").build_config(syn.root)
    data = load_dataset_preview(syn.root, samples=3, config=config)
    shards = open_shards(store)
    assert data.class_counts == tuple(shards.class_counts)
    for s in data.samples:
        built = shards[shards.sample_ids.index(s.sample_id)]
        for name in ("image", "labels", "instances", "weights"):
            np.testing.assert_array_equal(s.arrays[name], built[name], err_msg=name)
    r = CliRunner().invoke(
        main, ["preview", str(syn.root), "-o", str(tmp_path / "png"), "--recipe", "camvid"]
    )
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "png").glob("*.png"))) == 4
