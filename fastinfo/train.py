"""Train InfoGAN-family models.

    python -m fastinfo.train --model infogan                 # tuned preset, MNIST, 10 epochs
    python -m fastinfo.train --model gan --steps 2000 --out runs/gan
    python -m fastinfo.train --resume runs/gan --steps 4000  # continue to step 4000
    python -m fastinfo.train --model infogan --amp --compile --cuda-graphs  # fastest, on a GPU

Writes to the run folder: config.json, checkpoint.pt, metrics.jsonl, loss_curves.png,
info_curve.png, traverse_c<i>.png, eval.json and timings.json.
"""

import contextlib
import gc
import importlib
import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from fastinfo import atomic, checkpoint, data, distributed, failure, metrics_log, registry, runner
from fastinfo.arguments import EXIT_INTERRUPTED, interrupted, signals_handled_by, stops_as_on_ctrl_c
from fastinfo.config import ConfigError, TrainConfig, make_config, parse_args
from fastinfo.runs import (
    RunClock,
    RunError,
    build_model,
    exclusive_run,
    load_checkpoint_into,
    load_run_config,
    resolve_device,
    write_config,
)

# 4: the failure check stopped the run (--stop-on-failure)
EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_FAILED = 2, 3, 4


class NonFiniteLoss(RuntimeError):
    """A loss that became NaN or infinite at step."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


# Where the checkpoint before the last one is kept until the step after the last one is seen
# finite, and where a checkpoint whose next step diverged is moved.
PREVIOUS_CHECKPOINT, DIVERGED_CHECKPOINT = "checkpoint-previous.pt", "checkpoint-diverged.pt"


def import_in_background(names) -> threading.Thread:
    """Import modules on a worker thread. The figures' and the evaluation's modules import
    matplotlib, scikit-learn and scipy, seconds of a short run's wall time; imported while the loop
    trains (its torch calls release the GIL), they cost none. A first use before the import is
    done waits for it. Not a daemon: interpreter shutdown never cuts an import short."""

    def run():
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the import at the first use raises it again, in the main thread
                return

    thread = threading.Thread(target=run, name="fastinfo-late-imports")
    thread.start()
    return thread


@contextlib.contextmanager
def matmul_precision(cfg: TrainConfig, device: torch.device):
    """Within: fp32 matrix products on a GPU at cfg.tf32's precision. The setting is global to the
    process, so it is restored after. On a CPU it is left alone: there it would switch oneDNN's
    fp32 products too."""
    if device.type != "cuda":
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if cfg.tf32 else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def tensorboard_writer():
    """TensorBoard's SummaryWriter class; RunError when the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RunError("--tensorboard needs the tensorboard package: pip install 'fastinfo[tensorboard]'") from None
    return SummaryWriter


