"""``run(cfg)`` and ``resume(path)`` for deep models: one readable training loop.

A step is one optimizer update on the whole training set (``batch_size`` 0: the
gradient of the mean loss accumulated over chunks of ``chunk_size`` rows, deterministic)
or on a mini-batch of ``batch_size`` rows drawn without replacement from a seeded
permutation per epoch. The loss trained is the mean cross-entropy over targets, or the
class-reweighted mean sum_i w_{y_i} l_i / sum_i w_{y_i} (``reweight``).

At step 0, every ``eval_every`` steps and at the last step, a row of the trajectory holds
the loss, per-class loss and accuracy over the whole training split (or its first
``eval_tokens`` targets), and the same on the validation split where there is one, in
eval mode (no dropout). At every ``curvature_every`` steps (and 0 and the last), the
curvature table holds the last layer's exact per-class gradient norms and Hessian traces
on the penultimate features of ``curvature_samples`` training targets, computed by
:mod:`hti.linsoftmax` (:mod:`hti.deep.lastlayer`).

The file and its guarantees are those of ``hti linear`` (:mod:`hti.storage`): rows are
flushed as written, NaN/inf ends the run as ``diverged``, SIGINT/SIGTERM as
``interrupted`` after a checkpoint, and :func:`resume` restores the model, optimizer, RNG
and data position, so that on the CPU the resumed run equals an uninterrupted one.

Under ``torchrun --nproc_per_node N`` the model is wrapped in DistributedDataParallel:
each rank handles a share of the chunks (or of the mini-batch), gradients are all-reduced
(the loss is scaled by N, DDP averages), per-class sums are all-reduced, and rank 0 alone
writes the file.
"""

from __future__ import annotations

import io
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hti import __version__
from hti.backend import BackendUnavailable
from hti.deep.config import DeepConfig
from hti.deep.data import DeepData, load_data
from hti.deep.lastlayer import last_layer_curvature
from hti.deep.optim import make_optimizer
from hti.deep.perclass import ClassSums
from hti.runs import RunResult, StopOnSignal
from hti.storage import HDF5Trajectory, MemoryTrajectory, StorageError, read_checkpoint

ENGINE = "deep"


# -- distributed ------------------------------------------------------------------------
class Dist:
    """The rank, world size and device of this process (world 1 without torchrun)."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailable("--device cuda: torch sees no CUDA device (is this a CPU build of torch?)")
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, items: list) -> list:
        """This rank's items of a list (every rank gets at least one when len >= world)."""
        return [x for i, x in enumerate(items) if i % self.world == self.rank]

    def sum(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t[0])

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


# -- rows -------------------------------------------------------------------------------
def row_spec(c: int, has_val: bool) -> dict:
    scalar, per_class = ((), "f8"), ((c,), "f8")
    spec = {"step": ((), "i8"), "wall_time": scalar, "loss": scalar, "train_loss": scalar,
            "class_loss": per_class, "class_acc": per_class}  # fmt: skip
    if has_val:
        spec.update(val_loss=scalar, val_class_loss=per_class, val_class_acc=per_class)
    return spec


def curvature_spec(c: int, eig: bool) -> dict:
    spec = {"curvature_step": ((), "i8"), "grad_norm": ((c,), "f8"), "hess_trace": ((c,), "f8"),
            "grad_hess_corr": ((), "f8")}  # fmt: skip
    if eig:
        spec.update(hess_eig=((c, 1), "f8"), eig_iterations=((c,), "i8"), grad_eig_corr=((), "f8"))
    return spec


def _every(last: int, every: int) -> set[int]:
    return set(range(0, last + 1, every)) | {last}


