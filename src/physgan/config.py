"""The run configuration: one pydantic schema, the single home of every default.

A config is a YAML file, or the name of one shipped in the package (``grid25``: see
:func:`shipped_configs`), with sections ``data``, ``model``, ``loss``, ``train``, ``sample`` and a
top-level ``seed``. Unknown keys, wrong types and bad values raise
:class:`~physgan.errors.ConfigError` with one line naming the dotted key. Components never import
this module: the API turns the config into keyword arguments.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from physgan.errors import ConfigError

__all__ = [
    "Config",
    "apply_overrides",
    "load_config",
    "parse_config",
    "shipped_config_text",
    "shipped_configs",
]

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Beta = Annotated[float, Field(ge=0, lt=1)]
Activation = Literal["relu", "leaky_relu", "elu", "gelu", "silu", "tanh"]


class _Section(BaseModel):
    # NaN and inf are refused everywhere: no setting of a run is meaningful at either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StreamConfig(_Section):
    """Train on an HDF5 file larger than memory: shuffled buffers of chunks from across it."""

    buffer_rows: PositiveInt = 1 << 20  # training rows held in RAM (two buffers at most)
    refresh_every: PositiveInt | None = None  # steps per buffer; None: buffer_rows // batch
    fit_rows: PositiveInt = 200_000  # rows read up front to fit the transform on


class DataConfig(_Section):
    name: str | None = "grid25"  # bimodal, ring8, grid25; jets-gluon, -quark, -top, -W, -Z
    path: Path | None = None  # or a user's file (.npy, .npz, .h5, .root, .parquet; see README)
    columns: list[str] | None = None  # features from these columns / branches / datasets of path
    n_train: PositiveInt = 100_000  # built-in toys: training samples drawn once from the seed
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1  # held out for the JSD bound
    conditional: bool = False  # toys: condition on the one-hot mixture component (files: cond)
    # jets: condition on these jet features (standardised; n_particles also sets the multiplicity)
    condition_on: list[Literal["pt", "eta", "mass", "n_particles"]] | None = None
    # standardize: per feature; scale: divide everything by one number (images: zeros stay 0);
    # sqrt: the square root of that (non-negative images: compresses their dynamic range)
    transform: Literal["standardize", "scale", "sqrt", "none"] = "standardize"  # saved with the run
    stream: StreamConfig | None = None  # data.path an HDF5 file: stream it (true: defaults)

    @model_validator(mode="before")
    @classmethod
    def _path_replaces_name(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("path") is not None:
            values = {**values, "name": values.get("name")}
        if isinstance(values, dict) and isinstance(values.get("stream"), bool):
            values = {**values, "stream": {} if values["stream"] else None}
        return values

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.name is None) == (self.path is None):
            raise ValueError("give exactly one of data.name and data.path")
        if self.columns is not None and (self.path is None or not self.columns):
            raise ValueError("data.columns names columns of data.path: give both, non-empty")
        if self.stream is not None and (
            self.path is None or self.path.suffix.lower() not in (".h5", ".hdf5") or self.columns
        ):
            raise ValueError("data.stream reads a data.path HDF5 file (.h5, .hdf5), no columns")
        if self.condition_on is not None:
            if not self.condition_on or len(set(self.condition_on)) < len(self.condition_on):
                raise ValueError("data.condition_on: name each jet feature once, at least one")
            if self.conditional or self.stream is not None or self.columns:
                raise ValueError(
                    "data.condition_on: conditions on a jet file's features; it cannot be "
                    "combined with data.conditional, data.stream or data.columns"
                )
        return self


class MLPGeneratorConfig(_Section):
    kind: Literal["mlp"] = "mlp"
    latent_dim: PositiveInt = 8  # dimension of z ~ N(0, I)
    hidden: PositiveInt = 256  # width of each hidden layer
    depth: PositiveInt = 3  # number of hidden layers
    activation: Activation = "relu"
    norm: Literal["none", "batch", "layer"] = "none"
    categories: Annotated[int, Field(ge=0)] = 0  # one-hot categorical code added to z (InfoGAN)


class DCGANGeneratorConfig(_Section):
    kind: Literal["dcgan"]
    latent_dim: PositiveInt = 100
    base_channels: PositiveInt = 64  # channels of the last deconvolution; doubled per level
    output: Literal["linear", "relu", "softplus", "tanh"] = "linear"
    draw_total: bool = False  # each image's pixel sum drawn from the training images' (per class)
    upsample: Literal["transpose", "resize"] = "transpose"  # resize: nearest 2x + 3x3 conv
    relu_leak: Annotated[float, Field(ge=0)] = 0.0  # ReLU output's gradient below 0 (image same)


class MLPDiscriminatorConfig(_Section):
    kind: Literal["mlp"] = "mlp"
    hidden: PositiveInt = 256
    depth: PositiveInt = 3
    activation: Activation = "leaky_relu"
    norm: Literal["none", "batch", "layer"] = "none"
    spectral_norm: bool = False  # Miyato et al. 2018, arXiv:1802.05957
    pack: PositiveInt = 1  # PacGAN: samples per discriminator input (arXiv:1712.04086)
    minibatch_std: bool = False  # append the batch's mean feature std (arXiv:1710.10196)


class DCGANDiscriminatorConfig(_Section):
    kind: Literal["dcgan"]
    base_channels: PositiveInt = 64
    spectral_norm: bool = False
    pack: PositiveInt = 1
    minibatch_std: bool = False
    log_pixels: Annotated[float, Field(ge=0)] = 0.0  # > 0: D also sees log(1 + x / log_pixels)
    observables: bool = False  # D's last layer also sees each image's mass and tau_21
    observables_hidden: Annotated[int, Field(ge=0)] = 0  # > 0: via an MLP this wide, with class


class LAGANGeneratorConfig(_Section):
    """LAGAN's generator (de Oliveira et al. 2017, arXiv:1701.05927): 25x25 images only."""

    kind: Literal["lagan"]
    latent_dim: PositiveInt = 200  # LAGAN: 200
    base_channels: PositiveInt = 64  # channels of the 5x5 convolution; its input has 2x
    output: Literal["linear", "relu", "softplus", "tanh"] = "relu"  # relu: pixels >= 0