class Trainer:
    """The loop every model shares: data, sampling, metrics, checkpoints, figures."""

    def __init__(self, cfg: TrainConfig, resume: Path | None = None, world: distributed.World = distributed.SINGLE):
        self.clock = RunClock()
        self.cfg, self.run, self.world = cfg, cfg.run_dir() if resume is None else resume, world
        try:
            self.device = resolve_device(cfg.device)
        except RunError as e:
            if resume is None:
                raise
            raise RunError(f"{self.run} trains on {e}") from None
        if world.active:
            self.device = self.join_world()
        if cfg.cuda_graphs and self.device.type != "cuda":
            fix = "continue without it: --no-cuda-graphs" if resume is not None else "leave the option out"
            raise RunError(f"--cuda-graphs needs a CUDA GPU and none is available; {fix}")
        if cfg.amp == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise RunError(f"{torch.cuda.get_device_name(self.device)} has no bfloat16; use --amp fp16")
        torch.manual_seed(cfg.seed)  # the same on every rank: the same initial weights
        images, _ = data.load_split(cfg, train=True)
        if len(images) < cfg.batch_size:
            raise RunError(f"the {cfg.dataset} training set holds {len(images)} images, fewer than --batch-size "
                           f"{cfg.batch_size}: give a --batch-size of at most {len(images)}")
        if cfg.eval_at_end:  # read now: test files that cannot be read stop the run before it trains, not after
            data.load_split(cfg, train=False)
        self.model = build_model(cfg, self.device)
        if world.active:
            if cfg.sync_bn:
                distributed.synchronise_batch_norm(self.model.networks.values())
            distributed.broadcast_parameters(self.model.networks.values())
        self.n_train = len(images)
        self.total = cfg.total_steps(len(images), self.model.batches_per_step)
        # each rank its own codes, rank 0 those of a run of one process
        self.sample_gen = torch.Generator(self.device).manual_seed(distributed.rank_seed(cfg.seed, world.rank))
        # every rank the same batch order: each takes its share of each batch
        self.loader = data.make_loader(images, cfg.batch_size, self.device, cfg.seed + 1, cfg.data_on,
                                       shard=(world.rank, world.size))
        self.runner = runner.for_config(cfg, self.model, self.loader, self.sample_gen)
        self.step = 0
        # the steps of the checkpoint on disk and of the one kept before it (None: there is none)
        self.saved_step: int | None = None
        self.previous_step: int | None = None
        self.checkpoints = checkpoint.BackgroundWriter()
        self.pending: list[dict[str, torch.Tensor]] = []
        self.interval_start = time.perf_counter()
        self.stop_signal: int | None = None
        self.failure_check = failure.FailureCheck()
        self.failed: failure.Failure | None = None
        self.tb = None
        self.tb_writer = tensorboard_writer() if cfg.tensorboard and world.leader else None
        if resume is not None:
            self._restore()
        self.first_step = self.step

    def join_world(self) -> torch.device:
        """This rank's device (a GPU per rank: cuda:LOCAL_RANK), once the settings are checked for
        a run over several processes and the process group is joined."""
        cfg, n = self.cfg, self.world.size
        if cfg.batch_size % n:
            raise RunError(f"--batch-size {cfg.batch_size} (the global batch) does not split over {n} processes: "
                           f"give a multiple of {n}")
        for on, option in ((cfg.cuda_graphs, "--cuda-graphs"), (cfg.weight_copies, "--weight-copies")):
            if on:
                raise RunError(f"{option} is not supported over several processes (the gradients are averaged "
                               f"between the backward pass and the optimiser step, outside the graph and the "
                               f"copies): leave it out")
        device = self.device
        if cfg.sync_bn and device.type != "cuda":
            raise RunError("--sync-bn needs GPUs (torch's SyncBatchNorm runs on CUDA devices): leave it out on CPUs")
        if device.type == "cuda":
            device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(device)
        distributed.start(self.world, device)
        return device

    # -- state -------------------------------------------------------------------------------
    def _restore(self) -> None:
        leader = self.world.leader
        if not (self.run / "checkpoint.pt").exists():
            # stopped before its first checkpoint (a crash, a kill): nothing was kept, so the run
            # starts again as it first did
            if leader:
                print(f"{self.run} has no checkpoint yet: training it from the start", file=sys.stderr)
                (self.run / "metrics.jsonl").unlink(missing_ok=True)
            return

        def loader_and_rng(state):
            self.loader.load_state_dict(state["loader"])
            rng, world, trained_by = state["rng"], self.world, state.get("world_size", 1)
            # each rank's own streams (fastinfo.distributed); none for a rank of another number of
            # processes than the run trained with
            mine = rng if trained_by == 1 else rng["ranks"][world.rank] if trained_by == world.size else None
            # a generator's state is its device kind's: a CPU's Mersenne Twister (5056 bytes), a
            # GPU's Philox seed and offset (16). A run moved between them, or whose batch order
            # moved between the device and the host (--data-on), goes on with new streams.
            moved = (self.cfg.seed * 1_000_003 + state["step"]) * 2
            streams = {"z and c": (self.sample_gen, None if mine is None else mine["sample"]),
                       "the batch order": (self.loader.generator, rng["loader"])}
            new = []
            for offset, (name, (gen, saved)) in enumerate(streams.items()):
                if saved is not None and saved.numel() == gen.get_state().numel():
                    gen.set_state(saved)
                else:
                    gen.manual_seed(distributed.rank_seed(moved + offset, world.rank))
                    new.append(name)
            if mine is not None:
                torch.set_rng_state(mine["torch"])
            if new and leader:
                was = (f"trained by {trained_by} processes, not {world.size}," if mine is None
                       else f"saved on another kind of device than {self.device}:")
                print(f"warning: {self.run} was {was} its random streams ({' and '.join(new)}) go on from new "
                      f"seeds, so the run does not continue as it would have where it trained", file=sys.stderr)

        state = load_checkpoint_into(self.model, self.run, self.cfg, loader_and_rng)
        self.step = self.saved_step = state["step"]
        # metrics logged after the checkpoint belong to steps that will be trained again
        if leader:
            metrics_log.keep_until(self.run / "metrics.jsonl", self.step)
        if self.world.active:
            distributed.barrier()  # the others read the metrics once the leader has cut them
        # said once training starts, after the start line
        self.failed = self.failure_check.update(metrics_log.read(self.run / "metrics.jsonl"))

    def save_checkpoint(self) -> None:
        """Snapshot the run's state and write it while training goes on (train() waits for the
        write before it returns). The checkpoint it replaces is kept as PREVIOUS_CHECKPOINT until
        the step after this one is seen finite: this one's weights may be the ones that diverge."""
        previous = None if self.saved_step is None else self.run / PREVIOUS_CHECKPOINT
        rng = {"sample": self.sample_gen.get_state(), "loader": self.loader.generator.get_state(),
               "torch": torch.get_rng_state()}
        world = {}
        if self.world.active:  # every rank's own streams, for a resume over as many processes
            rng["ranks"] = distributed.gather({"sample": rng["sample"], "torch": rng["torch"]})
            world = {"world_size": self.world.size}
        if self.world.leader:
            self.checkpoints.save({
                **self.model.state_dict(),
                "step": self.step,
                "config": asdict(self.cfg),
                "loader": self.loader.state_dict(),
                "rng": rng,
                **world,
            }, self.run / "checkpoint.pt", previous)
        self.previous_step, self.saved_step = self.saved_step, self.step

    def drop_previous_checkpoint(self) -> None:
        """Delete PREVIOUS_CHECKPOINT once the write under way is done (the caller does not wait)."""
        if self.world.leader:
            self.checkpoints.discard(self.run / PREVIOUS_CHECKPOINT)
        self.previous_step = None

    def keep_last_good_checkpoint(self, bad_step: int) -> str:
        """After a loss became non-finite at bad_step: make checkpoint.pt the last checkpoint whose
        next step was finite, and say in words what is kept."""
        if not self.world.leader:
            return f"rank 0 keeps the checkpoints of {self.run}"
        self.checkpoints.wait()
        path = self.run / "checkpoint.pt"
        if self.saved_step is None:
            return "no checkpoint was written before it, so --resume trains the run from the start"
        if self.saved_step < bad_step - 1:
            return f"the last good checkpoint, of step {self.saved_step}, is kept in {path}"
        # the step after this checkpoint was the one that diverged: its weights already hold the
        # update that did it, and a resume from it would stop again at once
        diverged = self.run / DIVERGED_CHECKPOINT
        os.replace(path, diverged)
        moved = f"the checkpoint of step {self.saved_step}, whose next step diverged, is moved to {diverged}"
        previous = self.run / PREVIOUS_CHECKPOINT
        if self.previous_step is None or not previous.is_file():
            return f"{moved}; no earlier one is kept, so --resume trains the run from the start"
        os.replace(previous, path)
        return f"{moved}; the last good checkpoint, of step {self.previous_step}, is kept in {path}"

    # -- metrics -----------------------------------------------------------------------------
    def flush_metrics(self, bar=None) -> None:
        """Read the pending device metrics with one sync and append them to metrics.jsonl."""
        if not self.pending:
            return
        keys = list(self.pending[0])
        values = torch.stack([m[k].float() for m in self.pending for k in keys]).view(-1, len(keys))
        if self.world.active:  # the metrics of the global batch: each rank's, averaged
            values = distributed.mean_over_ranks(values)
        values = values.tolist()
        elapsed = (time.perf_counter() - self.interval_start) / len(values)
        first = self.step - len(values) + 1
        rows = [{"step": first + i, **dict(zip(keys, v)), "step_time": elapsed} for i, v in enumerate(values)]
        self.pending.clear()
        self.interval_start = time.perf_counter()
        bad = next((r for r in rows if not all(math.isfinite(r[k]) for k in keys)), None)
        if bad is not None:
            raise NonFiniteLoss(
                f"a loss became non-finite at step {bad['step']} ("
                + ", ".join(f"{k}={bad[k]}" for k in keys if not math.isfinite(bad[k])) + ")",
                bad["step"],
            )
        if self.world.leader:
            metrics_log.append(self.run / "metrics.jsonl", rows)
        self.check_failure(rows)
        if self.previous_step is not None and self.step > self.saved_step:
            # the step after the last checkpoint was finite: the one before it is needed no more
            self.drop_previous_checkpoint()
        last = rows[-1]
        if bar is not None:
            # the loop moves the bar's count every step; the metrics come at the log cadence
            bar.set_postfix({k: f"{last[k]:.3f}" for k in keys if k in ("loss_d", "loss_g", "info_c1")})
        if self.tb is not None:
            for r in rows:
                for k in keys:
                    self.tb.add_scalar(k, r[k], r["step"])

    def check_failure(self, rows: list[dict]) -> None:
        """Feed logged rows to the failure check; at a failure, record it and say so."""
        found = self.failure_check.update(rows)
        if found is not None:
            self.failed = found
            if self.world.leader:
                self.announce_failure()

    def announce_failure(self) -> None:
        failure.record(self.run, self.failed)
        then = ("--stop-on-failure ends it now" if self.cfg.stop_on_failure
                else "--stop-on-failure would end such a run here")
        print(f"warning: {self.run} failed at step {self.failed.last}: {self.failed.describe()}. No such run "
              f"recovered in the runs measured: start another seed (--seed {self.cfg.seed + 1}); {then}",
              file=sys.stderr)

    # -- figures -----------------------------------------------------------------------------
    def write_figures(self) -> None:
        from fastinfo import plots

        spec, title = self.model.spec, f"{self.cfg.model} ({self.cfg.preset}) on {self.cfg.dataset}"
        # a fixed generator: the same noise rows at every step and across resumes
        gen = torch.Generator(self.device).manual_seed(self.cfg.seed + 12345)
        for code, name in enumerate(spec.code_names):
            z, cat, cont, n_cols = spec.traversal(code, n_rows=10, device=self.device, generator=gen)
            plots.traversal_grid(self.model.generate(z, cat, cont), n_cols, self.run / f"traverse_{name}.png",
                                 name, spec.traversal_values(code).tolist())
        if hasattr(self.model, "reconstruct"):  # a VAE: test digits and their reconstructions
            images, _ = data.load_split(self.cfg, train=False)
            originals = data.to_model_range(data.with_channels(images[:50].to(self.device)))
            plots.reconstructions(originals, self.model.reconstruct(originals), self.run / "reconstructions.png")
        rows = metrics_log.read(self.run / "metrics.jsonl")
        plots.loss_curves(rows, self.run / "loss_curves.png", title)
        if self.model.use_q:
            plots.info_curve(rows, spec.code_names, spec.entropy().tolist(), spec.n_cat, self.run / "info_curve.png",
                             title)
        if rows and "mi_estimate" in rows[0]:
            plots.metric_curve(rows, "mi_estimate", self.run / "mi_curve.png", title,
                               "MINE estimate of I(c; G(z, c)) [nats]")

    # -- the loop ----------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self.stop_signal = signum

    def stop_asked(self, metrics_flushed: bool) -> bool:
        """Whether the loop stops at this step for a signal. Over several processes every rank
        stops at the same step, the first logged one after any rank got a signal: the ranks
        agree where they meet anyway, at the metrics' all-reduce."""
        if not self.world.active:
            return self.stop_signal is not None
        return metrics_flushed and distributed.any_rank(self.stop_signal is not None, self.device)

    def train(self) -> int:
        """Train to the last step, write the figures and the evaluation; the exit code. Returns
        or raises only once the last checkpoint is on disk: the run folder's lock is held until
        then, and the final write overlaps the figures and the evaluation."""
        try:
            try:
                with matmul_precision(self.cfg, self.device):
                    code = self._train()
            finally:
                self.checkpoints.close()
        except OSError as e:
            # a full disk, a folder made read-only: a checkpoint write fails whole, so the last
            # complete one is there to resume from
            raise RunError(f"cannot write {e.filename or self.run}: {e.strerror or e}; the last complete "
                           f"checkpoint is kept: make room, then continue with --resume {self.run}") from None
        except KeyboardInterrupt:
            # Ctrl-C outside the loop, where no handler turns it into a checkpoint
            if "loop_end" not in self.clock.marks:
                return interrupted(f"before step {self.step + 1}; continue with --resume {self.run}")
            return interrupted(f"{self.run} is trained to step {self.step} and its checkpoint written; "
                               f"--resume {self.run} writes the figures and the evaluation")
        if code == 0 and self.world.leader:
            self.clock.mark("end")
            self.clock.write(self.run / "timings.json", steps_trained=self.step - self.first_step)
        return code

    def stop_early(self, bar, line: str, code: int) -> int:
        """End the loop before its last step with this step's checkpoint written, say line; code."""
        if self.saved_step != self.step:
            self.flush_metrics(bar)
            self.save_checkpoint()
        self.drop_previous_checkpoint()
        bar.close()
        if self.world.leader:
            print(line, file=sys.stderr)
        return code

    def stop_failed(self, bar) -> int:
        """End a failed run under --stop-on-failure; EXIT_FAILED."""
        return self.stop_early(bar, f"stopped at step {self.step}: the run failed ({failure.FAILED_FILE} says "
                                    f"how); its checkpoint is saved", EXIT_FAILED)

    def start_line(self) -> str:
        """What this run trains, where, how and for how long, in one line."""
        cfg, device = self.cfg, self.device
        threads = torch.get_num_threads()
        where = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
                 else f"cpu ({threads} thread{'s' if threads > 1 else ''})")
        precision = {"bf16": "bf16 autocast", "fp16": "fp16 autocast with loss scaling"}.get(cfg.amp, "fp32")
        options = [o for o, on in (("compiled", cfg.compile), ("CUDA graphs", cfg.cuda_graphs)) if on] or ["eager"]
        steps = f"steps {self.step + 1}-{self.total}" if self.step else f"{self.total} steps"
        size = data.image_size(cfg)
        resized = f", resized to {size}x{size}" if size != data.own_size(cfg.dataset) else ""
        host = ", held on the host" if isinstance(self.loader, data.HostLoader) else ""
        images = f"{self.n_train:,} images{resized}{host}"
        batch = f"batch {cfg.batch_size}"
        if self.world.active:
            where = f"{self.world.size} processes (rank 0 on {where})"
            batch += f" ({self.loader.batch_size} a process)"
        return (f"training {cfg.model} ({cfg.preset} preset) on {cfg.dataset} ({images}) on {where}, "
                f"{precision}, {' + '.join(options)}: {steps} of {batch}, into {self.run}")

    def _train(self) -> int:
        cfg, leader = self.cfg, self.world.leader
        if leader:
            print(self.start_line(), file=sys.stderr)
        if self.failed is not None and leader:  # a resumed run that had failed
            self.announce_failure()
        if self.tb_writer is not None:
            self.tb = self.tb_writer(str(self.run / "tensorboard"))
        bar = tqdm(total=self.total, initial=self.step, disable=not (cfg.progress and leader), dynamic_ncols=True,
                   desc=f"{cfg.model}")
        if leader:
            import_in_background(["fastinfo.plots"] + (["fastinfo.evaluate"] if cfg.eval_at_end else []))
        if self.step >= self.total and leader:
            print(f"{self.run} has trained {self.step} steps, the {self.total} asked for: nothing to train "
                  f"(a larger --steps or --epochs continues it)", file=sys.stderr)
        try:
            with signals_handled_by(self._on_signal):
                self.clock.mark("loop_start")
                self.interval_start = time.perf_counter()
                while self.step < self.total:
                    if self.failed is not None and cfg.stop_on_failure:
                        return self.stop_failed(bar)
                    self.pending.append(self.runner(self.step))
                    self.step += 1
                    bar.update(1)  # a count kept on the host: no device sync
                    ckpt_due = self.step % cfg.ckpt_every == 0
                    log_due = self.step % cfg.log_every == 0 or ckpt_due
                    if log_due:
                        self.flush_metrics(bar)
                    if ckpt_due:
                        self.save_checkpoint()
                    if self.stop_asked(log_due):
                        # the signal may have come at any moment above, during the flush (the
                        # loop's one sync on a GPU) too: this step's checkpoint, unless written
                        by = f"signal {self.stop_signal}" if self.stop_signal else "a signal to another process"
                        return self.stop_early(bar, f"stopped by {by} at step {self.step}; "
                                                    f"checkpoint saved, continue with --resume {self.run}",
                                               EXIT_INTERRUPTED)
                    if (cfg.sample_every and self.step % cfg.sample_every == 0 and self.step < self.total
                            and leader):
                        self.write_figures()
                self.flush_metrics(bar)
                if self.saved_step != self.step:
                    self.save_checkpoint()
                self.drop_previous_checkpoint()
                self.clock.mark("loop_end")
            if self.failed is not None and cfg.stop_on_failure:  # seen at the last step's flush
                return self.stop_failed(bar)
        except NonFiniteLoss as e:
            kept = self.keep_last_good_checkpoint(e.step)
            if leader:
                print(f"error: {e}; {kept}", file=sys.stderr)
            return EXIT_NON_FINITE
        finally:
            bar.close()
            if self.tb is not None:
                self.tb.close()
        if not leader:  # the run folder is rank 0's
            return 0
        self.write_figures()
        self.clock.mark("figures_end")
        if cfg.eval_at_end:
            from fastinfo.evaluate import evaluate_model

            result = {"step": self.step, **evaluate_model(self.model, cfg, run=self.run)}
            atomic.write_text(self.run / "eval.json", json.dumps(result, indent=2) + "\n")
            print(json.dumps(result))
            self.clock.mark("eval_end")
        return 0


