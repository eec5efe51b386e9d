"""The ``physgan`` command: parses arguments, calls :mod:`physgan.api`, maps errors to exit codes.

Exit codes: 0 success, 2 bad input (config, data, run directory: one line naming the problem)
or a diverged training run, 1 an unexpected internal error (one line; ``--debug`` shows the
traceback), 130 / 143 training stopped by SIGINT / SIGTERM after writing a checkpoint (130
also for any other interruption).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence

from physgan.errors import PhysganError
from physgan.version import __version__

__all__ = ["main"]


def _cmd_train(args: argparse.Namespace) -> int:
    from physgan import api

    result = api.train(
        args.config,
        args.out,
        overrides=tuple(args.set),
        resume=args.resume,
        progress=not args.no_progress,
        nproc=args.nproc,
    )
    code = {"SIGINT": 130, "SIGTERM": 143}.get(result.stopped_by or "", 0)
    if "WORLD_SIZE" in os.environ:
        from physgan.training.distributed import quiet

        if quiet():  # one rank of several: rank 0, or the launcher, reports
            return code
    if result.stopped_by:
        print(
            f"physgan: {result.stopped_by}: stopped at step {result.step} after writing a "
            f"checkpoint; `physgan train ... --resume` continues",
            file=sys.stderr,
        )
        return code
    print(f"trained {result.step} steps -> {result.run_dir}")
    if result.metrics:
        print(json.dumps(result.metrics, indent=2))
    return 0


def _condition(text: str) -> tuple[str, float | str]:
    """NAME=NUMBER, or NAME=WORD for a class (``class=W``)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        return name, value
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return name, number