class LAGANDiscriminatorConfig(_Section):
    """LAGAN's discriminator, without its auxiliary class head (conditioned on inputs)."""

    kind: Literal["lagan"]
    base_channels: PositiveInt = 32  # channels of the first (5x5) convolution
    batch_norm: bool = True  # after each locally connected block, as in LAGAN
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2  # after every block
    # Minibatch discrimination features (Salimans et al. 2016, arXiv:1606.03498); 0: off
    minibatch_kernels: Annotated[int, Field(ge=0)] = 20
    spectral_norm: bool = False  # also normalises the locally connected layers

    @property
    def pack(self) -> int:
        """1: one logit per image (no PacGAN packing); the batch enters through minibatch
        discrimination and batch norm instead."""
        return 1


class EPiCGeneratorConfig(_Section):
    kind: Literal["epic"]
    latent_dim: PositiveInt = 10  # per-particle noise width
    global_dim: PositiveInt = 10  # width of the jet-level global vector
    hidden: PositiveInt = 128  # per-particle width (EPiC-GAN on JetNet30: 128; 48-64 on a CPU)
    layers: Annotated[int, Field(ge=0)] = 6  # EPiC layers (Buhmann et al., arXiv:2301.08128)


class EPiCDiscriminatorConfig(_Section):
    kind: Literal["epic"]
    global_dim: PositiveInt = 10
    hidden: PositiveInt = 128
    layers: Annotated[int, Field(ge=0)] = 3
    spectral_norm: bool = False  # arXiv:1802.05957
    pack: PositiveInt = 1  # PacGAN over pooled jet summaries (arXiv:1712.04086)
    minibatch_std: bool = False  # arXiv:1710.10196


GeneratorConfig = Annotated[
    MLPGeneratorConfig | DCGANGeneratorConfig | LAGANGeneratorConfig | EPiCGeneratorConfig,
    Field(discriminator="kind"),
]
DiscriminatorConfig = Annotated[
    MLPDiscriminatorConfig
    | DCGANDiscriminatorConfig
    | LAGANDiscriminatorConfig
    | EPiCDiscriminatorConfig,
    Field(discriminator="kind"),
]


