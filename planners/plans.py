"""Plans: what the planner decided, as dataclasses that round-trip through an editable plans.json."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from preprocessing.normalization import SCHEMES, ChannelNormalization
from sss_auto.errors import PlansError
from sss_auto.io.atomic import read_json, write_json_atomic
from sss_auto.io.serialization import SchemaError, from_dict, to_dict
from sss_auto.networks.checkpoints import DOWNLOADABLE
from sss_auto.networks.dfe_modes import DFE_INPUTS
from sss_auto.networks.memory_policies import POLICIES
from sss_auto.networks.variants import VARIANTS

FORMAT_VERSION = 1
MAX_PATCH = 1024
CONFIDENCE_MODES = ("global", "class_adaptive")  # see sss_auto/method/thresholds.py
UNLABELED_CE = ("pixel", "class_balanced", "pairs", "foreground")  # see sss_auto/method/losses.py
ALIGNMENTS = ("none", "prior")  # see sss_auto/method/alignment.py
STRONG_STRENGTHS = ("full", "mild")  # see sss_auto/data/strong.py
SSL_STARTS = ("ready", "warmup")  # see sss_auto/method/readiness.py
LABELED_AUGMENTATIONS = ("standard", "strong", "copy_paste")  # see sss_auto/training/loop.py
UNLABELED_TRAININGS = ("weak_to_strong", "self_training")  # see sss_auto/method/self_training.py
CUTMIX_SOURCES = ("unlabeled", "labeled", "bidirectional")  # see sss_auto/data/strong.py
PATCH_MULTIPLE = 32
MAX_MEMORY_FRAMES = 6  # SAM-2's num_maskmem is 7: six memories besides the prompt slice
DEVICES = ("cuda", "cpu")


@dataclass(frozen=True)
class ResamplingPlan:
    """Interpolation orders (nnU-Net's): images cubic, labels linear one-hot, thick axis nearest."""

    order_image: int = 3
    order_label: int = 1
    order_thick_axis: int = 0
    anisotropy_threshold: float = 3.0


def option(default, flag: str | None = None, help: str = ""):
    """A TrainingPlan field that `sss_train FLAG` overrides (flag default: --field-name); help is the option's text."""
    return field(default=default, metadata={"flag": flag, "help": help})


@dataclass(frozen=True)
class TrainingPlan:
    """Training length and optimisation (SSS_METHOD defaults); the fields made with `option` are sss_train flags."""

    num_epochs: int = option(300, "--epochs", "number of epochs")
    iterations_per_epoch: int = option(250, "--iters-per-epoch", "iterations per epoch")
    warmup_epochs: int = option(30, help="supervised epochs before pseudo labels are used (replaces the warm-up share)")
    warmup_fraction: float | None = option(0.4, help="instead: the supervised warm-up's share of the time budget "
                                                     "(or of the epochs without one); null: warmup_epochs")
    ssl_start: str = option("ready", help="when pseudo labels start after the warm-up: 'ready' once every class of the "
                                          "fold's labeled cases is learned on its labeled slices (running Dice >= 0.5; "
                                          "never otherwise), 'warmup' right after it (method/readiness.py)")
    ssl_min_remaining: float = option(0.25, help="the 'ready' start opens only while at least this share of the run "
                                                 "(of the time budget, else of the epochs) remains; a class learned "
                                                 "later leaves the run supervised to its end (method.md)")
    learning_rate: float = option(1e-4, "--lr", "learning rate (heads, DFE, decoder)")
    encoder_lr_factor: float = 0.1
    weight_decay: float = 0.01
    poly_exponent: float = 0.9
    grad_clip_norm: float = 12.0
    ema_decay: float = 0.996
    ema_restart_at_ssl: bool = option(True, "--ema-restart", "restart the EMA teacher as a copy of the student when "
                                                             "SSL starts")
    confidence_threshold: float = 0.95
    confidence_mode: str = option("class_adaptive", help="pseudo-label confidence thresholds: one for all classes "
                                                         "(global), or per class adapting to the teacher's confidence "
                                                         "(method/thresholds.py)")
    unlabeled_ce: str = option("pixel", help="unlabeled cross-entropy averaged over pixels, or per class over the "
                                             "classes present, or pixels plus pairs: where no class reaches its "
                                             "threshold but the two most likely, both foreground, do together, "
                                             "-log(p_a + p_b) (method/steps.py, foreground_pairs), or "
                                             "foreground: foreground against background only, the class from the "
                                             "labels alone (method/losses.py, unlabeled_loss)")
    cutmix_source: str = option("unlabeled", help="where the strong views' CutMix boxes come from: another "
                                                  "unlabeled slice with its pseudo labels (UniMatch), or a labeled "
                                                  "slice with its labels (BCP's labeled-into-unlabeled copy-paste), "
                                                  "or bidirectional (the second strong view a box of the unlabeled "
                                                  "slice in a labeled one; 2d only; data/strong.py)")
    strong_photometric: str = option("full", help="intensity jitter of the strong views: full (UniMatch) or mild "
                                                  "(data/strong.py)")
    labeled_augmentation: str = option("standard", help="labeled slices: the standard (nnU-Net-like) augmentation, "
                                                        "or strong: also the strong views' intensity jitter, blur and "
                                                        "noise (data/strong.py), for intensities that differ between "
                                                        "scanners, or copy_paste: CutMix among the labeled slices with "
                                                        "their labels (2d only)")
    unlabeled_training: str = option("weak_to_strong", help="how the unlabeled scans are used once semi-supervision "
                                                            "starts: weak_to_strong (an EMA teacher labels each weak "
                                                            "view online) or self_training (the student labels the "
                                                            "whole pool once, with TTA, and trains on it like labels; "
                                                            "2d only; method/self_training.py)")
    unlabeled_weight: float = option(0.2, help="w_u in L = (1 - w_u) L_l + w_u L_u (SSS_METHOD: 1/2; "
                                               "documentation/method.md)")
    unlabeled_rampup_epochs: int = option(0, "--rampup-epochs", "SSL epochs over which the unlabeled weight ramps "
                                                                "up to w_u (sigmoid; 0: none)")
    pseudo_label_alignment: str = option("prior", "--alignment", "align the teacher's class shares to the labeled "
                                                                 "prior before taking pseudo labels (method/alignment.py)")
    unready_class_gate: bool = option(False, "--unready-gate", "keep classes the student has not yet learned on the "
                                                               "labeled slices (running Dice < 0.5) out of the unlabeled "
                                                               "loss, with the pixels the teacher ranks highest for them "
                                                               "(method.md \"Small and rare classes\")")
    reliability_gate: bool = option(False, "--reliability-gate", "after every validation, keep each class whose "
                                                                 "pseudo labels on the fold's validation cases find "
                                                                 "fewer of its voxels than they teach away as "
                                                                 "background out of the unlabeled loss, as an unready "
                                                                 "class (method/reliability.py; needs a fold 0-4)")
    foreground_band: float = option(0.0, help="ignore background pseudo labels where a foreground class k ranks in "
                                              "the top (this x its labeled voxel fraction) of the batch's pixels by "
                                              "p_k, where the teacher's misses lie (method/readiness.py; 0: off)")
    pcsw_tau: float = 0.8
    pcsw_refresh_epochs: int = option(10, help="rebuild the PCSW bank every N epochs")
    pcsw_refresh_fraction: float = option(0.1, help="share of the unlabeled pool a bank refresh renews after the "
                                                    "first, complete one: volumes without objects, then the oldest "
                                                    "entries (1: every volume, the full refresh; 0.1 matched it in test "
                                                    "Dice at less cost in the benchmark)")
    foreground_oversampling: float = 0.33
    time_budget_min: float | None = option(None, "--time-budget", "train for this wall-clock time in minutes: the "
                                                                  "epochs are derived from the measured step, validation "
                                                                  "and bank-refresh times, and the LR is scheduled over "
                                                                  "them (--epochs is then ignored)")


def overridable_fields() -> list:
    """The TrainingPlan fields sss_train overrides, in order (dataclasses.Field, with the flag and help metadata)."""
    return [f for f in fields(TrainingPlan) if "flag" in f.metadata]


def flag_of(name: str) -> str:
    """sss_train's flag for a TrainingPlan field (its dest is the field's name)."""
    flag = next((f.metadata["flag"] for f in overridable_fields() if f.name == name), None)
    return flag or "--" + name.replace("_", "-")


@dataclass(frozen=True)
class ConfigurationPlan:
    """One configuration (e.g. "2d").

    Attributes:
        spacing_mm: target (z, y, x) spacing after transposition; a 2d plan keeps each case's z.
        resample_z: whether the first axis is resampled (False for 2d: slices are kept).
        median_shape: median (z, y, x) case shape after resampling, in voxels.
        patch_size: (y, x) for 2d — square, a multiple of 32, at most 1024.
        batch_size_labeled, batch_size_unlabeled: slices per step of each stream.
        sam2_variant: "test" | "tiny" | "small" | "base_plus" | "large".
        encoder: "hiera" (SAM-2) or "conv".
        dfe_levels: feature levels enhanced by DFE (1 = stride 8, 2 = stride 16).
        dfe_inputs: which features DFE pairs: "strong_pair" (the two strong views, the student's own) or
            "weak_strong" (the teacher's weak features with each strong view; an ablation).
        refine: SAM-2 prompt refinement on.
        gpu_memory_target_gib: the budget the plan was made for.
        estimated_step_memory_gib: the planner's estimate of one training step (see planners/memory.py).
        training: schedule and optimiser settings.
        device: the device planned for ("cuda" or "cpu"; planners/target.py).
        pretrained: planned for official SAM-2 weights (sss_train refuses to run without them).
        sam2_checkpoint: the checkpoint found when planning (None: from scratch).
        weights_note: why the plan is or is not pretrained.
        clip_length: consecutive slices per training sample of the volumetric configuration `2d_memory`
            (its batch sizes count clips); 0: single slices (`2d`).
        memory_frames: slice memories each slice of a clip attends to (SAM-2's memory attention); 0 with
            clip_length 0.
        memory_policy: the clip memory bank's rule, "self_sorting" (MedSAM-2's idea) or "fifo" (SAM-2's).
        memory_gate: the memory attention enters as a gated residual, γ = 0 at a random start and 1 with SAM-2
            weights (networks/memory.py); false: SAM-2's plain replacement of the features.
        data_identifier: the preprocessed folder the configuration reads ("": its own name); `2d_memory`
            reads `2d`'s (same spacing, so the same arrays; nnU-Net's field of the same name).
    """

    spacing_mm: tuple[float, float, float]
    resample_z: bool
    median_shape: tuple[int, int, int]
    patch_size: tuple[int, int]
    batch_size_labeled: int
    batch_size_unlabeled: int
    sam2_variant: str
    encoder: str
    dfe_levels: tuple[int, ...]
    refine: bool
    gpu_memory_target_gib: float
    estimated_step_memory_gib: float
    training: TrainingPlan = field(default_factory=TrainingPlan)
    dfe_inputs: str = "strong_pair"
    device: str = "cuda"
    pretrained: bool = False
    sam2_checkpoint: str | None = None
    weights_note: str = ""
    clip_length: int = 0
    memory_frames: int = 0
    memory_policy: str = "self_sorting"
    memory_gate: bool = True
    data_identifier: str = ""


@dataclass(frozen=True)
class Plans:
    """Everything downstream stages need, per dataset."""

    format_version: int
    dataset_name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    transpose_forward: tuple[int, int, int]
    transpose_backward: tuple[int, int, int]
    normalization: tuple[ChannelNormalization, ...]
    resampling: ResamplingPlan
    configurations: dict[str, ConfigurationPlan]

    def configuration(self, name: str) -> ConfigurationPlan:
        if name not in self.configurations:
            raise PlansError(f"configuration {name!r} is not planned; planned: {', '.join(self.configurations)}")
        return self.configurations[name]

    def data_folder(self, name: str) -> str:
        """The preprocessed folder (under the dataset's) that configuration `name` reads."""
        return self.configuration(name).data_identifier or name


def validate_plans(plans: Plans) -> list[str]:
    """Problems of a plans object, as 'key: problem' strings (empty when valid)."""
    problems = []
    if plans.format_version != FORMAT_VERSION:
        problems.append(f"format_version: {plans.format_version}, expected {FORMAT_VERSION}")
    if sorted(plans.transpose_forward) != [0, 1, 2]:
        problems.append(f"transpose_forward: {plans.transpose_forward} is not a permutation of (0, 1, 2)")
    elif tuple(plans.transpose_forward.index(i) for i in range(3)) != tuple(plans.transpose_backward):
        problems.append("transpose_backward: is not the inverse of transpose_forward")
    if len(plans.normalization) != len(plans.channel_names):
        problems.append(f"normalization: {len(plans.normalization)} entries for {len(plans.channel_names)} channels")
    for i, norm in enumerate(plans.normalization):
        if norm.scheme not in SCHEMES:
            problems.append(f"normalization[{i}].scheme: {norm.scheme!r} is not one of {', '.join(SCHEMES)}")
    problems += resampling_problems(plans.resampling)
    for name, config in plans.configurations.items():
        problems += configuration_problems(f"configurations.{name}", config)
        shared = plans.configurations.get(config.data_identifier)
        if config.data_identifier and config.data_identifier != name and (
                shared is None or (shared.spacing_mm, shared.resample_z) != (config.spacing_mm, config.resample_z)):
            problems.append(f"configurations.{name}.data_identifier: {config.data_identifier!r} must name a planned "
                            "configuration with the same spacing_mm and resample_z (whose preprocessed arrays it reads)")
    return problems


# (field, lowest, highest, lowest allowed itself): every numeric TrainingPlan field and its range
TRAINING_RANGES = (
    ("num_epochs", 1, None, True), ("iterations_per_epoch", 1, None, True), ("warmup_epochs", 0, None, True),
    ("learning_rate", 0, None, False), ("encoder_lr_factor", 0, None, True), ("weight_decay", 0, None, True),
    ("poly_exponent", 0, None, True), ("grad_clip_norm", 0, None, False), ("ema_decay", 0, 1, True),
    ("confidence_threshold", 0, 1, False), ("unlabeled_weight", 0, 1, True), ("unlabeled_rampup_epochs", 0, None, True),
    ("pcsw_tau", 0, 1, False), ("pcsw_refresh_epochs", 1, None, True), ("pcsw_refresh_fraction", 0, 1, False),
    ("foreground_oversampling", 0, 1, True), ("ssl_min_remaining", 0, 1, True), ("foreground_band", 0, None, True),
)
# (field, allowed values): every TrainingPlan field that is a choice
TRAINING_CHOICES = (("confidence_mode", CONFIDENCE_MODES), ("unlabeled_ce", UNLABELED_CE),
                    ("pseudo_label_alignment", ALIGNMENTS), ("strong_photometric", STRONG_STRENGTHS),
                    ("ssl_start", SSL_STARTS), ("labeled_augmentation", LABELED_AUGMENTATIONS),
                    ("unlabeled_training", UNLABELED_TRAININGS), ("cutmix_source", CUTMIX_SOURCES))
ENCODERS = ("hiera", "conv")
SPLINE_ORDERS = range(6)


def range_problem(key: str, value, low, high, low_allowed: bool) -> str | None:
    """'key: value must be ...' when value is outside [low, high] (low excluded unless low_allowed)."""
    if value < low or (value == low and not low_allowed) or (high is not None and value > high):
        lower = f">= {low}" if low_allowed else f"> {low}"
        return f"{key}: {value} must be {lower}" + (f" and <= {high}" if high is not None else "")
    return None


def resampling_problems(resampling: ResamplingPlan) -> list[str]:
    """Problems of the resampling plan, as 'key: problem' strings."""
    problems = [f"resampling.{name}: {getattr(resampling, name)} must be a spline order 0..5"
                for name in ("order_image", "order_label", "order_thick_axis") if getattr(resampling, name) not in SPLINE_ORDERS]
    if not resampling.anisotropy_threshold > 1:
        problems.append(f"resampling.anisotropy_threshold: {resampling.anisotropy_threshold} must be > 1")
    return problems


def configuration_problems(where: str, config: ConfigurationPlan) -> list[str]:
    """Problems of one configuration's plan (after command-line overrides too), as 'key: problem' strings."""
    problems = [p for name, low, high, low_allowed in TRAINING_RANGES
                if (p := range_problem(f"{where}.training.{name}", getattr(config.training, name), low, high, low_allowed))]
    if config.training.ema_decay == 1:
        problems.append(f"{where}.training.ema_decay: 1 would never update the teacher; must be < 1")
    if config.encoder not in ENCODERS:
        problems.append(f"{where}.encoder: {config.encoder!r} is not one of {', '.join(ENCODERS)}")
    if config.resample_z:
        problems.append(f"{where}.resample_z: true is not supported (a 2d plan keeps each case's slices)")
    for side in config.patch_size:
        if side % PATCH_MULTIPLE or not 0 < side <= MAX_PATCH:
            problems.append(f"{where}.patch_size: {config.patch_size} must be multiples of {PATCH_MULTIPLE} in 32..{MAX_PATCH}")
            break
    if len(set(config.patch_size)) != 1:
        problems.append(f"{where}.patch_size: {config.patch_size} must be square (SAM-2's prompt encoder grid)")
    if config.sam2_variant not in VARIANTS:
        problems.append(f"{where}.sam2_variant: {config.sam2_variant!r} is not one of {', '.join(VARIANTS)}")
    if config.batch_size_labeled < 1 or config.batch_size_unlabeled < 1:
        problems.append(f"{where}: batch sizes must be at least 1")
    if any(level not in (0, 1, 2) for level in config.dfe_levels):
        problems.append(f"{where}.dfe_levels: {config.dfe_levels} must be levels 0, 1 or 2")
    problems += [f"{where}.training.{name}: {getattr(config.training, name)!r} is not one of {', '.join(allowed)}"
                 for name, allowed in TRAINING_CHOICES if getattr(config.training, name) not in allowed]
    fraction = config.training.warmup_fraction
    if fraction is not None and not 0 <= fraction < 1:
        problems.append(f"{where}.training.warmup_fraction: {fraction} must be in [0, 1) (or null)")
    budget = config.training.time_budget_min
    if budget is not None and not budget > 0:
        problems.append(f"{where}.training.time_budget_min: {budget} must be a positive number of minutes (or null)")
    if config.training.unlabeled_training == "self_training" and config.clip_length:
        problems.append(f"{where}.training.unlabeled_training: self_training trains on single slices (2d); this "
                        f"configuration trains on clips of {config.clip_length} (use weak_to_strong)")
    no_strong_view = config.clip_length or config.training.unlabeled_training != "weak_to_strong"
    if config.training.cutmix_source != "unlabeled" and no_strong_view:
        problems.append(f"{where}.training.cutmix_source: {config.training.cutmix_source} boxes are pasted into the "
                        "strong views of the 2d weak_to_strong step; this configuration has none (clips are not mixed, "
                        "self_training draws no strong view; use unlabeled)")
    if config.training.labeled_augmentation == "copy_paste" and config.clip_length:
        problems.append(f"{where}.training.labeled_augmentation: copy_paste mixes single slices; this configuration "
                        f"trains on clips of {config.clip_length} (use standard or strong)")
    if config.training.unlabeled_training == "self_training" and config.training.foreground_band:
        problems.append(f"{where}.training.foreground_band: {config.training.foreground_band} applies to the online "
                        "weak_to_strong step; self_training labels the pool once, without it (use 0)")
    if config.dfe_inputs not in DFE_INPUTS:
        problems.append(f"{where}.dfe_inputs: {config.dfe_inputs!r} is not one of {', '.join(DFE_INPUTS)}")
    if config.device not in DEVICES:
        problems.append(f"{where}.device: {config.device!r} is not one of {', '.join(DEVICES)}")
    if config.pretrained and (config.sam2_variant not in DOWNLOADABLE or not config.sam2_checkpoint):
        problems.append(f"{where}.pretrained: true needs an official variant ({', '.join(DOWNLOADABLE)}) and its "
                        "sam2_checkpoint")
    if min(config.spacing_mm) <= 0:
        problems.append(f"{where}.spacing_mm: must be positive")
    return problems + memory_problems(where, config)


def memory_problems(where: str, config: ConfigurationPlan) -> list[str]:
    """Problems of the clip and memory fields: both 0 (2d), or a clip of >= 2 slices with >= 1 memory frame."""
    problems = []
    if config.clip_length == 0 and config.memory_frames == 0:
        return problems
    if config.clip_length < 2:
        problems.append(f"{where}.clip_length: {config.clip_length} must be >= 2 with memory frames (0 and 0: the 2d network)")
    if not 1 <= config.memory_frames <= MAX_MEMORY_FRAMES:
        problems.append(f"{where}.memory_frames: {config.memory_frames} must be in 1..{MAX_MEMORY_FRAMES} with a clip "
                        "(SAM-2's temporal positions)")
    if config.memory_policy not in POLICIES:
        problems.append(f"{where}.memory_policy: {config.memory_policy!r} is not one of {', '.join(POLICIES)}")
    if config.dfe_levels and config.dfe_inputs != "strong_pair":
        problems.append(f"{where}.dfe_inputs: {config.dfe_inputs!r} must be 'strong_pair' with a clip and DFE levels "
                        "(a strong clip is paired with itself; no clip step passes the teacher's weak features)")
    return problems


def save_plans(plans: Plans, path: Path) -> None:
    """Write plans.json atomically (after validating)."""
    problems = validate_plans(plans)
    if problems:
        raise PlansError(f"{path}: refusing to write invalid plans: {'; '.join(problems)}")
    write_json_atomic(to_dict(plans), path)


def load_plans(path: Path) -> Plans:
    """Read and validate plans.json; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise PlansError(f"{path}: missing; run sss_plan first")
    try:
        plans = from_dict(Plans, read_json(path), "plans")
    except (ValueError, SchemaError) as err:
        raise PlansError(f"{path}: {err}") from err
    problems = validate_plans(plans)
    if problems:
        raise PlansError(f"{path}: {'; '.join(problems)}")
    return plans
