"""The defaults tree: every key a config file or a command-line override may set.

Key names follow PySlowFast wherever the meaning is the same. Every key carries a one-line comment.
Lists (never tuples) so that a dumped config loads back unchanged.
"""

from fvcore.common.config import CfgNode

# the splits every dataset has, in the order the tools list them
SPLITS = ("train", "val", "test")

_C = CfgNode()

# ---------------------------------------------------------------------------- #
# Top level
# ---------------------------------------------------------------------------- #
# Processes (GPUs) per machine; 0 runs one process on the CPU.
_C.NUM_GPUS = 0
# Number of machines (nodes) of a multi-node job.
_C.NUM_SHARDS = 1
# Index of this machine in a multi-node job, 0 .. NUM_SHARDS - 1.
_C.SHARD_ID = 0
# Folder for logs, checkpoints, the resolved config and test results.
_C.OUTPUT_DIR = "./output"
# Seed of python, numpy and torch random generators (and of data-loader workers).
_C.RNG_SEED = 0
# Log one training line every LOG_PERIOD iterations.
_C.LOG_PERIOD = 10
# ... and sooner when LOG_PERIOD iterations would take longer than this many seconds at the measured speed
# (training, validation, test and feature-extraction lines; 0: by iterations only).
_C.LOG_SECONDS = 15.0
# Print the parameter count and GFLOPs of the model at start-up.
_C.LOG_MODEL_INFO = True
# torch.distributed backend on GPUs ("nccl"); CPU runs always use "gloo".
_C.DIST_BACKEND = "nccl"
# Seconds a collective (all-reduce, barrier, ...) waits for every process before it fails (torch's default).
_C.DIST_TIMEOUT = 1800
# torch.backends.cudnn.benchmark: pick the fastest cuDNN algorithms after a warm-up (fixed input sizes).
_C.CUDNN_BENCHMARK = False
# Deterministic algorithms (torch.use_deterministic_algorithms, cuDNN, cuBLAS workspace); slower on GPU.
_C.DETERMINISTIC = False

# ---------------------------------------------------------------------------- #
# Training
# ---------------------------------------------------------------------------- #
_C.TRAIN = CfgNode()
# Run the training phase.
_C.TRAIN.ENABLE = True
# Registered dataset name for training and validation (kinetics, mit, synthetic, features).
_C.TRAIN.DATASET = "kinetics"
# Global batch size: the sum over all processes of all machines (must divide by their number).
_C.TRAIN.BATCH_SIZE = 16
# Validate every EVAL_PERIOD epochs (0 disables validation).
_C.TRAIN.EVAL_PERIOD = 1
# Validation protocol: "single_view" (one center clip per video) or "full_video" (TEST.FULL_VIDEO_FRAMES frames
# over the whole video, one view; the paper's Fig. 5).
_C.TRAIN.EVAL_PROTOCOL = "single_view"
# Save a checkpoint every CHECKPOINT_PERIOD epochs.
_C.TRAIN.CHECKPOINT_PERIOD = 1
# Also save a checkpoint every CHECKPOINT_ITERS iterations inside an epoch (0 = only at epoch ends).
_C.TRAIN.CHECKPOINT_ITERS = 0
# Keep only the newest CHECKPOINT_KEEP periodic checkpoints (0 keeps all); the best one is kept apart.
_C.TRAIN.CHECKPOINT_KEEP = 3
# Continue from the newest valid checkpoint in OUTPUT_DIR/checkpoints when there is one.
_C.TRAIN.AUTO_RESUME = True
# Keys whose change is accepted when continuing (or testing) a run of OUTPUT_DIR made with other values, e.g.
# ["SOLVER.MAX_EPOCH"]; any other difference from the checkpoint's config stops the run (keys that only change
# how a run executes, such as logging, workers or processes, may always differ).
_C.TRAIN.RESUME_ALLOW_CHANGED = []
# Initialise from this checkpoint (ours or PySlowFast-style) when there is nothing to resume.
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# Allow TRAIN.CHECKPOINT_FILE_PATH to fill less than half of the model's tensors (e.g. another backbone);
# otherwise that is an error (a new head for another NUM_CLASSES is always fine).
_C.TRAIN.CHECKPOINT_PARTIAL_LOAD = False
# Start from epoch 0 (new optimizer and schedule) after loading TRAIN.CHECKPOINT_FILE_PATH.
_C.TRAIN.CHECKPOINT_EPOCH_RESET = True
# Accumulate gradients over this many iterations per optimizer step.
_C.TRAIN.ACCUMULATION_STEPS = 1
# Automatic mixed precision (CUDA only; CPU runs stay fp32).
_C.TRAIN.MIXED_PRECISION = False
# Mixed precision dtype: "float16" (with a gradient scaler) or "bfloat16".
_C.TRAIN.AMP_DTYPE = "float16"
# Exponential moving average of the weights; 0 disables it, e.g. 0.9998 enables it.
_C.TRAIN.EMA_DECAY = 0.0
# Registered hooks (vtn.engine.hooks.HOOK_REGISTRY, e.g. a project's, loaded with --import) to add to training.
_C.TRAIN.HOOKS = []
# Skip at most this many optimizer steps with a NaN/infinite loss before stopping (0: stop at the first).
_C.TRAIN.MAX_BAD_STEPS = 0