# -- the model --------------------------------------------------------------------------
def torch_dtype(cfg: DeepConfig) -> torch.dtype:
    """Parameter dtype: float64 on request, else float32 (bfloat16 is autocast)."""
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def build(cfg: DeepConfig, data: DeepData, device) -> torch.nn.Module:
    from hti.deep.models import build_model, freeze_all_but_head  # noqa: PLC0415

    model = build_model(
        cfg.model, n_classes=data.n_classes, kind=data.kind, input_shape=tuple(data.train.inputs.shape[1:]),
        vocab_size=data.meta.get("n_vocab", data.n_classes), seq_len=cfg.seq_len, n_layer=cfg.n_layer,
        n_head=cfg.n_head, d_model=cfg.d_model, dropout=cfg.dropout, seed=cfg.seed, dtype=torch_dtype(cfg),
        init=cfg.init,  # linear: exactly hti linear's initialization (hti.linsoftmax.params.init_params)
    )  # fmt: skip
    if cfg.train_last_layer_only:
        freeze_all_but_head(model)
    return model.to(device)


def class_weights(cfg: DeepConfig, data: DeepData, device) -> torch.Tensor | None:
    """w_k = 1/pi_k or 1/sqrt(pi_k) (None for the plain mean); classes absent from the
    training set get weight 0."""
    if cfg.reweight == "none":
        return None
    counts = torch.as_tensor(data.class_counts, dtype=torch.float64)
    pi = counts / counts.sum()
    w = torch.where(pi > 0, 1 / (pi if cfg.reweight == "inv" else pi.sqrt()), torch.zeros_like(pi))
    return w.to(device)