def _cmd_sample(args: argparse.Namespace) -> None:
    from physgan import api

    x = api.sample(
        args.run_dir,
        args.n,
        seed=args.seed,
        cond=dict(args.cond) if args.cond else None,
        out=args.output,
        rejection=args.rejection,
        truncation=args.truncation,
        weights=args.weights,
    )
    print(f"wrote {x.shape[0]} samples of shape {tuple(x.shape[1:])} -> {args.output}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from physgan import api

    result = api.evaluate(
        args.run_dir,
        n=args.n,
        seed=args.seed,
        reference=args.reference,
        rejection=args.rejection,
        truncation=args.truncation,
        weights=args.weights,
        out=args.out,
    )
    print(json.dumps(result, indent=2))


def _cmd_compare(args: argparse.Namespace) -> None:
    from physgan import api

    result = api.compare(args.run_dirs, out=args.out, n=args.n, seed=args.seed)
    print(result.table)
    print(f"\nwrote {result.markdown}, {result.json} and {result.figure}")


def _cmd_export(args: argparse.Namespace) -> None:
    from physgan import api

    result = api.export_onnx(
        args.run_dir, args.onnx, batch_size=args.batch, opset=args.opset, weights=args.weights
    )

    def shape(dims: tuple[int | str, ...]) -> str:
        return f"({', '.join(map(str, dims))})"

    inputs = ", ".join(f"{name} {shape(dims)}" for name, dims in result.inputs.items())
    outputs = ", ".join(f"{name} {shape(dims)}" for name, dims in result.outputs.items())
    print(f"wrote {result.path} (ONNX opset {result.opset}): {inputs} -> {outputs}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from physgan import api

    pretrained = None if args.pretrained == "none" else args.pretrained
    result = api.demo(
        args.config,
        args.out,
        n=args.n,
        seed=args.seed,
        progress=True,
        pretrained=pretrained,
        n_fresh=args.n_fresh,
    )
    print(result.table)


def _cmd_theory(args: argparse.Namespace) -> None:
    from physgan import api

    print(api.theory(out=args.out).table)


def _cmd_data(args: argparse.Namespace) -> None:
    from physgan import api
    from physgan.data.jetgen import parse_shard

    images = args.kind == "jet-images"
    generate = api.generate_jet_images if images else api.generate_jets
    size = {"pixels": args.pixels} if images else {"n_particles": args.particles}
    out = generate(
        args.process,
        args.n,
        args.output,
        **size,
        seed=args.seed,
        workers=args.workers,
        shard=parse_shard(args.shard),
        progress=not args.no_progress,
    )
    print(f"wrote {args.process} {args.kind} -> {out}")


def _cmd_configs(args: argparse.Namespace) -> None:
    from physgan import api

    if args.action == "show":
        print(api.shipped_config_text(args.name), end="")
        return
    configs = api.shipped_configs()
    width = max(map(len, configs))
    for name, summary in configs.items():
        print(f"{name:<{width}}  {summary}")


def _configs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("configs", help="the configs shipped with physgan: list them, print one")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="each shipped config's name and what it trains (default)")
    show = actions.add_parser("show", help="print a shipped config, e.g. to copy and edit")
    show.add_argument("name", help="config name, e.g. grid25")
    p.set_defaults(func=_cmd_configs, action="list")


def _data_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="simulate physics datasets (needs physgan[hep])")
    kinds = data.add_subparsers(dest="kind", required=True, metavar="KIND")
    jets = kinds.add_parser("jets", help="Pythia 8 + FastJet jets as particle clouds (JetNet)")
    jets.add_argument("--process", required=True, choices=["gluon", "quark", "top", "W", "Z"])
    jets.add_argument("--particles", type=int, default=30, help="particles per jet (default 30)")
    jets.set_defaults(func=_cmd_data)
    images = kinds.add_parser("jet-images", help="W and QCD jet images (the LAGAN benchmark)")
    images.add_argument("--process", required=True, choices=["W", "QCD"])
    images.add_argument("--pixels", type=int, default=25, help="pixels per side (default 25)")
    images.set_defaults(func=_cmd_data)
    for p in (jets, images):
        p.add_argument("-n", type=int, required=True, help="number of jets (all shards together)")
        p.add_argument("-o", "--output", required=True, help="output file (.h5)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--workers", type=int, default=1, help="processes (result unchanged)")
        p.add_argument("--shard", default="0/1", metavar="K/N", help="write shard K of N")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _cmd_pretrained(args: argparse.Namespace) -> None:
    from physgan import api
    from physgan.pretrained import PREFIX, pretrained_dir

    if args.action == "show":
        print((pretrained_dir(PREFIX + args.name) / "CARD.md").read_text(encoding="utf-8"), end="")
        return
    models = api.pretrained_models()
    width = max(map(len, models), default=0) + len(PREFIX)
    for name, summary in models.items():
        print(f"{PREFIX + name:<{width}}  {summary}")


def _pretrained_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrained", help="generators shipped with physgan: list them, show a model card"
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="each shipped generator, as RUN_DIR accepts it (default)")
    show = actions.add_parser("show", help="print a shipped generator's model card")
    show.add_argument("name", help="generator name, e.g. gluon")
    p.set_defaults(func=_cmd_pretrained, action="list")


def _weights_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        choices=["best", "last"],
        default="best",
        help="the generator that scored best during training (train.select_every; the "
        "default where a run has one) or the last one",
    )


