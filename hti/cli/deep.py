"""``hti deep``: transformers, GPT-2, a CNN and softmax regression in PyTorch.

Only click is imported here; torch is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from hti.cli.errors import InputError, reports_bad_input
from hti.cli.params import StepSize
from hti.cli.report import report
from hti.config import format_lr

MODELS = ("simple-transformer", "transformer", "gpt2", "cnn", "linear")
DATASETS = ("ptb", "tinyptb", "wikitext2", "wikitext103", "digits", "mnist", "barcoded", "barcoded-only", "synthetic")


@click.command()
@click.argument("model", type=click.Choice(MODELS), required=False)
@click.option("--data", type=click.Choice(DATASETS), default=None,
              help="[default: ptb for the transformers, digits for cnn, synthetic for linear]")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of wiki.*.tokens (wikitext2/103) or the four IDX files (mnist).")
@click.option("--tokenizer", type=click.Choice(["word", "gpt2", "bpe"]), default=None,
              help="[default: gpt2 for gpt2, else word]")
@click.option("--seq-len", type=click.IntRange(min=1), default=None, help="[default: 1024 with gpt2 tokens, else 35]")
@click.option("--vocab-size", type=click.IntRange(min=256), default=8192, show_default=True,
              help="Vocabulary of the trained BPE (--tokenizer bpe).")
@click.option("--optim", type=click.Choice(["gd", "adam", "normgd", "sign", "adamw"]), default="gd", show_default=True)
@click.option("--momentum/--no-momentum", default=True, show_default=True)
@click.option("--lr", type=StepSize(), default=None,
              help="Step size (1e-3 or 10^-3). [default: a starting point per optimizer, not a tuned value; "
                   "linear on synthetic data: hti linear's]")
@click.option("--steps", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("--batch", type=click.Choice(["full"]), default=None, help="Full batch: the gradient over the "
              "whole training set, accumulated over chunks. [default, but gpt2: --batch-size 512]")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Mini-batches of B rows (sequences or images), shuffled with --seed; the global batch under DDP.")
@click.option("--eval-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Per-class loss and accuracy on the training (and validation) split every K steps.")
@click.option("--eval-tokens", type=click.IntRange(min=1), default=None,
              help="Evaluate on the first N targets of each split only (for large corpora).")
@click.option("--n-layer", type=click.IntRange(min=1), default=None)
@click.option("--n-head", type=click.IntRange(min=1), default=None)
@click.option("--d-model", type=click.IntRange(min=1), default=None)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None)
@click.option("--train-last-layer-only", is_flag=True, help="simple-transformer: freeze all but the classifier (Fig. 4).")
@click.option("--reweight", type=click.Choice(["none", "inv", "inv-sqrt"]), default="none", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64", "bfloat16"]), default="float32", show_default=True,
              help="bfloat16: autocast on CUDA (parameters in float32, TF32 matmuls).")
@click.option("--curvature-every", type=click.IntRange(min=1), default=None,
              help="Last-layer per-class gradient norms and Hessian traces (hti.linsoftmax) every K steps.")
@click.option("--curvature-samples", type=click.IntRange(min=2), default=4096, show_default=True)
@click.option("--track-eig", is_flag=True, help="With --curvature-every: also the top eigenvalue of every class block.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Rows (sequences, images) per forward pass when accumulating a batch. [default: about 2^22 logits]")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--beta", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True)
@click.option("--beta2", type=click.FloatRange(0, 1, max_open=True), default=0.999, show_default=True)
@click.option("--eps", type=click.FloatRange(0, 1), default=1e-8, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.01, show_default=True, help="adamw only.")
@click.option("--m", type=click.IntRange(2, 16), default=8, show_default=True, help="synthetic: as hti linear.")
@click.option("--inputs", type=click.Choice(["uniform", "gaussian", "orthogonal"]), default="uniform",
              show_default=True, help="synthetic: as hti linear.")
@click.option("--input-mean", type=float, default=None, help="synthetic, gaussian inputs.")
@click.option("--input-scale", type=click.FloatRange(min=0, min_open=True), default=None, help="synthetic, gaussian inputs.")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="synthetic: input dimension.")
@click.option("--data-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="synthetic data, image splits and barcode draws.")
@click.option("--init", type=click.Choice(["uniform", "zero"]), default="uniform", show_default=True,
              help="linear on synthetic data: as hti linear.")
@click.option("--bits", type=click.IntRange(1, 16), default=None, help="barcoded: bits of the barcode.")
@click.option("--copies", type=click.IntRange(min=1), default=5, show_default=True, help="barcoded: images per class.")
@click.option("--include-zero-barcode", is_flag=True, help="barcoded: keep the all-zero code (as the paper's code).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trajectory file. [default: runs/<run id>.h5]")
@click.option("--force", is_flag=True)
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue the interrupted or killed run in this file (takes no other option).")
@click.option("--progress/--no-progress", default=None, help="Progress line. [default: on a terminal]")
@click.pass_context
@reports_bad_input
def deep(ctx, model, resume, out, force, progress, batch, batch_size, **options) -> None:
    """Train MODEL with per-class statistics: simple-transformer, transformer, gpt2, cnn, linear.

    Writes the trajectory in the schema of hti linear (engine "deep") with the validation
    split's statistics, and with --curvature-every the last layer's exact per-class
    curvature. Under torchrun --nproc_per_node N the same command trains with
    DistributedDataParallel.

    \b
    Examples:
      hti deep simple-transformer --data tinyptb --d-model 64 --steps 50
      hti deep transformer --n-layer 2 --data tinyptb --optim adam --steps 100
      hti deep gpt2 --n-layer 2 --d-model 128 --n-head 4 --seq-len 128 --batch-size 16
      hti deep cnn --data barcoded --optim adam
      hti deep linear --data synthetic --m 6 --dtype float64   # = hti linear --m 6 --dtype float64
      torchrun --nproc_per_node 2 -m hti deep cnn --steps 20
    """
    from hti.cli.linear import _progress  # noqa: PLC0415

    bar = _progress(progress)
    if resume is not None:
        given = sorted("--" + k.replace("_", "-") for k in [*options, "out", "force", "batch", "batch_size"]
                       if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE)  # fmt: skip
        if model is not None or given:
            raise InputError(f"--resume takes the configuration from the file; expected no MODEL or run options, got "
                             f"{' '.join(([model] if model else []) + given)}")  # fmt: skip
        _resume(resume, bar)
        return
    if model is None:
        raise InputError(f"expected a MODEL ({', '.join(MODELS)}) or --resume FILE; got neither")
    if batch is not None and batch_size is not None:
        raise InputError(f"--batch full and --batch-size are exclusive; got both (--batch-size {batch_size})")
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError as err:
        raise InputError(f"hti deep needs PyTorch ({err}); install it with pip install torch==2.13.0 (CPU) or hti[deep]") from None
    from hti.deep.config import DeepConfig  # noqa: PLC0415

    if options.get("data_dir") is not None:
        options["data_dir"] = str(options["data_dir"])
    cfg = DeepConfig(model=model, batch_size=0 if batch == "full" else batch_size, **options)
    _announce(cfg, out)
    _run(cfg, out, force, bar)


def _announce(cfg, out) -> None:
    from hti.deep.train import default_path  # noqa: PLC0415

    lr_note = " (default starting point, not tuned)" if cfg.lr_default else ""
    batch = "full batch" if cfg.full_batch else f"batches of {cfg.batch_size}"
    click.echo(f"hti deep: {cfg.model} on {cfg.data}" + (f" ({cfg.tokenizer} tokens, seq {cfg.seq_len})" if cfg.tokenizer else "")
               + f", {cfg.optim}{'+m' if cfg.momentum else '-m'}, lr = {format_lr(cfg.lr)}{lr_note}, {cfg.steps} steps, "
               f"{batch}, {cfg.dtype} on {cfg.device}")  # fmt: skip
    if cfg.model == "gpt2" and cfg.device == "cpu" and cfg.n_layer is None and cfg.d_model is None:
        click.echo("  warning: GPT2-small (124M parameters) on the CPU takes minutes per step at these sizes; "
                   "try --n-layer 2 --n-head 4 --d-model 128 --seq-len 128 --batch-size 16", err=True)  # fmt: skip
    click.echo(f"  trajectory: {out if out is not None else default_path(cfg)}")


def _run(cfg, out, force, bar) -> None:
    from hti.deep.train import run  # noqa: PLC0415

    report(run(cfg, out, force=force, progress=bar), "deep")


def _resume(path, bar) -> None:
    from hti.deep.train import resume  # noqa: PLC0415

    click.echo(f"hti deep: resuming {path}")
    result = resume(path, progress=bar)
    click.echo(f"  resumed from step {result.resumed_from}")
    report(result, "deep")