class GANModelConfig(_Section):
    family: Literal["gan"] = "gan"
    generator: GeneratorConfig = MLPGeneratorConfig()
    discriminator: DiscriminatorConfig = MLPDiscriminatorConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for role in ("generator", "discriminator"):
            if isinstance(values.get(role), dict) and "kind" not in values[role]:
                values[role] = {"kind": "mlp", **values[role]}
        return values


class VAEModelConfig(_Section):
    """A Gaussian VAE (Kingma & Welling 2014, arXiv:1312.6114) trained on the (beta-)ELBO."""

    family: Literal["vae"]
    latent_dim: PositiveInt = 8  # dimension of z ~ N(0, I)
    hidden: PositiveInt = 256  # width of the encoder's and the decoder's hidden layers
    depth: Annotated[int, Field(ge=0)] = 3  # hidden layers of each (0: linear)
    activation: Activation = "relu"
    decoder: Literal["mlp", "conv"] = "mlp"  # conv: deconvolutional (DCGAN) decoder for images
    base_channels: PositiveInt = 32  # conv decoder: channels of its last upsampling block
    min_sigma: Annotated[float, Field(gt=0, lt=1)] = 1e-2  # decoder std floor (normalised units)
    beta: Annotated[float, Field(ge=0)] = 1.0  # weight of KL(q(z|x) || p(z)) (Higgins et al.)
    kl_warmup: Annotated[int, Field(ge=0)] = 0  # steps over which the KL weight rises to beta


class FlowModelConfig(_Section):
    """A normalising flow (zuko) trained by maximum likelihood: the likelihood baseline."""

    family: Literal["flow"]
    kind: Literal["nsf", "maf"] = "nsf"  # neural spline flow or masked autoregressive flow
    transforms: PositiveInt = 4  # flow layers
    hidden: PositiveInt = 128  # width of each layer's conditioner network
    depth: PositiveInt = 2  # hidden layers of each conditioner
    bins: PositiveInt = 8  # nsf: spline bins
    passes: Annotated[int, Field(ge=2)] | None = None  # None: autoregressive; 2: coupling layers
    # Std of Gaussian noise added to training batches (normalised units): keeps the density
    # finite on discrete or constant features such as particle masks and zero padding.
    dequantize: Annotated[float, Field(ge=0)] = 0.0


ModelConfig = Annotated[
    GANModelConfig | VAEModelConfig | FlowModelConfig, Field(discriminator="family")
]
_UNION_TAGS = {"gan", "vae", "flow", "mlp", "dcgan", "lagan", "epic"}


class LossConfig(_Section):
    name: str = "nonsaturating"  # minimax, nonsaturating, wgan-gp, hinge, lsgan
    r1: Annotated[float, Field(ge=0)] = 0.0  # weight gamma of the R1 penalty on real data
    # The R1 weight falls linearly to 0 over this share of train.steps, from the start (None:
    # constant): a smooth D early finds every mode, a sharp one late puts samples on them.
    r1_until: Annotated[float, Field(gt=0, le=1)] | None = None
    gp: Annotated[float, Field(ge=0)] | None = None  # gradient-penalty weight; None: 10 for wgan-gp
    # Jets (particle clouds or images): weights of an MMD^2 between an observable of each
    # generated batch and of the real batch of the same conditions, added to G's loss (Butter,
    # Plehn and Winterhalder, arXiv:1907.03764; physgan.losses.ObservableMMD): the jet mass
    # (relative to the jet pT for clouds), tau_21 and the log10 pT of the lit pixels (images).
    # 0: off. scripts/mmd_gradients.py RUN gives the weight at which each term pulls on G as
    # hard as D does; far above it G follows the MMD and D tells its samples apart.
    mass_mmd: Annotated[float, Field(ge=0)] = 0.0
    tau21_mmd: Annotated[float, Field(ge=0)] = 0.0
    pixel_mmd: Annotated[float, Field(ge=0)] = 0.0
    # The MMD terms start at this share of train.steps (0: at the first step). From the start
    # they pull G to the right masses through the wrong particles while D is still weak.
    mmd_from: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # Class-conditional jet images: compare each class's generated observables with the real
    # ones of that class, not the pooled batch's (where one class may sit off one way and the
    # other the other way while the pool matches).
    mmd_per_class: bool = False

    def mmd_start(self, steps: int) -> int:
        """The generator step at which the MMD terms join G's loss, of ``steps``."""
        return round(steps * self.mmd_from)

    def r1_steps(self, steps: int) -> int | None:
        """The generator step at which the R1 weight reaches 0, of ``steps`` (None: never)."""
        return None if self.r1_until is None else round(steps * self.r1_until)

    @property
    def gp_weight(self) -> float:
        if self.gp is not None:
            return self.gp
        return 10.0 if self.name == "wgan-gp" else 0.0


