#!/usr/bin/env python
"""Export a trained VTN as one torch.export program (or ONNX) with its input contract beside it:

    python tools/export_model.py --cfg configs/Synthetic/VTN_TINY.yaml --output model.pt2 [--checkpoint PATH]
        [--format export|onnx] [--max-frames N] [KEY VALUE ...]

The weights are those of --checkpoint (a .pyth file, or an OUTPUT_DIR whose checkpoint the test phase would take),
else TEST.CHECKPOINT_FILE_PATH, else OUTPUT_DIR's. `model.pt2` gets `model.pt2.json` beside it (`model.onnx`:
`model.onnx.json`): input shapes with the dynamic batch and frame dims, mean, std, crop size, frame sampling and
class names. Run it without vtn:
`torch.export.load("model.pt2").module()(frames, frame_idx)`.
"""

import os

from vtn.launch.cli import base_parser, config_from_args, non_negative_int, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Export a trained VTN as one torch.export program (or ONNX) with its input contract.")
    parser.add_argument("--output", required=True, help="The file to write, e.g. model.pt2 (or model.onnx).")
    parser.add_argument(
        "--checkpoint",
        default="",
        help="A .pyth checkpoint, or an OUTPUT_DIR whose checkpoint the test phase would take (default: "
        "TEST.CHECKPOINT_FILE_PATH, else OUTPUT_DIR's).",
    )
    parser.add_argument(
        "--format",
        default="export",
        help="What to write: export, a torch.export program (.pt2, the default), or onnx, an ONNX file (needs the "
        "onnx extra).",
    )
    parser.add_argument(
        "--max-frames",
        type=non_negative_int,
        default=0,
        help="The most frames per video the program takes (default: the largest of VTN.MAX_POSITION_EMBEDDINGS, "
        "TEST.FULL_VIDEO_FRAMES and DATA.NUM_FRAMES).",
    )
    return parser


def export(args) -> None:
    from vtn.inference.export import checkpoint_opts, contract_path, export_model

    cfg = config_from_args(args, checkpoint_opts(args.checkpoint))
    name = os.path.basename(args.cfg_files[-1]) if args.cfg_files else ""
    info = export_model(cfg, args.output, args.format, args.max_frames, config_name=name)
    frames = info["dynamic_dims"]["frames"]
    print(f"model: {info['checkpoint'] or 'random weights (TEST.ALLOW_RANDOM_INIT)'}")
    print(f"wrote {args.output} (batch 1..{info['dynamic_dims']['batch']['max']}, frames 1..{frames['max']})")
    print(f"wrote {contract_path(args.output)}")


def main(argv=None):
    args = parse(build_parser(), argv)
    run_main("export_model", lambda: export(args))


if __name__ == "__main__":
    main()
