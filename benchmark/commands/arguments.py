"""The command line's shared pieces: value parsers, the flags of `run` and of several
commands (built once here), and turning parsed `run` flags into a sweep."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmark.analysis.metric_choice import DEFAULT_METRIC, METRIC_CHOICES
from benchmark.commands.values import names, positive_int, positive_ints, seeds, split_ids, workers
from benchmark.core.configs import parse_options
from benchmark.core.datasource import DATA_DIR_ENV, resolve_data_dir
from benchmark.core.errors import BenchmarkError
from benchmark.core.stats import BOOTSTRAP_RESAMPLES, PAIRED_TESTS
from benchmark.core.types import EpisodeSpec, Task
from benchmark.engine.backends import BACKENDS
from benchmark.engine.embedding_cache import CACHE_ENV
from benchmark.engine.encoders import DEFAULT_ENCODER
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.sweep import POOL_AFTER_S
from tasks.files import FORMATS, load_file_task

DEFAULT_OUT = "runs"
Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` (also accepted by run_all.py)."""
    what = parser.add_argument_group("what to run")
    what.add_argument("--task", type=names, default=(), help="task name(s), comma-separated")
    what.add_argument("--method", type=names, required=True, help="method name(s), comma-separated")
    what.add_argument(
        "--n-way", type=positive_ints, default=(5,), help="N, classes per episode (default 5)"
    )
    what.add_argument(
        "--k-shot",
        type=positive_ints,
        default=(1, 5),
        help="K, support examples per class; several as 1,5 (default 1,5)",
    )
    what.add_argument(
        "--n-query", type=positive_int, default=15, help="Q, query examples per class (default 15)"
    )
    what.add_argument(
        "--episodes", type=positive_int, default=200, help="episodes per seed (default 200)"
    )
    what.add_argument(
        "--seeds",
        type=seeds,
        default=(0, 1, 2),
        help="a count (3 -> seeds 0,1,2) or a list 0,7,9 (default 3)",
    )
    what.add_argument(
        "--split",
        default="test",
        choices=("train", "valid", "test"),
        help="class split that episodes come from (default test)",
    )
    add_split_ids(what)
    add_encoder(what)
    what.add_argument(
        "--drop-small-classes",
        action="store_true",
        help="leave out classes with fewer than K+Q examples instead of failing",
    )
    what.add_argument(
        "--episodes-file",
        default=None,
        metavar="FILE",
        help="evaluate exactly the episodes of FILE (from `fewshot-bench episodes export`, or "
        "a Few-NERD episode file) on the one --task; its N, K, Q and seeds replace the flags",
    )
    own = parser.add_argument_group("your own data (instead of, or besides, --task)")
    own.add_argument("--task-file", default=None, help="a JSON lines, CSV, TSV or CoNLL file")
    own.add_argument(
        "--format", choices=FORMATS, default=None, help="file format (default: by suffix)"
    )
    own.add_argument("--text-col", default="text", help="text column or key (default text)")
    own.add_argument("--label-col", default="label", help="label column or key (default label)")
    own.add_argument(
        "--split-file",
        default=None,
        help='JSON {"train": [...], "valid": [...], "test": [...]} class split of the file',
    )
    own.add_argument(
        "--train-classes",
        type=names,
        default=(),
        help="classes for training; the others become test classes",
    )
    how = parser.add_argument_group("how to run it")
    add_data_dir(how)
    add_device(how, default="auto")
    how.add_argument(
        "--batch-size", type=positive_int, default=64, help="encoder batch size (default 64)"
    )
    how.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"results folder; finished cells there are reused (default {DEFAULT_OUT})",
    )
    how.add_argument(
        "--force", action="store_true", help="rerun cells that already have a result in --out"
    )
    add_no_progress(how)
    add_cache_dir(how)
    how.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the on-disk embedding cache (encode everything afresh)",
    )
    how.add_argument(
        "--quiet", action="store_true", help="print only the summary line, not the tables"
    )
    how.add_argument(
        "--source",
        choices=("local", "hub"),
        default="local",
        help="read data from --data-dir / vendored copies (local, default) or download it from "
        "the Hugging Face hub with `datasets` (hub, needs network)",
    )
    add_training_arguments(how)
    how.add_argument(
        "--lm",
        default=None,
        metavar="NAME|PATH",
        help="the language model of icl (causal) and prompt-finetune (masked): a Hugging Face "
        "name or a local folder; the same as --option lm=NAME",
    )
    how.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="leave out tasks whose data is not found (with a note) instead of failing",
    )


