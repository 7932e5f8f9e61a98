#!/usr/bin/env python
"""Convert between the authors' released VTN checkpoint and ours.

    python tools/convert_checkpoint.py --input VTN_VIT_B_KINETICS.pyth --output vtn_release.pyth
    python tools/convert_checkpoint.py --input ours.pyth --output release_layout.pyth --to release

The weights are checked against the model of --cfg (default configs/Kinetics/VIT_B_VTN_RELEASE.yaml):
every tensor must fit exactly, or nothing is written.
"""

import os

from vtn.launch.cli import base_parser, config_from_args, parse, run_main

DEFAULT_CFG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "Kinetics", "VIT_B_VTN_RELEASE.yaml"
)


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Convert between the authors' released VTN checkpoint and ours.")
    parser.add_argument("--input", required=True, help="The checkpoint to read.")
    parser.add_argument("--output", required=True, help="The checkpoint to write.")
    parser.add_argument(
        "--to",
        choices=["vtn", "release"],
        default="vtn",
        help="The layout of the output: ours (vtn) or the authors' release (default: vtn).",
    )
    return parser


def convert(args) -> None:
    if not args.cfg_files:
        args.cfg_files = [DEFAULT_CFG]
    cfg = config_from_args(args, ["NUM_GPUS", 0, "VTN.PRETRAINED", False, "VTN.PRETRAINED_PATH", ""])

    from vtn.engine.checkpoint import atomic_save, load_checkpoint_file, load_weights, save_checkpoint
    from vtn.engine.convert import detect_format, to_vtn_state, vtn_to_release
    from vtn.models import build_model

    data = load_checkpoint_file(args.input)
    state = to_vtn_state(data, args.input, cfg)
    model = build_model(cfg)
    load_weights(model, state, args.input, strict=True)
    epoch = int(data.get("epoch", 0))
    if args.to == "vtn":
        save_checkpoint(args.output, cfg, model, epoch=epoch)
    else:
        atomic_save(vtn_to_release(model.state_dict(), epoch, cfg.dump()), args.output)
    print(f"{args.input} ({detect_format(data)}) -> {args.output} ({args.to}), {len(state)} tensors")


def main(argv=None):
    args = parse(build_parser(), argv)
    run_main("convert_checkpoint", lambda: convert(args))


if __name__ == "__main__":
    main()