# ---------------------------------------------------------------------------- #
# Testing
# ---------------------------------------------------------------------------- #
_C.TEST = CfgNode()
# Run the test phase.
_C.TEST.ENABLE = True
# Registered dataset name for testing.
_C.TEST.DATASET = "kinetics"
# Global test batch size (views per step, summed over processes); with SOLVER.REFERENCE_WORLD_SIZE set, each process
# keeps its share of it (TEST.BATCH_SIZE / SOLVER.REFERENCE_WORLD_SIZE views) on any number of processes.
_C.TEST.BATCH_SIZE = 8
# Checkpoint to test; empty uses the best (or last) checkpoint of OUTPUT_DIR.
_C.TEST.CHECKPOINT_FILE_PATH = ""
# Which checkpoint of OUTPUT_DIR to test when none is named: "last" or "best".
_C.TEST.CHECKPOINT_SELECT = "last"
# Test with random weights when no checkpoint exists (otherwise that is an error).
_C.TEST.ALLOW_RANDOM_INIT = False
# Multi-view protocol: clips spread uniformly over the whole video.
_C.TEST.NUM_ENSEMBLE_VIEWS = 10
# Multi-view protocol: spatial crops per clip (3: left/center/right or top/center/bottom; 1: center).
_C.TEST.NUM_SPATIAL_CROPS = 3
# Test passes, in order; the first is the headline result (the top level of test_results.json). Each is
# "multi_view" (NUM_ENSEMBLE_VIEWS clips x NUM_SPATIAL_CROPS crops) or "full_video" (paper sec. 4.1: one view of
# FULL_VIDEO_FRAMES frames over the whole video), with "_shuffled" for frames in random order (sec. 5.1).
_C.TEST.PROTOCOLS = ["multi_view"]
# Frames of the full-video view (sub- or up-sampled uniformly from all frames of the video).
_C.TEST.FULL_VIDEO_FRAMES = 250
# Shuffle ablation (Table 2b): after TEST.PROTOCOLS, run each of them again with its frame embeddings shuffled
# before the position embedding is added, and compare per class group.
_C.TEST.SHUFFLE_ABLATION = False

