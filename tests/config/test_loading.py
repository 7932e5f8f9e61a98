import glob
import os

import pytest

from tests.helpers import REPO
from vtn.config import ConfigError, dump_config, get_cfg, load_config, overrides_to_dict


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_defaults_validate_and_freeze():
    cfg = load_config()
    assert cfg.MODEL.MODEL_NAME == "VTN"
    assert cfg.VTN.ATTENTION_WINDOW == 32 and cfg.VTN.ATTENTION_DROPOUT == 0.1
    assert cfg.is_frozen()
    with pytest.raises(AttributeError):
        cfg.NUM_GPUS = 3


def test_every_key_has_a_comment():
    """Each key assignment in defaults.py sits right under a '#' comment line."""
    path = os.path.join(REPO, "vtn", "config", "defaults.py")
    lines = open(path).read().splitlines()
    missing = [
        line.strip()
        for i, line in enumerate(lines)
        if line.startswith("_C.") and "= CfgNode(" not in line and not lines[i - 1].lstrip().startswith("#")
    ]
    assert not missing, f"keys without a one-line comment: {missing}"


def test_base_inheritance_is_recursive_and_relative(tmp_path):
    os.makedirs(tmp_path / "sub")
    write(tmp_path / "a.yaml", "VTN:\n  NUM_LAYERS: 6\n  NUM_HEADS: 6\nSOLVER:\n  BASE_LR: 0.5\n")
    write(tmp_path / "sub" / "b.yaml", "_BASE_: ../a.yaml\nVTN:\n  NUM_LAYERS: 2\n")
    c = write(tmp_path / "sub" / "c.yaml", "_BASE_: b.yaml\nSOLVER:\n  BASE_LR: 0.25\n")
    cfg = load_config(c)
    assert cfg.VTN.NUM_LAYERS == 2  # b overrides a
    assert cfg.VTN.NUM_HEADS == 6  # from a, through b
    assert cfg.SOLVER.BASE_LR == 0.25  # c overrides a


def test_a_base_cycle_is_one_error_naming_the_files(tmp_path):
    os.makedirs(tmp_path / "sub")
    write(tmp_path / "a.yaml", "_BASE_: sub/b.yaml\nVTN:\n  NUM_LAYERS: 6\n")
    write(tmp_path / "sub" / "b.yaml", "_BASE_: [../c.yaml]\n")
    write(tmp_path / "c.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "a.yaml"))
    message = str(e.value)
    assert "cycle" in message and "\n" not in message and len(message) < 600
    assert [os.path.basename(p) for p in message.split(": ", 1)[1].split(". ")[0].split(" -> ")] == [
        "a.yaml",
        "b.yaml",
        "c.yaml",
        "a.yaml",
    ]
    write(tmp_path / "self.yaml", "_BASE_: self.yaml\n")
    with pytest.raises(ConfigError, match=r"self\.yaml -> .*self\.yaml"):
        load_config(str(tmp_path / "self.yaml"))


@pytest.mark.parametrize("text", ["", "# only a comment\n\n# and another\n", "---\n"])
def test_an_empty_config_file_is_one_error_naming_it(tmp_path, text):
    empty = write(tmp_path / "empty.yaml", text)
    with pytest.raises(ConfigError, match=r"empty\.yaml is empty or holds only comments") as e:
        load_config(empty)
    assert "\n" not in str(e.value)
    # the same for an empty file named as a _BASE_: the message names it and the file that inherits from it
    child = write(tmp_path / "child.yaml", "_BASE_: empty.yaml\nVTN:\n  NUM_LAYERS: 2\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml \(the _BASE_ of .*child\.yaml\) is empty"):
        load_config(child)


def test_several_files_merge_in_order(tmp_path):
    a = write(tmp_path / "a.yaml", "VTN:\n  NUM_LAYERS: 6\n")
    b = write(tmp_path / "b.yaml", "VTN:\n  NUM_LAYERS: 2\n")
    assert load_config([a, b]).VTN.NUM_LAYERS == 2
    assert load_config([b, a]).VTN.NUM_LAYERS == 6


def test_overrides_parse_types_and_win_over_files(tmp_path):
    f = write(tmp_path / "a.yaml", "SOLVER:\n  BASE_LR: 1e-3\n")  # YAML reads 1e-3 as a string
    cfg = load_config(
        f,
        [
            "SOLVER.BASE_LR",
            "2e-2",
            "VTN.FREEZE_BACKBONE",
            "True",
            "DATA.MEAN",
            "[0.1, 0.2, 0.3]",
            "VTN.NUM_LAYERS",
            "6",
            "TRAIN.ENABLE",
            "false",
            "VTN.BACKBONE_KWARGS.img_size",
            "64",
        ],
    )
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.02) and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.VTN.FREEZE_BACKBONE is True and cfg.TRAIN.ENABLE is False
    assert cfg.DATA.MEAN == [0.1, 0.2, 0.3]
    assert cfg.VTN.NUM_LAYERS == 6
    assert cfg.VTN.BACKBONE_KWARGS.img_size == 64
    assert load_config(f).SOLVER.BASE_LR == pytest.approx(1e-3)