@contextlib.contextmanager
def prepare_run(values: dict, resume: str | None, world: distributed.World = distributed.SINGLE):
    """The trainer of a resumed or a new run; its folder stays locked while within. Over several
    processes rank 0 does this; the other ranks read the same settings and write nothing."""
    if not world.leader:
        cfg = load_run_config(Path(resume), overrides=values) if resume is not None else make_config(values)
        yield Trainer(cfg, resume=None if resume is None else Path(resume), world=world)
        return
    if resume is not None:
        run = Path(resume)
        with exclusive_run(run):
            cfg = load_run_config(run, overrides=values)
            trainer = Trainer(cfg, resume=run, world=world)
            # the settings the run goes on with (a new --steps, or --data-root when the data moved)
            write_config(run, cfg)
            yield trainer
        return
    cfg = make_config(values)
    for name in cfg.unused_settings():
        print(f"warning: --model {cfg.model} does not use --{name.replace('_', '-')} (only "
              f"{', '.join(registry.readers(name))} do); it is ignored", file=sys.stderr)
    run = cfg.run_dir()
    with exclusive_run(run):
        if (run / "config.json").exists() or (run / "checkpoint.pt").exists():
            raise RunError(f"{run} already holds a run; continue it with --resume {run} or choose another --out")
        trainer = Trainer(cfg, world=world)
        write_config(run, cfg)
        try:
            yield trainer
        except Exception as e:
            # a run that crashed before its first checkpoint kept nothing: its folder is not left
            # looking like a run, so the same command, corrected, can start it again (errors whose
            # line says how to go on with --resume keep it)
            resumable = (RunError, torch.OutOfMemoryError, OSError)
            if not isinstance(e, resumable) and not (run / "checkpoint.pt").exists():
                for name in ("config.json", "metrics.jsonl"):
                    (run / name).unlink(missing_ok=True)
            raise