def _sampling_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rejection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="discriminator rejection sampling (default: the run's sample.rejection)",
    )
    p.add_argument(
        "--truncation",
        type=float,
        metavar="FRACTION",
        help="drop this fraction of latent draws, those with the largest ||dG/dz|| (default: "
        "the run's sample.truncation; 0: off)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="physgan", description="Train, sample and evaluate generative models of physics data."
    )
    parser.add_argument("--version", action="version", version=f"physgan {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config into a run directory")
    p.add_argument("config", help="a shipped config's name (physgan configs list) or a YAML file")
    p.add_argument("--out", required=True, help="run directory (created; must be new or empty)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one dotted config key, e.g. train.steps=200 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train on N local processes with DistributedDataParallel (as torchrun does; "
        "train.batch_size is the global batch)",
    )
    p.set_defaults(func=_cmd_train)

    run_help = "a run directory, or a shipped generator: pretrained:NAME (physgan pretrained)"
    p = sub.add_parser("sample", help="draw samples from a trained run, in the data's units")
    p.add_argument("run_dir", help=run_help)
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file: .h5 (jets as the simulator writes them: particles + jets), .npy "
        "(the array), .root (TTree Jets: nParticle, Particle_eta/phi/pt relative to the jet, "
        "Jet_pt/eta/mass/nParticle) or .parquet (one row per jet); .root, .parquet need "
        "physgan[hep]",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cond",
        action="append",
        type=_condition,
        metavar="NAME=VALUE",
        help="for a run with data.condition_on: the value of each condition, e.g. --cond "
        "pt=1200 --cond n_particles=25; for class-conditional jet images the class, --cond "
        "class=W (default: conditions drawn from the training data)",
    )
    _sampling_flags(p)
    _weights_flag(p)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "evaluate", help="score a run's samples; writes RUN/metrics.json and RUN/report.html"
    )
    p.add_argument("run_dir", help=run_help)
    p.add_argument("--reference", help="real samples to compare with (default: held-out data)")
    p.add_argument(
        "--out",
        help="directory for metrics.json and report.html (default: the run directory; "
        "./pretrained-NAME for a shipped generator)",
    )
    p.add_argument("-n", type=int, default=2_500, help="number of samples (default 2500)")
    p.add_argument("--seed", type=int, default=0)
    _sampling_flags(p)
    _weights_flag(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "compare", help="runs side by side: KL both ways, JSD, the data's metrics, speed"
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="compare", help="directory for compare.{md,json,png}")
    p.add_argument("-n", type=int, default=5_000, help="samples per run (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "export", help="write a run's sampler and inverse transform as an ONNX model"
    )
    p.add_argument("run_dir", help=run_help)
    p.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write")
    p.add_argument("--batch", type=int, help="fixed batch size (default: a dynamic batch axis)")
    p.add_argument("--opset", type=int, help="ONNX opset, 18 to 23 (default: the exporter's)")
    _weights_flag(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("theory", help="the lecture in numbers: KL fits, D*, C(G) identity")
    p.add_argument("--out", default="theory", help="directory for theory.png and theory.json")
    p.set_defaults(func=_cmd_theory)

    p = sub.add_parser("demo", help="the main job: simulate jets, train, evaluate, report, time")
    p.add_argument("--config", default="gluon-demo", help="config name or file (gluon-demo)")
    p.add_argument("--out", default="out/demo")
    p.add_argument(
        "-n", type=int, default=2_500, help="jets generated to evaluate the short run (2500)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pretrained",
        default="gluon",
        metavar="NAME",
        help="the shipped generator shown first (gluon; none to skip it)",
    )
    p.add_argument(
        "--n-fresh",
        type=int,
        default=10_000,
        help="jets it generates, against as many fresh Pythia jets (10000)",
    )
    p.set_defaults(func=_cmd_demo)

    _configs_parser(sub)
    _pretrained_parser(sub)
    _data_parser(sub)
    return parser


def _say(line: str) -> None:
    """Print an error line; one rank of several leaves it for its launcher, or lets rank 0
    (which meets the same error) say it."""
    if "WORLD_SIZE" in os.environ:
        from physgan.training.distributed import quiet, report_failure

        if report_failure(line.removeprefix("physgan: ").removeprefix("error: ")) or quiet():
            return
    print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="physgan: %(message)s"
    )
    try:
        code = args.func(args)
    except PhysganError as err:
        _say(f"physgan: error: {err}")
        return 2
    except KeyboardInterrupt:
        print("physgan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if args.debug:
            raise
        _say(
            f"physgan: internal error: {type(err).__name__}: {err} (rerun with --debug for "
            "the traceback, and please report it)"
        )
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