# ---------------------------------------------------------------------------- #
# Data
# ---------------------------------------------------------------------------- #
_C.DATA = CfgNode()
# Folder with the split csv files ({train,val,test}.csv for kinetics).
_C.DATA.PATH_TO_DATA_DIR = ""
# Prefix joined to every video path of the csv files.
_C.DATA.PATH_PREFIX = ""
# Separator between path and label in a csv line.
_C.DATA.PATH_LABEL_SEPARATOR = " "
# File mapping class names to ids (json {name: id} or one name per line); empty: labels are integers or
# the dataset's own class list.
_C.DATA.CLASS_INDEX_FILE = ""
# Which official split (1-3) of UCF101 and HMDB51 to train and test on.
_C.DATA.SPLIT_ID = 1
# Registered video decoder.
_C.DATA.DECODING_BACKEND = "pyav"
# Leave undecoded the non-reference frames (most B-frames) that no sampled frame needs: every kept frame is
# bit-identical to a full decode, 1.3-2x less decoding. Only in MP4/MOV and Matroska/WebM files with B-frames
# and sane timestamps; False decodes every frame (for a decoder or file where skipping misbehaves).
_C.DATA.DECODE_SKIP_NONREF = True
# FFmpeg's threading in each decoding process: SLICE (threads share the slices of one frame), FRAME (threads
# decode frames ahead), AUTO (both), NONE, or DEFAULT: SLICE in DataLoader workers (they share the cores out;
# frame threads cost 35-45% more CPU per clip), AUTO in a process that decodes alone (benchmarks/decode.py).
_C.DATA.DECODE_THREADS = "DEFAULT"
# Testing and validation decode each video once for all its views (multi-view: the union of the frames of its
# clips, in one pass through the file, seeking only across a keyframe; the crops of a clip are cut from the same
# frames), with a video's views kept on one process and one loader worker. False: each view decodes on its own
# (the per-view path of PySlowFast; the same frames, 10x3 times the decoding).
_C.DATA.DECODE_VIDEO_ONCE = True
# Seconds one dataset item may spend decoding its video (probe, read, decode, convert); 0 disables the deadline.
# A video that takes longer is abandoned, logged, counted, replaced in training (failed in testing) and listed in
# OUTPUT_DIR/quarantine.txt, which later epochs and resumed runs honour: it is never decoded again. 60 s is
# far beyond a normal clip (tens of milliseconds; a few seconds for the first view of a long 4K video under
# DECODE_VIDEO_ONCE), so only a pathological file reaches it, one that would otherwise stall every rank.
_C.DATA.DECODE_TIMEOUT = 60.0
# TRAIN.DATASET shards (tools/make_shards.py): samples each loader worker holds to shuffle the stream of its shards
# (vtn/datasets/shard_plan.py), on top of the shuffle across shards when written and of the shard order per epoch.
_C.DATA.SHARD_SHUFFLE_BUFFER = 64
# Bytes (MiB) of consecutive samples of a shard read by one ranged request when training from shards.
_C.DATA.SHARD_READ_MB = 16
# Frames per training / multi-view clip.
_C.DATA.NUM_FRAMES = 16
# PySlowFast's frame stride at TARGET_FPS; used for the footprint when TEMPORAL_FOOTPRINT is 0.
_C.DATA.SAMPLING_RATE = 8
# Frame rate in which SAMPLING_RATE is counted.
_C.DATA.TARGET_FPS = 30
# Seconds covered by one clip (paper: 2.56 or 5.12); 0 uses NUM_FRAMES * SAMPLING_RATE / TARGET_FPS.
_C.DATA.TEMPORAL_FOOTPRINT = 0.0
# Videos shorter than the footprint: "clamp" repeats the last frame, "loop" starts the video again.
_C.DATA.SHORT_VIDEO_MODE = "clamp"
# Training short-side scale range [min, max]: one random value per clip.
_C.DATA.TRAIN_JITTER_SCALES = [256, 320]
# Training crop size (square).
_C.DATA.TRAIN_CROP_SIZE = 224
# Random horizontal flip of the whole training clip: True, False, or None for the dataset's default (on, except
# for ssv2, whose classes tell left from right: a flipped "pushing something from left to right" is another class).
_C.DATA.RANDOM_FLIP = None
# Test short-side scale.
_C.DATA.TEST_SCALE = 256
# Test crop size (square).
_C.DATA.TEST_CROP_SIZE = 224
# Per-channel mean (RGB, 0-1 range) subtracted from frames.
_C.DATA.MEAN = [0.45, 0.45, 0.45]
# Per-channel std (RGB, 0-1 range) dividing frames.
_C.DATA.STD = [0.225, 0.225, 0.225]
# How the views of one video are combined at test: "sum" of softmax scores or "max".
_C.DATA.ENSEMBLE_METHOD = "sum"
# Folder of cached per-video frame embeddings for the "features" dataset (tools/extract_features.py).
_C.DATA.FEATURES_DIR = ""
# Frames per second at which tools/extract_features.py samples every video (0: TEST.FULL_VIDEO_FRAMES spread
# over the video; a value >= the video's fps keeps every frame).
_C.DATA.FEATURES_FPS = 0.0
# Registered video dataset that tools/extract_features.py reads (empty: TRAIN.DATASET, and TEST.DATASET for test).
_C.DATA.FEATURES_SOURCE = ""