def out_of_memory(error: torch.OutOfMemoryError, trainer: Trainer | None) -> str:
    """What a run that ran out of GPU memory kept, and how to go on, in one line."""
    # torch's first sentences: what it tried to allocate, the card's capacity and what was free
    detail = ". ".join(str(error).split(". ")[:3]).rstrip(".")
    if trainer is None:
        return (f"out of GPU memory while the run was set up ({detail}); a smaller --batch-size needs less, "
                f"as do fewer processes on the GPU at once (a sweep's --procs)")
    saved = checkpoint.saved_step(trainer.run / "checkpoint.pt")
    kept = f"its checkpoint of step {saved} is kept" if saved else "it has no checkpoint yet"
    return (f"out of GPU memory at step {trainer.step + 1} of {trainer.run} ({detail}); {kept}: --resume "
            f"{trainer.run} goes on once the GPU has room (fewer processes on it at once: a sweep's --procs)")


@stops_as_on_ctrl_c
def main(argv=None) -> int:
    trainer, world = None, distributed.from_environment()
    try:
        values, resume = parse_args(argv)
        with prepare_run(values, resume, world) as trainer:
            return trainer.train()
    except (ConfigError, RunError, data.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except torch.OutOfMemoryError as e:
        print(f"error: {out_of_memory(e, trainer)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (MemoryError, RuntimeError) as e:
        # the CPU's allocator raises a RuntimeError ("DefaultCPUAllocator: can't allocate memory")
        if not isinstance(e, MemoryError) and "can't allocate memory" not in str(e):
            raise
        where = "while the run was set up" if trainer is None else f"at step {trainer.step + 1} of {trainer.run}"
        print(f"error: out of memory {where}: a smaller --batch-size or --noise-dim needs less", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        # a folder that cannot be written (a resume into a read-only folder, a full disk at start)
        print(f"error: cannot write {e.filename or 'a run file'}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return interrupted("before training started: nothing was trained")
    finally:
        distributed.stop()


def cli() -> None:
    """The command line (`python -m fastinfo.train`, `fastinfo-train`): main() and its exit code."""
    # a run's shapes are fixed: cuDNN times its convolution algorithms once and keeps the fastest
    torch.backends.cudnn.benchmark = True
    code = main()
    # the interpreter's exit collects garbage over every object torch and the libraries made, a
    # second or more of a short run on a small CPU; frozen, they are skipped (the files are closed)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    cli()