# -- batches ----------------------------------------------------------------------------
class Sampler:
    """Rows of each step: all of them (full batch) or a seeded permutation per epoch."""

    def __init__(self, n: int, batch_size: int | None, seed: int):
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed + 1_000_003)
        self.perm = None
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.batch_size is None:
            return torch.arange(self.n)
        take = []
        need = self.batch_size
        while need > 0:
            if self.perm is None or self.pos >= self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            part = self.perm[self.pos : self.pos + need]
            take.append(part)
            self.pos += part.numel()
            need -= part.numel()
        return torch.cat(take)

    def state(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.perm, self.pos = state["perm"], state["pos"]


def _inputs(x: torch.Tensor, device, dtype: torch.dtype) -> torch.Tensor:
    """Inputs on the device; floating inputs (images, vectors) in the parameters' dtype."""
    return x.to(device, dtype=dtype if x.is_floating_point() else x.dtype, non_blocking=True)


def _chunks(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [rows[i : i + size] for i in range(0, rows.numel(), size)]


LOGITS_PER_CHUNK = 1 << 22  # automatic chunks: about 2^22 logits (16 MiB in float32) per forward pass


def chunk_rows(cfg: DeepConfig, data: DeepData) -> int:
    """Rows (sequences, images) per forward pass: ``chunk_size`` or about 2^22 logits."""
    if cfg.chunk_size is not None:
        return cfg.chunk_size
    per_row = data.train.targets[0].numel() * data.n_classes
    return max(1, LOGITS_PER_CHUNK // per_row)


# -- one step and one evaluation --------------------------------------------------------
def train_step(cfg, model, ddp, opt, data: DeepData, rows, weights, dist: Dist, autocast) -> float:
    """One optimizer update on ``rows``; returns the loss trained (before the update)."""
    targets_all = data.train.targets[rows]
    valid = targets_all[targets_all >= 0]
    denom = float(weights[valid.to(weights.device)].sum()) if weights is not None else float(valid.numel())
    chunks = _chunks(rows, chunk_rows(cfg, data))
    if len(chunks) < dist.world:  # every rank needs at least one chunk
        chunks = _chunks(rows, max(1, -(-rows.numel() // dist.world)))
    mine = dist.share(chunks)
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for i, idx in enumerate(mine):
        x = _inputs(data.train.inputs[idx], dist.device, torch_dtype(cfg))
        y = data.train.targets[idx].to(dist.device, non_blocking=True)
        sync = ddp.no_sync() if (ddp is not model and i < len(mine) - 1) else nullcontext()
        with sync, autocast():
            logits = ddp(x)
            flat = logits.reshape(-1, logits.shape[-1])
            losses = F.cross_entropy(flat.float() if flat.dtype == torch.bfloat16 else flat, y.reshape(-1),
                                     weight=None if weights is None else weights.to(flat.dtype),
                                     ignore_index=-1, reduction="none")  # fmt: skip
            (losses.sum() * (dist.world / denom)).backward()
        total += float(losses.detach().to(torch.float64).sum())  # the objective, summed in float64
    total = dist.sum(total) / denom
    if np.isfinite(total):
        opt.step()
    return total


def eval_rows(cfg, split) -> torch.Tensor:
    """Indices of the rows an evaluation covers: all, or the first rows holding eval_tokens targets."""
    rows = torch.arange(len(split))
    if cfg.eval_tokens is not None:
        per_row = max(1, split.targets[0].numel())
        rows = rows[: max(1, -(-cfg.eval_tokens // per_row))]
    return rows


def eval_counts(cfg, split, n_classes: int) -> np.ndarray:
    """(c,) int64: targets of each class among the rows an evaluation covers (targets >= 0)."""
    t = split.targets[eval_rows(cfg, split)].reshape(-1)
    return np.bincount(t[t >= 0].numpy(), minlength=n_classes).astype(np.int64)


@torch.no_grad()
def evaluate(cfg, model, split, n_classes, dist: Dist, autocast, weights, rows_per_chunk: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(loss, weighted loss, class_loss, class_acc) over a split (its first eval_tokens targets)."""
    model.eval()
    rows = eval_rows(cfg, split)
    sums = ClassSums.zeros(n_classes, dist.device)
    for idx in dist.share(_chunks(rows, rows_per_chunk)):
        with autocast():
            logits = model(_inputs(split.inputs[idx], dist.device, torch_dtype(cfg)))
        sums.add(logits, split.targets[idx].to(dist.device))
    sums.all_reduce()
    model.train()
    loss, class_loss, class_acc = sums.result()
    if weights is None:
        return loss, loss, class_loss, class_acc
    w = weights.to(torch.float64)
    weighted = float((w * sums.loss).sum() / (w * sums.count).sum())
    return loss, weighted, class_loss, class_acc


@torch.no_grad()
def features_of(cfg, model, data: DeepData, device, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (n, D) and targets (n,) of the first curvature_samples targets."""
    model.eval()
    feats, ys, have = [], [], 0
    for idx in _chunks(torch.arange(len(data.train)), chunk_rows(cfg, data)):
        with autocast():
            h = model.features(_inputs(data.train.inputs[idx], device, torch_dtype(cfg)))
        y = data.train.targets[idx].to(device).reshape(-1)
        h = h.reshape(y.numel(), -1)[y >= 0]
        y = y[y >= 0]
        feats.append(h.float() if h.dtype == torch.bfloat16 else h)
        ys.append(y)
        have += y.numel()
        if have >= cfg.curvature_samples:
            break
    model.train()
    return torch.cat(feats)[: cfg.curvature_samples], torch.cat(ys)[: cfg.curvature_samples]


# -- run and resume ---------------------------------------------------------------------
def default_path(cfg: DeepConfig) -> Path:
    return Path("runs") / f"{cfg.run_id}.h5"


def create_store(cfg: DeepConfig, data: DeepData, out, *, force=False, memory=False):
    attrs = {"config": cfg.to_json(), "hti_version": __version__, "engine": ENGINE, "run_id": cfg.run_id,
             "c": data.n_classes, "data_meta": json_dumps({k: v for k, v in data.meta.items() if k != "vocab"})}  # fmt: skip
    rows = row_spec(data.n_classes, data.val is not None)
    tables = {"curvature": curvature_spec(data.n_classes, cfg.track_eig)} if cfg.curvature_every else None
    # class_counts (the whole training split) defines the frequency groups; the evaluated
    # counts weight the per-class losses, which are means over the evaluated targets only
    static = {"class_counts": data.class_counts, "eval_class_counts": eval_counts(cfg, data.train, data.n_classes)}
    if data.val is not None:
        static["val_class_counts"] = eval_counts(cfg, data.val, data.n_classes)
    if memory:
        return MemoryTrajectory(attrs=attrs, rows=rows, tables=tables, static=static)
    path = default_path(cfg) if out is None else Path(out)
    return HDF5Trajectory.create(path, attrs=attrs, rows=rows, tables=tables, static=static, force=force)


def json_dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _model_info(model) -> dict:
    """What was built: class, parameter counts, FLOPs per target, and its resolved sizes."""
    from hti.deep.models import count_parameters, model_flops_per_token  # noqa: PLC0415

    info = {"class": type(model).__name__, "parameters": count_parameters(model),
            "trainable": count_parameters(model, trainable_only=True),
            "flops_per_target": model_flops_per_token(model)}  # fmt: skip
    for key in ("n_layer", "d_model", "seq_len"):
        if hasattr(model, key):
            info[key] = getattr(model, key)
    return info


def run(cfg: DeepConfig, out=None, *, force=False, memory=False, progress=None) -> RunResult:
    """Train from scratch; rank 0 writes ``out`` (default runs/<run id>.h5) or memory."""
    dist = Dist(cfg.device)
    data = load_data(cfg)
    store = create_store(cfg, data, out, force=force, memory=memory) if dist.main else None
    try:
        return _train(cfg, data, store, dist, progress, checkpoint=None, fresh=True)
    finally:
        if store is not None:
            store.close()


def resume(path, *, progress=None) -> RunResult:
    """Continue the deep run stored at ``path`` from its newest checkpoint (or from scratch).

    Every rank reads the config first (before rank 0 opens the file for writing); rank 0
    then reads the checkpoint and sends it to the others.
    """
    from hti.storage import read_trajectory  # noqa: PLC0415

    attrs = read_trajectory(path, names=(), live=True)["attrs"]
    if attrs.get("engine") != ENGINE:
        raise StorageError(f"{path} holds an {attrs.get('engine')!r} run; hti deep resumes deep runs")
    if attrs["status"] in ("completed", "diverged"):
        raise StorageError(f"{path} has status {attrs['status']}: there is nothing to resume")
    cfg = DeepConfig.from_dict(attrs["config"])
    dist = Dist(cfg.device)
    store, ck = None, None
    if dist.main:
        store = HDF5Trajectory.open(path)
        saved = store.load_checkpoint()
        ck = None if saved is None else (saved[0], saved[1], np.asarray(saved[2][0]).tobytes())
    ck = dist.broadcast(ck)
    data = load_data(cfg)
    try:
        return _train(cfg, data, store, dist, progress, checkpoint=ck, fresh=False)
    finally:
        if store is not None:
            store.close()


def _train(cfg: DeepConfig, data: DeepData, store, dist: Dist, progress, checkpoint, fresh: bool) -> RunResult:
    t_setup = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build(cfg, data, dist.device)
    ddp = model
    if dist.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=None if dist.device.type == "cpu" else [dist.device])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(cfg.optim, params, cfg.lr, cfg.momentum, beta=cfg.beta, beta2=cfg.beta2, eps=cfg.eps,
                         weight_decay=cfg.weight_decay)  # fmt: skip
    if dist.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    bf16 = cfg.dtype == "bfloat16"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()

    weights = class_weights(cfg, data, dist.device)
    sampler = Sampler(len(data.train), cfg.batch_size or None, cfg.seed)
    first, elapsed0 = 0, 0.0
    if checkpoint is not None:
        first, elapsed0, blob = checkpoint
        state = torch.load(io.BytesIO(blob), weights_only=False, map_location=dist.device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.load(state["sampler"])
        torch.set_rng_state(state["rng"])
    if store is not None:
        if not fresh:  # drop the rows of the steps that will be redone
            store.truncate(int(np.searchsorted(store.column("step"), first)))
            if cfg.curvature_every:
                store.truncate(int(np.searchsorted(store.column("curvature_step"), first)), "curvature")
        store.set_attr("model_info", json_dumps(_model_info(model)))
        store.set_status("running")
    setup = time.perf_counter() - t_setup

    record = _every(cfg.steps, cfg.eval_every)
    curv_at = _every(cfg.steps, cfg.curvature_every) if cfg.curvature_every else set()
    per_step = (cfg.batch_size or len(data.train)) * (data.train.targets[0].numel() if data.kind == "tokens" else 1)
    unit = "tokens" if data.kind == "tokens" else ("images" if data.kind == "images" else "samples")
    start = time.perf_counter()

    def clock():
        return elapsed0 + time.perf_counter() - start

    if progress is not None and dist.main:
        progress.start(first, cfg.steps, unit=unit, per_step=per_step)
    status, t, last_loss = "running", first, float("nan")
    try:
        with StopOnSignal() as stop:
            for t in range(first, cfg.steps + 1):
                if t in record:
                    last_loss = _write_row(cfg, model, data, store, dist, autocast, weights, t, clock())
                if t in curv_at and dist.main:
                    _write_curvature(cfg, model, data, store, dist, autocast, t)
                finite = np.isfinite(last_loss) if t in record else True
                if progress is not None and dist.main and t in record:
                    progress.update(t, last_loss)
                if not finite:
                    status = "diverged"
                    break
                if t == cfg.steps:
                    status = "completed"
                    _checkpoint(store, t, clock(), model, opt, sampler)  # the final state, for analysis
                    break
                if dist.sum(float(stop.signum is not None)) > 0:
                    status = "interrupted"
                    _checkpoint(store, t, clock(), model, opt, sampler)
                    break
                loss = train_step(cfg, model, ddp, opt, data, sampler.next(), weights, dist, autocast)
                if not np.isfinite(loss):  # NaN/inf at the parameters of step t: its row, then stop
                    if t not in record:
                        _write_row(cfg, model, data, store, dist, autocast, weights, t, clock())
                    status = "diverged"
                    break
                if (t + 1) % cfg.checkpoint_every == 0 and t + 1 < cfg.steps:
                    _checkpoint(store, t + 1, clock(), model, opt, sampler)
    except BaseException as err:
        if store is not None:
            store.set_attr("error", f"{type(err).__name__}: {err}")
            store.set_status("interrupted")
        raise
    finally:
        if progress is not None and dist.main:
            progress.close()
    taken = t - first
    seconds = (time.perf_counter() - start) / taken if taken > 0 else float("nan")
    if store is not None:
        store.set_status(status)
    return RunResult(status, store, getattr(store, "path", None), t, seconds, setup,
                     first if checkpoint is not None else None, per_step, unit)  # fmt: skip


def _write_row(cfg, model, data, store, dist, autocast, weights, step, wall) -> float:
    rows = chunk_rows(cfg, data)
    loss, weighted, class_loss, class_acc = evaluate(cfg, model, data.train, data.n_classes, dist, autocast, weights, rows)
    row = {"step": step, "wall_time": wall, "loss": loss, "train_loss": weighted, "class_loss": class_loss,
           "class_acc": class_acc}  # fmt: skip
    if data.val is not None:
        vloss, _, vcl, vca = evaluate(cfg, model, data.val, data.n_classes, dist, autocast, None, rows)
        row.update(val_loss=vloss, val_class_loss=vcl, val_class_acc=vca)
    if store is not None:
        store.append(**row)
    return weighted


def _write_curvature(cfg, model, data, store, dist, autocast, step) -> None:
    h, y = features_of(cfg, model, data, dist.device, autocast)
    W, b = model.last_layer()
    cur = last_layer_curvature(h, y, W, b, data.n_classes, eig=cfg.track_eig)
    row = {"curvature_step": step, "grad_norm": cur["grad_norm"], "hess_trace": cur["hess_trace"],
           "grad_hess_corr": cur["grad_hess_corr"]}  # fmt: skip
    if cfg.track_eig:
        row.update(hess_eig=cur["hess_eig"], eig_iterations=cur["eig_iterations"], grad_eig_corr=cur["grad_eig_corr"])
    store.append("curvature", **row)


def load_state(path) -> tuple[int, dict]:
    """(step, state) of a deep run's newest checkpoint: model and optimizer state dicts,
    data position and RNG state (the final state once a run has completed)."""
    saved = read_checkpoint(path)
    if saved is None:
        raise StorageError(f"{path} has no checkpoint yet")
    return saved[0], torch.load(io.BytesIO(np.asarray(saved[2][0]).tobytes()), weights_only=False)


def _checkpoint(store, step, wall, model, opt, sampler) -> None:
    if store is None:
        return
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sampler": sampler.state(),
                "rng": torch.get_rng_state()}, buf)  # fmt: skip
    store.save_checkpoint(step, wall, [np.frombuffer(buf.getvalue(), dtype=np.uint8)])