# ---------------------------------------------------------------------------- #
# Synthetic dataset (generated on demand; the tests and the demo use it)
# ---------------------------------------------------------------------------- #
_C.SYNTHETIC = CfgNode()
# Generate the synthetic dataset into DATA.PATH_TO_DATA_DIR when its csv files are missing.
_C.SYNTHETIC.AUTO_GENERATE = False
# Videos per class in the train split.
_C.SYNTHETIC.TRAIN_PER_CLASS = 16
# Videos per class in the val split.
_C.SYNTHETIC.VAL_PER_CLASS = 4
# Videos per class in the test split.
_C.SYNTHETIC.TEST_PER_CLASS = 8
# Shortest and longest video in seconds.
_C.SYNTHETIC.DURATION_RANGE = [2.0, 20.0]
# Frame rates to draw from.
_C.SYNTHETIC.FPS_CHOICES = [24, 25, 30]
# Frame sizes [width, height] to draw from (landscape and portrait).
_C.SYNTHETIC.SIZES = [[160, 120], [120, 160], [176, 144]]
# Video codec: "h264" or "mpeg4".
_C.SYNTHETIC.CODEC = "mpeg4"
# Seconds per cycle of the order classes' sawtooth, drawn per video; [0, 0]: one ramp over the whole video.
_C.SYNTHETIC.CYCLE_RANGE = [2.5, 4.0]
# Seed of the generator (same seed, same files).
_C.SYNTHETIC.SEED = 0

# ---------------------------------------------------------------------------- #
# Strong augmentation (Table 3, dagger row); off by default
# ---------------------------------------------------------------------------- #
_C.AUG = CfgNode()
# Enable RandAugment and random erasing on training clips.
_C.AUG.ENABLE = False
# timm RandAugment policy string, drawn once per clip ("" disables RandAugment).
_C.AUG.AA_TYPE = "rand-m9-n2-mstd0.5-inc1"
# Resampling filter of RandAugment's geometric ops: "bicubic" (DeiT), "bilinear" or "random" (one per clip).
_C.AUG.INTERPOLATION = "bicubic"
# Random-erasing probability per clip (0 disables).
_C.AUG.RE_PROB = 0.25
# Random-erasing fill ("const": zeros, "rand": a colour, "pixel": noise), the same in every frame of the clip.
_C.AUG.RE_MODE = "pixel"
# Random-erasing boxes per clip: at most RE_COUNT (the number is drawn from 1..RE_COUNT, as in timm).
_C.AUG.RE_COUNT = 1

_C.MIXUP = CfgNode()
# Enable mixup / cutmix on training batches.
_C.MIXUP.ENABLE = False
# Mixup beta-distribution alpha (0 disables mixup).
_C.MIXUP.ALPHA = 0.8
# Cutmix beta-distribution alpha (0 disables cutmix).
_C.MIXUP.CUTMIX_ALPHA = 1.0
# Probability of applying mixup or cutmix to a batch.
_C.MIXUP.PROB = 1.0
# Probability of cutmix instead of mixup when both are enabled.
_C.MIXUP.SWITCH_PROB = 0.5
# Label smoothing of the mixed targets.
_C.MIXUP.LABEL_SMOOTH_VALUE = 0.1

# ---------------------------------------------------------------------------- #
# Optimisation
# ---------------------------------------------------------------------------- #
_C.SOLVER = CfgNode()
# Registered optimizer: "sgd" or "adamw".
_C.SOLVER.OPTIMIZING_METHOD = "sgd"
# Learning rate for the global batch TRAIN.BATCH_SIZE.
_C.SOLVER.BASE_LR = 1e-3
# Registered LR policy: "steps_with_relative_lrs" or "cosine".
_C.SOLVER.LR_POLICY = "steps_with_relative_lrs"
# Epochs at which each LRS entry starts (steps policy); the first must be 0, and each should be < MAX_EPOCH.
_C.SOLVER.STEPS = [0, 15, 20]
# LR multipliers of BASE_LR, one per STEPS entry.
_C.SOLVER.LRS = [1.0, 0.1, 0.01]
# Final LR of the cosine policy.
_C.SOLVER.COSINE_END_LR = 0.0
# Number of training epochs.
_C.SOLVER.MAX_EPOCH = 25
# SGD momentum.
_C.SOLVER.MOMENTUM = 0.9
# SGD dampening.
_C.SOLVER.DAMPENING = 0.0
# SGD Nesterov momentum.
_C.SOLVER.NESTEROV = True
# AdamW betas.
_C.SOLVER.BETAS = [0.9, 0.999]
# Weight decay (L2 for SGD, decoupled for AdamW).
_C.SOLVER.WEIGHT_DECAY = 1e-4
# No weight decay on norms, biases, the [CLS] token and position/token-type embeddings.
_C.SOLVER.ZERO_WD_1D_PARAM = True
# Linear warmup length in epochs (0 disables warmup).
_C.SOLVER.WARMUP_EPOCHS = 0.0
# LR at the start of the warmup.
_C.SOLVER.WARMUP_START_LR = 0.0
# Clip the global gradient L2 norm to this value (0 disables clipping).
_C.SOLVER.CLIP_GRAD_L2NORM = 0.0
# LR multiplier of the backbone parameters (1.0: same LR as the rest).
_C.SOLVER.BACKBONE_LR_SCALE = 1.0
# Processes that TRAIN.BATCH_SIZE, TRAIN.ACCUMULATION_STEPS, TEST.BATCH_SIZE and the LRs were written for (e.g. 8 for
# one 8-GPU machine); on another number of processes SOLVER.SCALE_RULE adapts them. 0: the config is used as written.
_C.SOLVER.REFERENCE_WORLD_SIZE = 0
# "keep_global": the global batch and the LRs stay; the per-process batch stays, the accumulation steps follow
# (more of them on fewer processes). "linear": the per-process batch stays, the global batch follows the
# processes, and every LR is scaled by (processes / SOLVER.REFERENCE_WORLD_SIZE).
_C.SOLVER.SCALE_RULE = "keep_global"