class TrainConfig(_Section):
    steps: PositiveInt = 5_000  # generator steps
    batch_size: PositiveInt = 256
    n_critic: PositiveInt = 1  # discriminator steps per generator step
    lr_g: PositiveFloat = 2e-4  # G's learning rate; the whole model's for a VAE or a flow
    lr_d: PositiveFloat = 2e-4
    betas_g: tuple[Beta, Beta] = (0.5, 0.999)  # Adam betas of G (of a VAE or flow: 0.9, 0.999)
    betas_d: tuple[Beta, Beta] = (0.5, 0.999)
    ema: Annotated[float, Field(gt=0, lt=1)] | None = 0.999  # EMA decay of G; None: off
    # The last share of train.steps over which every learning rate falls linearly to 0 (0.4:
    # from step 0.6 steps on; physgan.training.schedule); None: constant. A resume may change it.
    lr_decay: Annotated[float, Field(gt=0, le=1)] | None = None
    log_every: PositiveInt = 100  # steps between metrics.jsonl lines
    checkpoint_every: PositiveInt = 1_000  # steps between checkpoints (and one at the end)
    eval_samples: PositiveInt = 2_048  # held-out real and generated samples for the JSD bound
    # Every select_every steps (a multiple of log_every), score the sampling generator on
    # select_samples samples and keep the best weights in RUN/best.safetensors, which sample,
    # evaluate and export use. Jets: W1 of mass, particle features and EFPs over their floors
    # on held-out jets; jet images: W1 of mass, tau_21 and the pixel spectrum per class; built-in
    # toys: modes missed + reverse KL of the modes + low-quality share
    # (physgan.training.selection).
    select_every: PositiveInt | None = None
    select_samples: PositiveInt = 5_000
    # A NaN or infinite loss or weight: stop (the last good checkpoint is kept), or roll back
    # to that checkpoint with every learning rate halved, at most max_rollbacks times.
    on_divergence: Literal["stop", "rollback"] = "stop"
    max_rollbacks: Annotated[int, Field(ge=0)] = 3
    # Where and how the same loop runs; none of these changes what is trained, but bf16 and
    # fp16 change the numbers. auto: the GPU when torch sees one (cuda:LOCAL_RANK under torchrun).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast; fp16 adds a grad scaler
    compile: bool = False  # torch.compile the networks' forward passes (slow first steps)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.select_every is not None and self.select_every % self.log_every:
            raise ValueError(
                f"select_every: {self.select_every} is not a multiple of log_every = "
                f"{self.log_every} (the scores go to metrics.jsonl)"
            )
        return self


class SampleConfig(_Section):
    # Discriminator rejection sampling (Azadi et al. 2019, arXiv:1810.06758): keep a generated x
    # with probability exp(logit D(x) - M), turning p_g into p_data where D = D* and p_g > 0.
    rejection: bool = False
    cap_quantile: Annotated[float, Field(gt=0, le=1)] = 1.0  # M: this quantile of the logits
    # D steps against the fixed sampling G (EMA) before rejecting, on a copy, the learning rate
    # decaying from lr_d to 0: D -> its D* (physgan.sampling.calibrate_discriminator). Done once
    # when training ends; the copy is kept in the checkpoint. At most train.steps: a short run
    # calibrates briefly.
    calibrate_steps: Annotated[int, Field(ge=0)] = 0
    # What estimates log(p_data / p_g) for rejection: the GAN's D (calibrated as above), or,
    # for jet images, a small classifier of their observables (physgan.image_ratio), fitted
    # once per generator on the training images against as many generated ones.
    ratio: Literal["discriminator", "observables"] = "discriminator"
    # Jacobian-based truncation (Tanielian et al. 2020, arXiv:2006.04596; physgan.truncation):
    # drop this fraction of the latent draws, those where ||dG/dz|| is largest, which G maps
    # between the modes. Unconditional MLP generators; before rejection when both are on.
    truncation: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # Jets (any family): draw again, with the same condition, each generated jet that lies
    # outside the training jets' support (RUN/support.json: the range of relative mass, sum of
    # pt_rel and the particles' largest abs(eta_rel), abs(phi_rel), between the 10^-4 and
    # 1 - 10^-4 quantiles of the training jets), at most 20 times.
    in_support: bool = True


