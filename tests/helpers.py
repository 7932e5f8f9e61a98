"""Small shared pieces of the test suite: tiny configs that build in milliseconds."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A two-block ViT-Ti at 32x32 (4 patches): 192-d features, fast on a CPU.
TINY_MODEL_OPTS = [
    "VTN.BACKBONE",
    "vit_tiny_patch16_224",
    "VTN.BACKBONE_KWARGS.img_size",
    32,
    "VTN.BACKBONE_KWARGS.depth",
    2,
    "VTN.PRETRAINED",
    False,
    "VTN.NUM_LAYERS",
    1,
    "VTN.NUM_HEADS",
    3,
    "VTN.ATTENTION_WINDOW",
    4,
    "VTN.ATTENTION_DROPOUT",
    0.0,
    "VTN.HIDDEN_DROPOUT",
    0.0,
    "VTN.HEAD_DROPOUT",
    0.0,
    "MODEL.NUM_CLASSES",
    5,
    "NUM_GPUS",
    0,
    "DATA.TRAIN_CROP_SIZE",
    32,
    "DATA.TRAIN_JITTER_SCALES",
    [32, 40],
    "DATA.TEST_CROP_SIZE",
    32,
    "DATA.TEST_SCALE",
    32,
]


def tiny_cfg(*opts, cfg_file=None):
    """The tiny model config with `opts` (KEY VALUE ...) on top."""
    from vtn.config import load_config

    return load_config(cfg_file, TINY_MODEL_OPTS + list(opts))


def tiny_model(*opts, seed=0):
    import torch

    from vtn.models import build_model

    torch.manual_seed(seed)
    return build_model(tiny_cfg(*opts)).eval()


def code_lines(text):
    """Lines of code blocks: fenced with ``` or indented by four spaces; continuation lines joined."""
    out, fenced, pending = [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or line.startswith("    ")):
            pending = ""
            continue
        line = pending + " " + line.strip() if pending else line.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        out.append(line)
    return out


def section_commands(doc, heading):
    """The `python tools/...` lines of the code blocks under the `## heading` of `doc` (up to the next `## `)."""
    text = open(os.path.join(REPO, doc), encoding="utf-8").read()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    return [line for line in code_lines(section) if line.startswith("python tools/")]


def section_code(doc, heading, language="python"):
    """{first-line comment (a file name): code} of the fenced ```language blocks under the `## heading` of `doc`."""
    import re

    text = open(os.path.join(REPO, doc), encoding="utf-8").read()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    return {block.splitlines()[0].lstrip("# ").strip(): block for block in blocks}


def load_tool(script):
    """The module of `tools/<name>.py` (or any script path relative to the repository), to call its main(argv)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tool_" + os.path.basename(script)[:-3], os.path.join(REPO, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(tool, *args, check=True, timeout=600, env=None, cwd=None, subprocess=False):
    """Run `tools/<tool> args...` as a user would: its `main(argv)` in this process (stdout and stderr captured,
    the exit status from SystemExit), or with `subprocess=True` as `python tools/<tool>` in a fresh interpreter
    (the few smoke tests of the real command line, and whatever must be killed or spawn processes).

    Returns a CompletedProcess (text mode, stdout and stderr captured).
    """
    if subprocess:
        return _run_tool_subprocess(tool, args, check, timeout, env, cwd)
    import contextlib
    import io
    import logging
    import sys
    from subprocess import CompletedProcess

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    code = 0
    try:
        os.environ.update(env or {})
        os.chdir(cwd or REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                load_tool(os.path.join("tools", tool)).main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, (int, type(None))):
                    print(e.code, file=sys.stderr)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        logging.getLogger().handlers.clear()  # a run's log file handler ends with the run, as the process would
    proc = CompletedProcess([tool, *argv], code, out.getvalue(), err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def _run_tool_subprocess(tool, args, check, timeout, env, cwd):
    import subprocess
    import sys

    full_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", tool), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


# The tests' synthetic dataset: 6 classes x (2 train, 1 val, 1 test), 1-3 s, small frames.
TINY_SYNTHETIC = dict(
    train_per_class=2,
    val_per_class=1,
    test_per_class=1,
    duration_range=(1.0, 3.0),
    fps_choices=(24, 25, 30),
    sizes=((64, 48), (48, 64)),
    codec="mpeg4",
    seed=0,
)


def synthetic_opts(data_dir):
    """Config overrides that read the tests' synthetic dataset at 32x32."""
    return [
        "TRAIN.DATASET",
        "synthetic",
        "TEST.DATASET",
        "synthetic",
        "DATA.PATH_TO_DATA_DIR",
        data_dir,
        "SYNTHETIC.TRAIN_PER_CLASS",
        2,
        "SYNTHETIC.VAL_PER_CLASS",
        1,
        "SYNTHETIC.TEST_PER_CLASS",
        1,
        "SYNTHETIC.DURATION_RANGE",
        [1.0, 3.0],
        "SYNTHETIC.SIZES",
        [[64, 48], [48, 64]],
        "MODEL.NUM_CLASSES",
        6,
        "DATA.NUM_FRAMES",
        4,
        "DATA.TEMPORAL_FOOTPRINT",
        1.0,
        "TEST.NUM_ENSEMBLE_VIEWS",
        2,
        "TEST.NUM_SPATIAL_CROPS",
        3,
        "TEST.FULL_VIDEO_FRAMES",
        8,
        "TRAIN.BATCH_SIZE",
        4,
        "TEST.BATCH_SIZE",
        4,
        "DATA_LOADER.NUM_WORKERS",
        0,
    ]


def run_opts(synthetic_dir, output_dir, *extra):
    """Command-line overrides of a tiny run_net.py run on the tests' synthetic dataset (2 epochs, cosine LR)."""
    import json

    opts = (
        TINY_MODEL_OPTS
        + synthetic_opts(synthetic_dir)
        + [
            "OUTPUT_DIR",
            output_dir,
            "SOLVER.MAX_EPOCH",
            2,
            "SOLVER.BASE_LR",
            0.05,
            "SOLVER.LR_POLICY",
            "cosine",
            "LOG_PERIOD",
            1,
            "TEST.FULL_VIDEO_FRAMES",
            8,
            "DATA.TRAIN_JITTER_SCALES",
            [32, 40],
        ]
    )
    return [str(o) if not isinstance(o, list) else json.dumps(o) for o in opts + list(extra)]


def assert_same(a, b, atol=0.0):
    """Two state dicts with the same keys and equal tensors (within `atol` when given)."""
    import torch

    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            assert (a[k] - b[k]).abs().max() <= atol, k


def run_torchrun(tool, *args, nproc=2, torchrun_args=(), env=None, timeout=600):
    """`python -m torch.distributed.run --nproc_per_node N [torchrun_args] tools/<tool> args` on a free port, with
    one torch thread per process, in its own session: past `timeout` the whole session (torchrun, its workers and
    their loader workers) is killed and the test fails with what they printed."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), *map(str, torchrun_args)]
    cmd += ["--master_port", str(port), os.path.join(REPO, "tools", tool), *map(str, args)]
    full_env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.Popen(
        cmd, env=full_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{tool} under torchrun did not end in {timeout} s\n{out[-3000:]}\n{err[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def file_size_limit(nbytes):
    """A context manager: RLIMIT_FSIZE for this process, so that a write past `nbytes` fails with EFBIG (SIGXFSZ
    ignored, as a shell's `ulimit -f` under a job scheduler leaves it)."""
    import contextlib
    import resource
    import signal

    @contextlib.contextmanager
    def limited():
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, handler)

    return limited()