# ---------------------------------------------------------------------------- #
# Model
# ---------------------------------------------------------------------------- #
_C.MODEL = CfgNode()
# Registered model architecture.
_C.MODEL.MODEL_NAME = "VTN"
# Number of classes of the classification head.
_C.MODEL.NUM_CLASSES = 400
# Registered training loss (vtn/engine/losses.py): "cross_entropy" (class ids, or mixup's soft targets),
# "soft_target_cross_entropy" or "label_smoothing_cross_entropy" (with MODEL.LABEL_SMOOTHING; not with mixup).
_C.MODEL.LOSS_FUNC = "cross_entropy"
# Label smoothing of "label_smoothing_cross_entropy".
_C.MODEL.LABEL_SMOOTHING = 0.1

# ---------------------------------------------------------------------------- #
# Video Transformer Network
# ---------------------------------------------------------------------------- #
_C.VTN = CfgNode()
# Registered backbone name, or any timm model name (optionally with a ".pretrained_tag").
_C.VTN.BACKBONE = "vit_base_patch16_224"
# Extra keyword arguments for timm.create_model (e.g. img_size, depth, embed_dim).
_C.VTN.BACKBONE_KWARGS = CfgNode(new_allowed=True)
# Load pretrained backbone weights from timm's hub (or from PRETRAINED_PATH when set).
_C.VTN.PRETRAINED = True
# Local backbone weights file (timm state dict, .pth/.safetensors/.npz); used instead of the hub when set.
_C.VTN.PRETRAINED_PATH = ""
# Stochastic depth of the backbone (timm's drop_path_rate; DeiT's recipe uses 0.1), active in training only.
_C.VTN.DROP_PATH_RATE = 0.0
# Train only the temporal encoder and head: no gradients into the backbone, backbone kept in eval mode.
_C.VTN.FREEZE_BACKBONE = False
# Frames per backbone pass at inference (bounds memory on long videos); 0 = all frames in one pass.
_C.VTN.BACKBONE_CHUNK_SIZE = 0
# Run the backbone in channels_last memory format (same results; faster convolutions: benchmarks/README.md).
_C.VTN.CHANNELS_LAST = False
# Recompute activations in the backward pass (backbone blocks, temporal encoder layers): less memory, ~1 more forward.
_C.VTN.GRAD_CHECKPOINTING = False
# Registered temporal encoder implementation: "longformer" (pure PyTorch, linear-time, exportable) or
# "longformer_hf" (transformers' LongformerEncoder, for reference); same weights and outputs.
_C.VTN.TEMPORAL_ENCODER = "longformer"
# Number of Longformer layers.
_C.VTN.NUM_LAYERS = 3
# Attention heads per layer.
_C.VTN.NUM_HEADS = 12
# Longformer hidden size; 0 = the backbone's feature size (otherwise features are projected linearly).
_C.VTN.HIDDEN_DIM = 0
# Longformer FFN inner size; 0 = derived from the backbone (4x for transformers, 2x for CNNs).
_C.VTN.INTERMEDIATE_SIZE = 0
# Whole sliding attention window as transformers counts it (even; half on each side of a token).
_C.VTN.ATTENTION_WINDOW = 32
# Dropout on attention probabilities.
_C.VTN.ATTENTION_DROPOUT = 0.1
# Dropout on the Longformer's hidden states (embeddings, attention output, FFN output).
_C.VTN.HIDDEN_DROPOUT = 0.1
# LayerNorm epsilon inside the temporal encoder.
_C.VTN.LAYER_NORM_EPS = 1e-12
# Frame positions of the learned position table (10 s at 30 fps); the table has two more rows ([CLS], pad).
_C.VTN.MAX_POSITION_EMBEDDINGS = 300
# Position embedding: "learned" (frame index in the video), "fixed" (sinusoid) or "none".
_C.VTN.POS_EMBED = "learned"
# Frame indices beyond the learned table: "modulo" wraps them (the authors' release), "clamp" saturates.
_C.VTN.POS_INDEX_MODE = "modulo"
# Registered classification head.
_C.VTN.HEAD = "mlp"
# Hidden size of the MLP head; 0 = the Longformer hidden size.
_C.VTN.MLP_DIM = 0
# Dropout between the two linear layers of the head.
_C.VTN.HEAD_DROPOUT = 0.5
# Fig. 4 ablation: fixed uniform attention over the allowed keys instead of learned dot-product attention.
_C.VTN.UNIFORM_ATTENTION = False
# Std of the normal initialisation of the Longformer, the [CLS] token and the head (sec. 4.1).
_C.VTN.INIT_STD = 0.02