def test_a_whole_dict_replaces_a_free_form_group_and_a_subkey_merges(tmp_path):
    f = write(tmp_path / "a.yaml", "VTN:\n  BACKBONE_KWARGS: {img_size: 64, depth: 4}\n")
    assert dict(load_config(f, ["VTN.BACKBONE_KWARGS", "{}"]).VTN.BACKBONE_KWARGS) == {}
    assert dict(load_config(f, ["VTN.BACKBONE_KWARGS", "{drop_rate: 0.1}"]).VTN.BACKBONE_KWARGS) == {"drop_rate": 0.1}
    merged = load_config(f, ["VTN.BACKBONE_KWARGS.depth", 2]).VTN.BACKBONE_KWARGS
    assert dict(merged) == {"img_size": 64, "depth": 2}


def test_int_for_float_key_is_accepted():
    cfg = load_config(None, ["SOLVER.BASE_LR", 1, "DATA.MEAN", [0, 0, 0]])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert all(isinstance(x, float) for x in cfg.DATA.MEAN)


def test_overrides_to_dict_nests_keys():
    assert overrides_to_dict(["A.B", "1", "A.C", "x", "D", "[1, 2]"]) == {"A": {"B": 1, "C": "x"}, "D": [1, 2]}


def test_dump_and_reload_give_the_same_config(tmp_path):
    cfg = load_config(
        os.path.join(REPO, "configs", "Kinetics", "DEIT_TI_VTN.yaml"),
        ["VTN.BACKBONE_KWARGS.img_size", 64, "SOLVER.BASE_LR", 0.123],
    )
    path = str(tmp_path / "out" / "config.yaml")
    dump_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert again.dump() == cfg.dump()


@pytest.mark.parametrize(
    "opts, words",
    [
        (["VTN.NUM_LAYRS", 3], ["unknown config key VTN.NUM_LAYRS", "VTN.NUM_LAYERS"]),
        (["VTN.NUM_LAYERS", "three"], ["VTN.NUM_LAYERS must be an integer", "'three'"]),
        (["VTN.FREEZE_BACKBONE", "maybe"], ["VTN.FREEZE_BACKBONE must be a boolean"]),
        (["VTN.ATTENTION_WINDOW", 33], ["VTN.ATTENTION_WINDOW = 33", "even"]),
        (["SOLVER.BASE_LR", -0.1], ["SOLVER.BASE_LR = -0.1", "> 0"]),
        (["VTN.BACKBONE", "vit_base_patch16_22"], ["VTN.BACKBONE = 'vit_base_patch16_22'", "vit_base_patch16_224"]),
        (
            ["NUM_GPUS", 3, "TRAIN.BATCH_SIZE", 16, "TEST.BATCH_SIZE", 3],
            ["TRAIN.BATCH_SIZE = 16", "NUM_GPUS x NUM_SHARDS = 3"],
        ),
        (["NUM_GPUS", 2, "NUM_SHARDS", 2, "TEST.BATCH_SIZE", 6], ["TEST.BATCH_SIZE = 6", "processes (4)"]),
        (["VTN.POS_EMBED", "learnt"], ["VTN.POS_EMBED = 'learnt'", "'learned'", "Did you mean"]),
        (["VTN.TEMPORAL_ENCODER", "longformer_x"], ["VTN.TEMPORAL_ENCODER", "longformer_hf"]),
        (["SOLVER.LRS", [1.0, 0.1]], ["SOLVER.LRS", "one non-negative multiplier per SOLVER.STEPS entry (3)"]),
        (["SOLVER.STEPS", [5, 10, 20]], ["SOLVER.STEPS", "starting with 0"]),
        (["VTN.HIDDEN_DIM", 100], ["VTN.HIDDEN_DIM = 100", "multiple of VTN.NUM_HEADS (12)"]),
        (["VTN.ATTENTION_DROPOUT", 1.5], ["VTN.ATTENTION_DROPOUT = 1.5", "probability"]),
        (["TEST.NUM_SPATIAL_CROPS", 2], ["TEST.NUM_SPATIAL_CROPS = 2", "1 (center) or 3"]),
        (["DATA.TRAIN_JITTER_SCALES", [200, 320]], ["DATA.TRAIN_JITTER_SCALES", "DATA.TRAIN_CROP_SIZE (224)"]),
        (["SHARD_ID", 1], ["SHARD_ID = 1", "NUM_SHARDS-1 = 0"]),
        (["VTN", 3], ["VTN is a group of keys", "NUM_LAYERS"]),
        (["VTN.NUM_LAYERS"], ["KEY VALUE pairs", "odd number"]),
        (["DATA.ENSEMBLE_METHOD", "mean"], ["DATA.ENSEMBLE_METHOD = 'mean'", "'sum', 'max'"]),
    ],
)
def test_bad_values_raise_one_clear_error(opts, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, opts)
    for w in words:
        assert w in str(e.value), f"{w!r} not in: {e.value}"


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = write(tmp_path / "bad.yaml", "VTN: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    unknown = write(tmp_path / "unknown.yaml", "TRAIN:\n  BATCHSIZE: 4\n")
    with pytest.raises(ConfigError, match=r"unknown\.yaml: unknown config key TRAIN\.BATCHSIZE.*TRAIN\.BATCH_SIZE"):
        load_config(unknown)
    missing_base = write(tmp_path / "child.yaml", "_BASE_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(missing_base)


def test_get_cfg_is_a_fresh_copy():
    a = get_cfg()
    a.VTN.NUM_LAYERS = 99
    assert get_cfg().VTN.NUM_LAYERS == 3


@pytest.mark.parametrize(
    "path",
    sorted(p for p in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)),
    ids=lambda p: os.path.relpath(p, REPO),
)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.MODEL.NUM_CLASSES > 0
