"""Every tool ends a user error the same way (one line naming the tool, exit status 2), and reads its --help as
sentences; run in-process through each tool's main(argv)."""

import os

import pytest
import torch

from tests.helpers import REPO, TINY_MODEL_OPTS, load_tool, tiny_cfg, tiny_model

TOOLS = sorted(n for n in os.listdir(os.path.join(REPO, "tools")) if n.endswith(".py"))


# the tools that take the shared `--cfg FILE [KEY VALUE ...]`, and the flags each one requires besides
CONFIG_TOOLS = [
    "run_net.py",
    "demo_net.py",
    "model_info.py",
    "check_dataset.py",
    "extract_features.py",
    "visualize_attention.py",
    "make_synthetic_dataset.py",
    "convert_checkpoint.py",
    "submit.py",
    "preflight.py",
    "export_model.py",
    "predict.py",
]
REQUIRED = {
    "convert_checkpoint.py": ["--input", "a.pyth", "--output", "b.pyth"],
    "visualize_attention.py": ["--video", "a.mp4"],
    "export_model.py": ["--output", "m.pt2"],
    "predict.py": ["--input", "a.mp4", "--output", "p.csv"],
}


def run_main(tool, *argv):
    """The exit status of `tools/<tool> argv` run in-process."""
    with pytest.raises(SystemExit) as e:
        load_tool(os.path.join("tools", tool)).main([str(a) for a in argv])
    return e.value.code


def one_line_error(capsys, tool):
    err = capsys.readouterr().err
    assert err.startswith(f"{tool}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("tool", TOOLS)
def test_help_reads_as_sentences(tool):
    parser = load_tool(os.path.join("tools", tool)).build_parser()
    assert parser.description and parser.description.rstrip().endswith("."), tool
    for action in parser._actions:
        if action.dest == "help":
            continue
        text = action.help or ""
        assert text[:1].isupper() and text.rstrip().endswith("."), f"{tool} {action.option_strings}: {text!r}"


def test_plot_curves_with_a_missing_log_is_one_line(tmp_path, capsys):
    code = run_main("plot_curves.py", "--log", tmp_path / "none.log", "--output", tmp_path / "c.png")
    assert code == 2 and "none.log does not exist" in one_line_error(capsys, "plot_curves")


def test_check_dataset_with_a_missing_csv_is_one_line(tmp_path, capsys):
    code = run_main("check_dataset.py", "DATA.PATH_TO_DATA_DIR", tmp_path, "--splits", "val")
    assert code == 2 and "val.csv does not exist" in one_line_error(capsys, "check_dataset")


def test_splits_are_comma_separated_in_every_tool(capsys):
    for tool in ("check_dataset.py", "extract_features.py"):
        assert run_main(tool, "--splits", "train", "val") == 2  # argparse's usage error
        assert "--splits takes one comma-separated value, e.g. --splits train,val" in capsys.readouterr().err
        assert run_main(tool, "--splits", "train,dev") == 2
        assert "'dev' is not one of train, val, test" in capsys.readouterr().err


def test_convert_to_release_of_a_model_without_a_position_table_is_one_line(tmp_path, capsys):
    from vtn.engine.checkpoint import save_checkpoint

    opts = [*TINY_MODEL_OPTS, "VTN.POS_EMBED", "fixed"]
    model = tiny_model("VTN.POS_EMBED", "fixed")
    save_checkpoint(str(tmp_path / "fixed.pyth"), tiny_cfg("VTN.POS_EMBED", "fixed"), model)
    (tmp_path / "cpu.yaml").write_text("NUM_GPUS: 0\n")
    code = run_main(
        "convert_checkpoint.py",
        "--cfg",
        tmp_path / "cpu.yaml",
        "--input",
        tmp_path / "fixed.pyth",
        "--output",
        tmp_path / "out.pyth",
        "--to",
        "release",
        *opts,
    )
    assert code == 2 and "learned position table" in one_line_error(capsys, "convert_checkpoint")
    assert not os.path.exists(tmp_path / "out.pyth")
    assert isinstance(torch.load(str(tmp_path / "fixed.pyth"), weights_only=True), dict)


@pytest.mark.parametrize("tool", CONFIG_TOOLS)
def test_a_bad_config_key_is_one_line_with_status_2(tool, capsys):
    code = run_main(tool, "VTN.NUM_LAYRS", 2, *REQUIRED.get(tool, []))
    err = one_line_error(capsys, tool[:-3])
    assert code == 2 and "unknown config key VTN.NUM_LAYRS" in err and "'VTN.NUM_LAYERS'" in err


def test_an_import_that_cannot_be_loaded_is_one_line(tmp_path, capsys):
    code = run_main("model_info.py", "--import", tmp_path / "nope.py")
    err = one_line_error(capsys, "model_info")
    assert code == 2 and "--import" in err and "nope.py: cannot be imported" in err


@pytest.mark.parametrize("tool", CONFIG_TOOLS)
def test_a_missing_config_file_is_one_line_with_status_2(tool, tmp_path, capsys):
    code = run_main(tool, "--cfg", tmp_path / "missing.yaml", *REQUIRED.get(tool, []))
    err = one_line_error(capsys, tool[:-3])
    assert code == 2 and "missing.yaml does not exist" in err