# ---------------------------------------------------------------------------- #
# Feature cache (tools/extract_features.py; the folder and sampling are DATA.FEATURES_*)
# ---------------------------------------------------------------------------- #
_C.FEATURES = CfgNode()
# Storage dtype of the cached embeddings: "float32", or "float16" (half the disk; read back as float32).
_C.FEATURES.DTYPE = "float32"

# ---------------------------------------------------------------------------- #
# Data loader
# ---------------------------------------------------------------------------- #
_C.DATA_LOADER = CfgNode()
# Worker processes per training process (0 loads in the main process).
_C.DATA_LOADER.NUM_WORKERS = 4
# Pin host memory for faster copies to the GPU (ignored on CPU).
_C.DATA_LOADER.PIN_MEMORY = True
# Keep workers alive between epochs.
_C.DATA_LOADER.PERSISTENT_WORKERS = True
# Tries of other samples when a video fails to decode during training/validation.
_C.DATA_LOADER.NUM_RETRIES = 10
# Repeated augmentation (DeiT): each drawn training video appears this many times in a row, the copies spread
# over the processes, each with its own random augmentation; 1 disables it (DeiT uses 3).
_C.DATA_LOADER.REPEATED_AUG = 1
# Epoch length with REPEATED_AUG > 1: "dataset" keeps as many draws as videos (DeiT's sampler: about 1/REPEATED_AUG
# of the videos, each REPEATED_AUG times), "repeated" holds every video REPEATED_AUG times (REPEATED_AUG x longer).
_C.DATA_LOADER.REPEATED_AUG_EPOCH = "dataset"

# ---------------------------------------------------------------------------- #
# TensorBoard
# ---------------------------------------------------------------------------- #
_C.TENSORBOARD = CfgNode()
# Write TensorBoard scalars.
_C.TENSORBOARD.ENABLE = False
# Log folder; empty = OUTPUT_DIR/tensorboard.
_C.TENSORBOARD.LOG_DIR = ""

# ---------------------------------------------------------------------------- #
# Demo (tools/demo_net.py, or DEMO.ENABLE in tools/run_net.py)
# ---------------------------------------------------------------------------- #
_C.DEMO = CfgNode()
# tools/run_net.py runs the demo on DEMO.INPUT_VIDEO instead of training and testing.
_C.DEMO.ENABLE = False
# Video to classify.
_C.DEMO.INPUT_VIDEO = ""
# Where to write the video (or frame strip) with the prediction overlaid; empty writes nothing.
_C.DEMO.OUTPUT_FILE = ""
# Class names file (json {name: id} or one name per line); empty uses the dataset's classes.
_C.DEMO.LABEL_FILE_PATH = ""
# Number of predictions to print.
_C.DEMO.TOP_K = 5
# Frames per second to sample from the video (e.g. 1 for hours of video); 0: TEST.FULL_VIDEO_FRAMES frames.
_C.DEMO.FPS = 0.0


def get_cfg() -> CfgNode:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()