def add_data_dir(parser: Parser, note: str = "") -> None:
    """`--data-dir`: where the data sets are (`note` adds what this command reads there)."""
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder holding the data sets (else ${DATA_DIR_ENV}, else the vendored copies)"
        + (f"; {note}" if note else ""),
    )


def add_device(parser: Parser, default: str) -> None:
    """`--device`, defaulting to `default` (`auto`: CUDA when available)."""
    parser.add_argument(
        "--device",
        default=default,
        help=f"cpu, cuda, cuda:N or auto (cuda when available); default {default}",
    )


def add_cache_dir(parser: Parser) -> None:
    """`--cache-dir`: the on-disk embedding cache."""
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"embedding cache folder (else ${CACHE_ENV}, else ~/.cache/fewshot-bench)",
    )


def add_no_progress(parser: Parser) -> None:
    """`--no-progress`."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_encoder(parser: Parser) -> None:
    """`--encoder`."""
    parser.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help=f"registered encoder, Hugging Face model or local folder (default {DEFAULT_ENCODER})",
    )


def add_metric(parser: Parser) -> None:
    """`--metric`: what tables, the gate and the leaderboard rank by."""
    parser.add_argument(
        "--metric",
        choices=METRIC_CHOICES,
        default=DEFAULT_METRIC,
        help="rank and test by each task's own metric (accuracy; NER: entity F1) or by "
        "macro-F1 over the episode's classes (classification only; default accuracy)",
    )


def add_paired_test(parser: Parser) -> None:
    """`--test`: the paired test of the gate and the leaderboard."""
    parser.add_argument(
        "--test",
        choices=PAIRED_TESTS,
        default="t",
        help="paired test on the identical episodes: t (default), wilcoxon, or bootstrap "
        f"({BOOTSTRAP_RESAMPLES:,} resamples of the episodes, fixed seed)",
    )


def add_split_id(parser: Parser) -> None:
    """`--split-id`: which of a task's standard class splits."""
    parser.add_argument(
        "--split-id",
        type=positive_int,
        default=1,
        help="which of a task's standard class splits (default 1)",
    )


def add_split_ids(parser: Parser) -> None:
    """`--split-id` of `run`: one or several class splits, each run as its own cells."""
    parser.add_argument(
        "--split-id",
        type=split_ids,
        default=(1,),
        help="which of a task's standard class splits: one (2), several (1,3), a range (1-5) or "
        "all; each split is run as separate cells and the tables add the mean over splits "
        "(default 1)",
    )