_DEFAULTS = {"loss": LossConfig(), "train": TrainConfig(), "sample": SampleConfig()}
_GAN_ONLY = {
    "loss": tuple(LossConfig.model_fields),
    "train": ("n_critic", "lr_d", "betas_d"),
    "sample": tuple(k for k in SampleConfig.model_fields if k != "in_support"),
}


class Config(_Section):
    seed: Annotated[int, Field(ge=0)] = 0  # every random stream of the run derives from it
    data: DataConfig = DataConfig()
    model: ModelConfig = GANModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    sample: SampleConfig = SampleConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_family(cls, values: Any) -> Any:
        if isinstance(values, dict):
            model = values.get("model")
            if isinstance(model, str):  # model: vae
                values = {**values, "model": {"family": model}}
            elif isinstance(model, dict) and "family" not in model:
                values = {**values, "model": {"family": "gan", **model}}
        return values

    @model_validator(mode="after")
    def _gan_only_settings(self) -> Config:
        if self.model.family == "gan":
            return self
        # Compared with the defaults, not with what was set: a saved config lists every key.
        gan_only = [
            f"{name}.{key}"
            for name, keys in _GAN_ONLY.items()
            for key in keys
            if getattr(getattr(self, name), key) != getattr(_DEFAULTS[name], key)
        ]
        if gan_only:
            raise ValueError(
                f"{gan_only[0]}: a GAN setting, but model.family is {self.model.family}"
            )
        return self

    @model_validator(mode="after")
    def _drawn_total_is_a_sum(self) -> Config:
        generator = getattr(self.model, "generator", None)
        if not getattr(generator, "draw_total", False):
            return self
        if generator.output != "relu":
            raise ValueError("model.generator.draw_total is a ReLU output: output relu")
        if self.data.transform not in ("scale", "sqrt", "none"):
            raise ValueError(
                "model.generator.draw_total: the pixels' sum is the total pT only for "
                f"data.transform scale, sqrt or none, not {self.data.transform}"
            )
        return self

    @model_validator(mode="after")
    def _truncation_needs_an_mlp(self) -> Config:
        if not self.sample.truncation:
            return self
        generator = self.model.generator if self.model.family == "gan" else None
        conditional = self.data.conditional or self.data.condition_on
        if not isinstance(generator, MLPGeneratorConfig) or generator.categories or conditional:
            raise ValueError(
                "sample.truncation: supported for unconditional GANs with an mlp generator "
                "without categories"
            )
        return self

    @model_validator(mode="after")
    def _rejection_needs_a_logit(self) -> Config:
        from physgan.losses import OBJECTIVES

        if not self.sample.rejection or self.sample.ratio == "observables":
            return self
        objective = OBJECTIVES.get(self.loss.name) if self.loss.name in OBJECTIVES else None
        if objective is not None and not objective.probabilistic:
            raise ValueError(
                f"sample.rejection needs a discriminator logit: use loss minimax or "
                f"nonsaturating, not {self.loss.name}"
            )
        if self.model.family != "gan" or self.model.discriminator.pack != 1:
            raise ValueError("sample.rejection needs per-sample scores: model.discriminator.pack 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able types."""
        return self.model_dump(mode="json")


def _printable(text: str) -> str:
    """``text``, or its escaped repr if it holds line breaks or other unprintable characters."""
    return text if text.isprintable() else repr(text)


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    parts: list[str] = []
    for part in map(str, first["loc"]):
        tag = part in _UNION_TAGS and parts[-1:] in (["model"], ["generator"], ["discriminator"])
        if not (tag or part.endswith("Config")):
            parts.append(_printable(part))
    loc = ".".join(parts)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "union_tag_invalid":
        ctx = first["ctx"]
        msg = f"unknown {ctx['discriminator'].strip(chr(39))} {ctx['tag']!r}; choose from: "
        msg += ctx["expected_tags"].replace("'", "")
    elif "input" in first and not isinstance(first["input"], dict | list):
        got = repr(first["input"])
        msg += f" (got {got if len(got) <= 80 else got[:76] + ' ...'})"
    where = f"{loc}: " if loc else ""
    return f"config: {where}{' '.join(msg.splitlines())}"


def parse_config(raw: dict[str, Any] | Config) -> Config:
    """Validate a config given as a dict (e.g. from YAML); raise ConfigError naming the key."""
    if isinstance(raw, Config):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None
    from physgan.losses import OBJECTIVES

    if config.loss.name not in OBJECTIVES:
        raise ConfigError(
            f"config: loss.name: unknown loss {config.loss.name!r}; "
            f"choose from: {', '.join(OBJECTIVES.names())}"
        )
    return config


_OTHER_SOURCE = {"data.path": "name", "data.name": "path"}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config dict.

    ``data.path`` and ``data.name`` are the two data sources: overriding one replaces the
    config's other, unless that is overridden too.

    >>> apply_overrides({"train": {"steps": 10}}, ["train.steps=200", "seed=3"])
    {'train': {'steps': 200}, 'seed': 3}
    >>> apply_overrides({"data": {"name": "ring8"}}, ["data.path=x.npy"])
    {'data': {'name': None, 'path': 'x.npy'}}
    """
    out = copy.deepcopy(raw)
    keys = {item.partition("=")[0] for item in overrides}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
        try:
            node[leaf] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: value is not valid YAML") from None
        other = _OTHER_SOURCE.get(key)
        if other and node[leaf] is not None and f"data.{other}" not in keys:
            node[other] = None
    return out


_SHIPPED = resources.files("physgan") / "configs"


def shipped_configs() -> dict[str, str]:
    """The configs shipped in the package, by name, each with its first comment line."""
    configs = {}
    for entry in sorted(_SHIPPED.iterdir(), key=lambda e: e.name.removesuffix(".yaml")):
        if entry.name.endswith(".yaml"):
            first = entry.read_text(encoding="utf-8").partition("\n")[0]
            configs[entry.name.removesuffix(".yaml")] = first.removeprefix("#").strip()
    return configs


def _is_shipped(name: str) -> bool:
    return Path(name).name == name and (_SHIPPED / f"{name}.yaml").is_file()


def shipped_config_text(name: str) -> str:
    """The YAML text of the shipped config ``name`` (``grid25``), to copy and edit."""
    if not _is_shipped(name):
        raise ConfigError(f"config {name}: no shipped config of that name; {_known()}")
    return (_SHIPPED / f"{name}.yaml").read_text(encoding="utf-8")


def _known() -> str:
    return f"shipped configs: {', '.join(shipped_configs())} (`physgan configs list`)"


def _config_text(source: str | Path) -> str:
    """The text of a config file, else of the shipped config of that name."""
    path = Path(source)
    if not path.exists() and isinstance(source, str) and _is_shipped(source):
        return shipped_config_text(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = _known()
        if _is_shipped(path.stem):
            hint = f"the shipped config is addressed by its name: {path.stem}"
        raise ConfigError(f"config {source}: no such file; {hint}") from None
    except OSError as err:
        raise ConfigError(f"config {source}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config {source}: not UTF-8 text (byte {err.start})") from None


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (a file, or a shipped config's name) with the safe loader, apply
    ``overrides`` (``"train.steps=200"``) and validate it. A file of that name comes first."""
    text = _config_text(source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config {source}: {_yaml_problem(err)}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"config {source}: expected a mapping at the top level")
    raw = apply_overrides(raw, list(overrides))
    try:
        return parse_config(raw)
    except ConfigError as err:  # name the file as well as the key
        raise ConfigError(f"config {source}: {str(err).removeprefix('config: ')}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line on what the safe loader refused, and where."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark else ""
    problem = str(getattr(err, "problem", None) or getattr(err, "reason", None) or "")
    if isinstance(err, yaml.constructor.ConstructorError) and "tag" in problem:
        # e.g. !!python/object/apply:os.system: the safe loader refuses to build it.
        tag = problem.rpartition(" ")[2]
        return f"tag {tag}{where} refused (configs are plain YAML: no Python objects)"
    return f"not valid YAML{where}" + (f" ({' '.join(problem.split())})" if problem else "")