def add_training_arguments(group: argparse._ArgumentGroup) -> None:
    """Method options and the flags of meta-training (shared by `run` and `train`)."""
    group.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="[METHOD.]NAME=VALUE",
        help="set a method's config option (typed; see `list methods`); repeatable",
    )
    group.add_argument(
        "--checkpoint",
        default=None,
        help="evaluate this checkpoint of a trainable method instead of training one",
    )
    group.add_argument(
        "--checkpoint-dir",
        default=None,
        help="where trained methods are saved and found (default <out>/checkpoints)",
    )
    group.add_argument(
        "--log-dir",
        default=None,
        help="write meta-training curves (loss, validation score per step) for TensorBoard here; "
        "--tensorboard logs each cell's final result instead",
    )


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` for large sweeps: backends, resuming, failed cells, tracking."""
    group = parser.add_argument_group(
        "large sweeps (finished cells in --out are never rerun unless --force)"
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="where cells run: local (this machine, default) or ray (the cluster at "
        "--ray-address, else a Ray instance started here; pip install 'fewshot-bench[ray]')",
    )
    group.add_argument(
        "--workers",
        type=workers,
        default=None,
        metavar="N|auto",
        help="local worker processes; 1 runs every cell in this process. auto (default): cells "
        "run in this process, and the rest go to one worker per CPU once the cells run so far "
        f"predict over {POOL_AFTER_S:.0f} s for them (starting a worker costs seconds, more than "
        "small sweeps of cheap cells take)",
    )
    group.add_argument(
        "--ray-address",
        default=None,
        help="with --backend ray: address of a running Ray cluster (default: start a local Ray)",
    )
    group.add_argument(
        "--retry-failed",
        action="store_true",
        help="rerun cells stored as failed (without it they are kept, not rerun)",
    )
    group.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="log each cell's mean, ci95, episodes/s and wall s for TensorBoard in DIR "
        "(--log-dir logs meta-training curves)",
    )
    group.add_argument(
        "--wandb",
        action="store_true",
        help="log each cell's result to Weights & Biases (pip install wandb; offline under "
        "<out>/wandb unless WANDB_MODE or an API key says otherwise)",
    )


def sweep_run_options(args: argparse.Namespace) -> dict[str, object]:
    """The RunOptions fields set by the large-sweep flags of `run`."""
    return {
        "backend": args.backend,
        "workers": args.workers,
        "ray_address": args.ray_address,
        "retry_failed": args.retry_failed,
        "tensorboard": Path(args.tensorboard) if args.tensorboard else None,
        "wandb": args.wandb,
    }


def sweep_from_args(args: argparse.Namespace) -> tuple[Sweep, RunOptions]:
    """Turn parsed `run` flags into a sweep and its options."""
    specs = tuple(
        EpisodeSpec(n_way=n, k_shot=k, n_query=args.n_query, split=args.split)
        for n in args.n_way
        for k in args.k_shot
    )
    if not args.task and not args.task_file:
        raise BenchmarkError("name a task with --task NAME[,NAME] or give your own --task-file")
    sweep = Sweep(
        tasks=args.task,
        methods=args.method,
        specs=specs,
        episodes=args.episodes,
        seeds=args.seeds,
        encoder=args.encoder,
        split_ids=args.split_id,
        drop_small_classes=args.drop_small_classes,
        options={**({"lm": args.lm} if args.lm else {}), **parse_options(args.option)},
        episodes_file=Path(args.episodes_file) if args.episodes_file else None,
    )
    options = RunOptions(
        out=Path(args.out),
        data_dir=resolve_data_dir(args.data_dir),
        device=args.device,
        batch_size=args.batch_size,
        force=args.force,
        progress=not args.no_progress,
        source=args.source,
        skip_unavailable=args.skip_unavailable,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        log_dir=Path(args.log_dir) if args.log_dir else None,
        cache=not args.no_cache,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
    )
    return sweep, options


def file_tasks(args: argparse.Namespace) -> list[Task]:
    """The task of `--task-file`, if given."""
    if not args.task_file:
        return []
    return [
        load_file_task(
            Path(args.task_file),
            args.format,
            args.text_col,
            args.label_col,
            Path(args.split_file) if args.split_file else None,
            args.train_classes,
        )
    ]


def run_parser(prog: str = "fewshot-bench run") -> argparse.ArgumentParser:
    """A parser of `run`'s flags alone, for command lines that a suite holds."""
    parser = argparse.ArgumentParser(prog=prog)
    add_run_arguments(parser)
    add_sweep_arguments(parser)
    return parser


def parse_run_line(argv: Sequence[str]) -> tuple[Sweep, RunOptions]:
    """The sweep and options of `fewshot-bench run ARGV`."""
    return sweep_from_args(run_parser().parse_args(list(argv)))
