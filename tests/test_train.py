"""utils.train: the training loop's promises, one per test (CPU; CUDA-only paths skip without a GPU)."""

from __future__ import annotations

import math
import os
import re
import warnings

import pytest
import torch
from torch import nn

from utils import runtime, train
from utils.train import steppers

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class TinyVAE(nn.Module):
    """A Gaussian VAE small enough for a CPU test; its loss draws reparameterisation noise."""

    def __init__(self, d: int = 12, z: int = 2):
        super().__init__()
        self.enc = nn.Linear(d, 2 * z)
        self.dec = nn.Linear(z, d)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)  # [B, z] each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = ((self.dec(z) - x) ** 2).sum(-1)  # [B]
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)  # [B]
        return {"loss": (rec + kl).mean(), "rec": rec.mean(), "kl": kl.mean()}


class Regression(nn.Module):
    """Deterministic least squares on (x, y) pairs: the batch arrives as a tuple."""

    def __init__(self, d: int = 4):
        super().__init__()
        self.lin = nn.Linear(d, 1)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"loss": ((self.lin(x).squeeze(-1) - y) ** 2).mean()}


def toy_data(n: int = 256, d: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) @ torch.randn(2, d, generator=g)  # rank-2 data, [n, d]


def quiet_fit(model, data, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("live_plot", False)
    return train.fit(model, data, **kwargs)


def test_loss_goes_down_on_a_tiny_vae():
    torch.manual_seed(0)
    history = quiet_fit(TinyVAE(), toy_data(), epochs=15, batch_size=32, lr=1e-2)
    first, last = history["loss"][0], history.last("loss")
    assert last < 0.7 * first, f"the loss went from {first:.3f} to {last:.3f}: the step does not optimise"


def test_tuple_data_reaches_the_model_as_a_tuple_and_is_fitted():
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.3
    history = quiet_fit(Regression(), (x, y), epochs=40, batch_size=50, lr=5e-2)
    assert history.last("loss") < 1e-2, f"least squares stuck at {history.last('loss'):.4f}"


def test_every_entry_of_the_loss_dict_is_logged_with_its_step():
    torch.manual_seed(0)
    history = quiet_fit(TinyVAE(), toy_data(64), steps=6, batch_size=16, log_every=2)
    assert history.steps == [2, 4, 6], f"log points at {history.steps}, expected every 2 steps"
    assert set(history.values) == {"loss", "rec", "kl"}, f"logged keys {sorted(history.values)}"
    gap = abs(history.last("loss") - history.last("rec") - history.last("kl"))
    assert gap < 1e-4, "loss != rec + kl in the log: per-key means are not taken over the same steps"


def test_a_loss_without_a_loss_entry_stops_with_a_clear_error():
    class NoLoss(TinyVAE):
        def loss(self, x):
            out = super().loss(x)
            return {"elbo": -out["loss"]}

    with pytest.raises(train.ModelContractError, match="no 'loss' entry") as info:
        quiet_fit(NoLoss(), toy_data(32), steps=2, batch_size=16)
    assert "elbo" in str(info.value), "the message should list the keys that loss() did return"


def test_a_non_scalar_loss_entry_is_refused():
    class PerExample(TinyVAE):
        def loss(self, x):
            return {"loss": ((self.dec(self.enc(x)[:, :2]) - x) ** 2).sum(-1)}  # [B], not averaged

    with pytest.raises(train.ModelContractError, match=r"shape \[16\].*mean"):
        quiet_fit(PerExample(), toy_data(32), steps=1, batch_size=16)


def test_nan_loss_names_the_step_and_the_last_finite_loss():
    class Explodes(TinyVAE):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(()))

        def loss(self, x):
            self.calls += 1
            out = super().loss(x)
            out["loss"] = out["loss"] + torch.where(self.calls >= 5, math.nan, 0.0)
            return out

    torch.manual_seed(0)
    with pytest.raises(train.NonFiniteLossError) as info:
        quiet_fit(Explodes(), toy_data(64), steps=20, batch_size=16, log_every=8)
    err = info.value
    assert err.step == 5, f"the first NaN came at step 5, the error says {err.step}"
    assert "step 5" in str(err), f"message does not name the step: {err}"
    assert err.last_finite_loss is not None and f"{err.last_finite_loss:.6g}" in str(err), str(err)
    assert err.history.steps == [], "no log point should be recorded from a window that held a NaN"


def test_checkpoint_survives_a_crash_while_saving(tmp_path, monkeypatch):
    model = TinyVAE()
    path = tmp_path / "ckpt.pt"
    train.save_checkpoint(path, model, step=7)
    before = path.read_bytes()

    def torch_save_that_dies(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", torch_save_that_dies)
    with torch.no_grad():
        model.dec.weight.add_(1.0)
    with pytest.raises(OSError, match="simulated"):
        train.save_checkpoint(path, model, step=8)
    monkeypatch.undo()
    assert path.read_bytes() == before, "a crash while saving damaged the previous checkpoint"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert train.load_checkpoint(path, TinyVAE())["step"] == 7


def test_checkpoint_loads_with_weights_only(tmp_path):
    model = TinyVAE()
    opt = torch.optim.Adam(model.parameters())
    quiet_fit(model, toy_data(64), steps=3, batch_size=16, optimizer=opt, checkpoint=tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["step"] == 3 and set(state["model"]) == set(model.state_dict()), "checkpoint content is off"


def test_resuming_gives_the_same_parameters_as_one_run(tmp_path):
    data = toy_data(100)  # 100 / 16 -> 7 batches per epoch, so the resume happens mid-epoch

    def run(steps: int, model_seed: int, **kwargs) -> TinyVAE:
        torch.manual_seed(model_seed)
        model = TinyVAE()
        quiet_fit(model, data, steps=steps, batch_size=16, lr=1e-2, **kwargs)
        return model

    whole = run(20, model_seed=1)
    path = tmp_path / "resume.pt"
    run(10, model_seed=1, checkpoint=path)
    resumed = run(20, model_seed=99, checkpoint=path)  # other init and RNG: all must come from the file
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after 10 + 10 steps with resume vs 20 in one run"


def test_resumed_history_continues_the_old_one(tmp_path):
    path = tmp_path / "h.pt"
    quiet_fit(TinyVAE(), toy_data(64), steps=4, batch_size=16, log_every=2, checkpoint=path)
    history = quiet_fit(TinyVAE(), toy_data(64), steps=8, batch_size=16, log_every=2, checkpoint=path)
    assert history.steps == [2, 4, 6, 8], f"steps after resume: {history.steps}"
    assert any("resumed" in note for note in history.notes), f"notes: {history.notes}"


def test_a_checkpoint_longer_than_asked_is_named_not_silently_used(tmp_path):
    path = tmp_path / "long.pt"
    quiet_fit(TinyVAE(), toy_data(64), steps=8, batch_size=16, checkpoint=path)
    with pytest.warns(UserWarning, match="holds 8 steps, more than the 4 asked for"):
        history = quiet_fit(TinyVAE(), toy_data(64), steps=4, batch_size=16, checkpoint=path)
    assert history.steps[-1] == 8, "the longer run's history comes back with it"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly as long as asked: nothing to say
        quiet_fit(TinyVAE(), toy_data(64), steps=8, batch_size=16, checkpoint=path)


def test_a_resumed_run_reports_its_own_steps_and_time(tmp_path, capsys):
    path = tmp_path / "r.pt"
    quiet_fit(TinyVAE(), toy_data(64), steps=4, batch_size=16, checkpoint=path, progress=True)
    first = capsys.readouterr().out
    assert re.search(r"^4 steps \(eager\) in [\d.]+ s: loss=", first, re.M), f"first run's summary: {first!r}"
    history = quiet_fit(TinyVAE(), toy_data(64), steps=8, batch_size=16, checkpoint=path, progress=True)
    second = capsys.readouterr().out
    match = re.search(
        r"^steps 5 to 8 \(eager, resumed from the checkpoint\) in ([\d.]+) s, ([\d.]+) s over all",
        second,
        re.M,
    )
    assert match, f"a resumed run should name the steps it took (5 to 8), not '4 steps': {second!r}"
    this_run, total = map(float, match.groups())
    assert this_run <= total and total == pytest.approx(history.seconds[-1], abs=0.05), (
        f"this run {this_run} s, all runs {total} s, history {history.seconds}: the two times are mixed up"
    )


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    model = TinyVAE()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(PermissionError, match="Cannot write a checkpoint") as info:
        quiet_fit(model, toy_data(32), steps=5, batch_size=16, checkpoint=blocker / "ckpt.pt")
    assert "a_file" in str(info.value), "the message should name the folder that cannot be written"
    changed = [i for i, (a, b) in enumerate(zip(before, model.parameters())) if not torch.equal(a, b)]
    assert not changed, "the model was trained before the checkpoint path was checked"


def test_eval_data_is_evaluated_each_epoch_and_logged():
    torch.manual_seed(0)
    data = toy_data(64)
    history = quiet_fit(TinyVAE(), data, epochs=3, batch_size=16, eval_data=data[:20])
    assert history.eval_steps == [4, 8, 12], f"eval at {history.eval_steps}, expected once per epoch"
    assert len(history["eval_loss"]) == 3 and "eval_kl" in history, f"eval keys: {list(history.eval_values)}"


def test_evaluate_averages_over_examples_not_batches():
    model = Regression(1)
    with torch.no_grad():
        model.lin.weight.fill_(0.0)
        model.lin.bias.fill_(0.0)
    x, y = torch.zeros(5, 1), torch.tensor([1.0, 1.0, 1.0, 1.0, 3.0])  # squared errors 1,1,1,1,9
    result = train.evaluate(model, (x, y), batch_size=4)  # batches of 4 and 1
    assert abs(result["loss"] - 13 / 5) < 1e-6, f"got {result['loss']}, expected 2.6 (not (1 + 9) / 2)"


def test_grad_clip_bounds_the_gradient_norm_of_each_step():
    model = Regression(4)
    x, y = torch.randn(32, 4), 1000.0 * torch.ones(32)  # a huge error: the raw gradient norm is ~2000
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    quiet_fit(
        model,
        (x, y),
        steps=1,
        batch_size=32,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        grad_clip=0.5,
    )
    moved = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()
    assert moved <= 0.5 + 1e-5, f"one SGD step (lr=1) moved the parameters by {moved:.3f} > grad_clip=0.5"


class TwoPlayers(nn.Module):
    """A minimal two-optimiser game: a critic fits the data mean, a generator moves towards the critic."""

    def __init__(self):
        super().__init__()
        self.critic = nn.Parameter(torch.zeros(()))
        self.gen = nn.Parameter(torch.zeros(()))

    def training_step(self, batch, optimizers):
        critic_loss = (self.critic - batch.mean()) ** 2
        optimizers["critic"].zero_grad()
        critic_loss.backward()
        optimizers["critic"].step()
        gen_loss = (self.gen - self.critic.detach()) ** 2
        optimizers["gen"].zero_grad()
        gen_loss.backward()
        optimizers["gen"].step()
        return {"loss": critic_loss.detach() + gen_loss.detach(), "critic": critic_loss, "gen": gen_loss}


def test_training_step_hook_runs_each_optimiser_on_its_own_player():
    torch.manual_seed(0)
    model = TwoPlayers()
    data = 3.0 + 0.1 * torch.randn(256)
    opts = {
        "critic": torch.optim.SGD([model.critic], lr=0.2),
        "gen": torch.optim.SGD([model.gen], lr=0.2),
    }
    history = quiet_fit(model, data, epochs=8, batch_size=64, optimizer=opts)
    assert abs(model.critic.item() - 3.0) < 0.1, f"critic at {model.critic.item():.3f}, data mean is 3"
    assert abs(model.gen.item() - 3.0) < 0.3, f"generator at {model.gen.item():.3f} did not follow the critic"
    assert {"critic", "gen"} <= set(history.values), f"logged {sorted(history.values)}"


def test_optimiser_dict_without_training_step_is_refused():
    with pytest.raises(train.ModelContractError, match="training_step"):
        quiet_fit(
            TinyVAE(), toy_data(32), steps=1, optimizer={"a": torch.optim.SGD(TinyVAE().parameters(), 0.1)}
        )


def test_graph_speed_on_cpu_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        quiet_fit(TinyVAE(), toy_data(32), steps=1, speed="graph")


def test_auto_speed_on_cpu_is_eager():
    history = quiet_fit(TinyVAE(), toy_data(32), steps=1, batch_size=16)
    assert history.speed == "eager", f"auto picked {history.speed!r} on the CPU"


def test_data_that_is_not_tensors_is_a_clear_error():
    with pytest.raises(TypeError, match="tensor or a tuple of tensors"):
        quiet_fit(TinyVAE(), [[1.0, 2.0]], steps=1)


def test_missing_length_is_a_clear_error():
    with pytest.raises(ValueError, match="epochs= .* or steps="):
        quiet_fit(TinyVAE(), toy_data(32))


def test_history_to_dict_round_trips_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    data = toy_data(64)
    history = quiet_fit(TinyVAE(), data, epochs=2, batch_size=16, eval_data=data[:16])
    history.interrupted = True
    again = train.History.from_dict(history.to_dict())
    assert again.values == history.values and again.eval_values == history.eval_values, (
        "round trip lost values"
    )
    assert again.eval_steps == history.eval_steps and again.steps == history.steps
    assert again.interrupted, "round trip lost the interrupted flag"
    ax = history.plot()
    assert len(ax.get_lines()) >= 2, "plot drew no curves"


@CUDA
def test_graph_mode_runs_on_cuda_and_is_used():
    torch.manual_seed(0)
    model = TinyVAE().cuda()
    history = quiet_fit(model, toy_data(512).cuda(), epochs=3, batch_size=64, speed="graph")
    assert history.speed == "graph", f"fell back: {history.notes}"
    assert history.last("loss") < history["loss"][0], "the captured step does not optimise"


@CUDA
def test_graph_mode_draws_fresh_noise_on_every_replay():
    class Noise(TinyVAE):
        def loss(self, x):
            out = super().loss(x)
            out["noise"] = torch.randn((), device=x.device)
            return out

    model = Noise().cuda()
    history = quiet_fit(model, toy_data(512).cuda(), steps=16, batch_size=32, speed="graph", log_every=1)
    assert history.speed == "graph", f"fell back: {history.notes}"
    noise = history["noise"]
    assert len(set(noise)) == len(noise), f"replays repeated the same random numbers: {noise}"


def eager_graph_gap(**fit_kwargs) -> float:
    """Train the same regression from the same seed eagerly and as a CUDA graph; the largest parameter gap."""
    x = torch.randn(256, 4, device="cuda")
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0], device="cuda")
    results = {}
    for speed in ("eager", "graph"):
        torch.manual_seed(0)
        model = Regression().cuda()
        quiet_fit(
            model,
            (x, y),
            steps=12,
            batch_size=32,
            speed=speed,
            generator=5,
            optimizer=train.adam(model),
            **fit_kwargs,
        )
        results[speed] = torch.cat([p.detach().flatten() for p in model.parameters()])
    return (results["eager"] - results["graph"]).abs().max().item()


@CUDA
def test_graph_mode_matches_eager_on_a_deterministic_model():
    gap = eager_graph_gap()
    assert gap < 1e-5, f"graph and eager parameters differ by {gap}: the warm-up was not undone"


class Syncs(TinyVAE):
    """A loss that reads a value back on every step (``.item()``): a CUDA graph cannot record it."""

    def loss(self, x):
        out = super().loss(x)
        if out["loss"].item() > 1e9:
            raise RuntimeError
        return out


class SyncsWhileRecording(TinyVAE):
    """Passes the eager warm-up, then reads a value back in the middle of the recording, after its random
    draws: the capture is invalidated, the case that once left the CUDA generator in capture mode."""

    def loss(self, x):
        out = super().loss(x)
        if torch.cuda.is_current_stream_capturing():
            out["loss"].item()
        return out


def assert_cuda_still_works() -> None:
    """What broke after a failed capture: random draws, the current stream, and recording another model."""
    torch.randn(3, device="cuda")  # "Offset increment outside graph capture encountered unexpectedly"
    assert torch.cuda.current_stream() == torch.cuda.default_stream(), "the capture stream was left current"
    torch.manual_seed(0)
    history = quiet_fit(TinyVAE().cuda(), toy_data(256).cuda(), steps=8, batch_size=32, speed="graph")
    assert history.speed == "graph", f"a healthy process records the next model again: {history.notes}"


@CUDA
@pytest.mark.parametrize("model_class", [Syncs, SyncsWhileRecording])
def test_a_model_that_cannot_be_recorded_trains_eagerly_with_one_warning_and_cuda_stays_healthy(model_class):
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = quiet_fit(
            model_class().cuda(), toy_data(256).cuda(), steps=16, batch_size=32, speed="graph"
        )
    told = [str(w.message) for w in caught if "eagerly" in str(w.message)]
    assert len(told) == 1, f"expected one warning saying the model trains eagerly, got {told}"
    assert history.speed == "eager" and history.notes, f"speed {history.speed}, notes {history.notes}"
    assert history.steps[-1] == 16, f"training stopped at step {history.steps[-1]} of 16"
    assert_cuda_still_works()


def private_pool_segments() -> int:
    """Segments of GPU memory held by a CUDA graph's private pool, after the free ones are returned."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return sum(1 for seg in torch.cuda.memory_snapshot() if tuple(seg["segment_pool_id"]) != (0, 0))


@CUDA
def test_a_failed_recording_leaves_no_private_memory_pool_behind():
    before = private_pool_segments()
    with pytest.warns(UserWarning, match="eagerly"):
        quiet_fit(SyncsWhileRecording().cuda(), toy_data(256).cuda(), steps=8, batch_size=32, speed="graph")
    assert private_pool_segments() <= before, "the failed graph's memory pool was never released"


def test_an_accumulator_that_first_appears_while_recording_is_refused():
    meter = steppers.Meter(torch.device("cpu"))
    meter.add({"loss": torch.tensor(1.0)})  # the eager warm-up logs "loss" only
    meter.recording = True  # a new entry made now would be zeroed again on every replay of the graph
    with pytest.raises(steppers.CaptureRefused, match="'kl' appears only when the step is recorded"):
        meter.add({"loss": torch.tensor(1.0), "kl": torch.tensor(0.5)})
    with pytest.raises(steppers.CaptureRefused, match="a check"):
        meter.record(torch.tensor(True), "a check seen for the first time")


class Binarizing(nn.Module):
    """A Bernoulli model of 12 pixels whose loss binarizes its batch with utils.data.dynamic_binarize."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(12))

    def loss(self, x):
        from utils.data import dynamic_binarize

        b = dynamic_binarize(x)  # [B, 12]
        return {"loss": -(b * self.logits - nn.functional.softplus(self.logits)).sum(-1).mean()}


class ScaledBinarizing(Binarizing):
    """Binarizes its batch times a scale held in a buffer, which a test can change between steps."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def loss(self, x):
        return super().loss(x * self.scale)


@CUDA
@pytest.mark.parametrize("speed", ["eager", "graph"])
def test_bad_data_on_a_gpu_is_reported_at_read_back_with_its_step(speed):
    model = ScaledBinarizing().cuda()

    def schedule(step: int) -> float:  # called before each update, outside any recorded graph
        if step == 5:
            model.scale.fill_(3.0)  # from the 6th step on the model binarizes 1.5: not a probability
        return 1e-2

    data = torch.full((256, 12), 0.5, device="cuda")
    with pytest.raises(
        ValueError, match=r"^At training step 6: dynamic_binarize needs probabilities in \[0, 1\]"
    ):
        quiet_fit(model, data, steps=16, batch_size=32, speed=speed, lr_schedule=schedule, log_every=8)
    assert_cuda_still_works()


def test_bad_data_inside_a_step_on_a_cpu_fails_at_once():
    data = torch.full((64, 12), 0.5)
    data[5] = 2.0
    with pytest.raises(ValueError, match=r"dynamic_binarize needs probabilities in \[0, 1\]"):
        quiet_fit(Binarizing(), data, steps=4, batch_size=64)


class FailsAtCall(TinyVAE):
    """Its loss fails a runtime.require check on one call (counted in Python: an eager model)."""

    def __init__(self, at: int):
        super().__init__()
        self.calls, self.at = 0, at

    def loss(self, x):
        self.calls += 1
        runtime.require(torch.tensor(self.calls != self.at), f"the check fails on call {self.at}")
        return super().loss(x)


def test_deferred_checks_are_raised_at_the_next_read_back_naming_the_failing_step(monkeypatch):
    monkeypatch.setattr(steppers, "defers_checks", lambda device: True)  # as on a GPU
    model = FailsAtCall(at=3)
    with pytest.raises(ValueError, match="^At training step 3: the check fails on call 3$"):
        quiet_fit(model, toy_data(64), steps=8, batch_size=8, log_every=4, speed="eager")
    assert model.calls == 4, f"the error should come at the read-back after step 4, not at call {model.calls}"


@pytest.mark.skipif(
    os.environ.get("DIGM_TEST_COMPILE") != "1", reason="torch.compile takes ~30 s; set DIGM_TEST_COMPILE=1"
)
def test_compile_mode_trains():
    torch.manual_seed(0)
    history = quiet_fit(TinyVAE(), toy_data(), epochs=5, batch_size=32, lr=1e-2, speed="compile")
    assert history.speed == "compile", f"fell back: {history.notes}"
    assert history.last("loss") < history["loss"][0]


def test_in_a_notebook_fit_draws_a_live_loss_plot():
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import torch\nfrom torch import nn\nfrom utils import train\n"
            "model = nn.Linear(3, 1)\nmodel.loss = lambda x: {'loss': (model(x) ** 2).mean()}\n"
            "history = train.fit(model, torch.randn(200, 3), epochs=2, batch_size=50)"
        )
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    kinds = [list(o.get("data", {})) for o in nb.cells[0].outputs]
    assert any("image/png" in k for k in kinds), f"no PNG loss plot among the cell's outputs: {kinds}"


def test_data_and_model_on_different_devices_is_a_clear_error():
    model = TinyVAE().to("meta")  # a second device that every machine has
    with pytest.raises(ValueError, match="data is on cpu but the model's parameters are on meta"):
        quiet_fit(model, toy_data(32), steps=1)


def test_eval_data_on_another_device_fails_before_training():
    model = TinyVAE()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="eval_data is on meta"):
        quiet_fit(model, toy_data(32), steps=2, batch_size=16, eval_data=toy_data(8).to("meta"))
    changed = [i for i, (a, b) in enumerate(zip(before, model.parameters())) if not torch.equal(a, b)]
    assert not changed, "the model was trained before eval_data's device was checked"


def test_a_fractional_batch_size_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 16.0"):
        quiet_fit(TinyVAE(), toy_data(32), steps=1, batch_size=16.0)


# --- learning-rate schedules -------------------------------------------------------------------


class RecordsLr(Regression):
    """Least squares that remembers the optimizer's learning rate at every loss() call (one per update)."""

    def __init__(self):
        super().__init__()
        self.optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        self.seen: list[float] = []

    def loss(self, batch):
        self.seen.append(float(self.optimizer.param_groups[0]["lr"]))
        return super().loss(batch)


def regression_data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0])


def test_step_schedule_changes_the_lr_at_its_boundaries():
    model = RecordsLr()
    quiet_fit(
        model,
        regression_data(),
        steps=7,
        batch_size=10,
        optimizer=model.optimizer,
        lr_schedule=[(3, 0.1), (5, 0.01), (6, 0.001)],
    )
    want = [0.1] * 3 + [0.01] * 2 + [0.001] * 2  # the last rate holds after the last boundary
    assert model.seen == want, (
        f"rates per update {model.seen}; expected {want} (stage i ends before step until_i)"
    )


def test_epoch_schedule_counts_epochs_when_epochs_are_given():
    model = RecordsLr()
    quiet_fit(
        model,
        regression_data(40),
        epochs=3,
        batch_size=10,
        optimizer=model.optimizer,
        lr_schedule=[(2, 0.1), (3, 0.01)],
    )  # 4 updates per epoch
    assert model.seen == [0.1] * 8 + [0.01] * 4, f"rates per update {model.seen}: boundaries should be epochs"


def test_callable_schedule_gets_the_step_index():
    model = RecordsLr()
    quiet_fit(
        model,
        regression_data(),
        steps=5,
        batch_size=10,
        optimizer=model.optimizer,
        lr_schedule=lambda step: 0.1 / (1 + step),
    )
    want = [0.1 / (1 + s) for s in range(5)]
    assert model.seen == pytest.approx(want), (
        f"rates {model.seen}; the function gets the 0-based update index"
    )


def test_schedule_is_logged_as_lr():
    import matplotlib

    matplotlib.use("Agg")
    history = quiet_fit(
        Regression(),
        regression_data(),
        steps=6,
        batch_size=10,
        log_every=2,
        lr_schedule=[(3, 0.1), (6, 0.01)],
    )
    assert history["lr"] == [0.1, 0.01, 0.01], (
        f"logged {history['lr']}: the rate of the last update of each window"
    )
    assert "lr" not in [line.get_label() for line in history.plot().get_lines()], (
        "lr does not belong on a loss plot"
    )


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ([(5, 0.1), (5, 0.01)], "strictly increasing"),
        ([(5, 0.1), (3, 0.01)], "strictly increasing"),
        ([(0, 0.1)], "positive"),
        ([(5, -0.1)], "non-negative"),
        ([(5, float("nan"))], "finite"),
        ([], "non-empty"),
        ([(5,)], "pair of numbers"),
        (0.1, "non-empty list"),
    ],
)
def test_bad_schedules_are_refused_before_training(schedule, problem):
    model = Regression()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=problem) as info:
        quiet_fit(model, regression_data(), steps=3, batch_size=10, lr_schedule=schedule)
    message = str(info.value)
    assert message.endswith(".") and not re.search(r"\.\s+[A-Z]", message), f"not one sentence: {message}"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "trained before the check"


def test_a_schedule_function_returning_a_negative_rate_is_named():
    with pytest.raises(ValueError, match=r"lr_schedule\(2\) returned -0.5"):
        quiet_fit(
            Regression(),
            regression_data(),
            steps=4,
            batch_size=10,
            lr_schedule=lambda step: 0.1 if step < 2 else -0.5,
        )


class TwoPlayersRecordingLr(TwoPlayers):
    """TwoPlayers that records both optimizers' rates at every step."""

    def __init__(self):
        super().__init__()
        self.rates: list[tuple[float, float]] = []

    def training_step(self, batch, optimizers):
        self.rates.append(
            (optimizers["critic"].param_groups[0]["lr"], optimizers["gen"].param_groups[0]["lr"])
        )
        return super().training_step(batch, optimizers)


def test_a_schedule_with_several_optimizers_sets_every_players_rate():
    model = TwoPlayersRecordingLr()
    opts = {"critic": torch.optim.SGD([model.critic], lr=0.2), "gen": torch.optim.SGD([model.gen], lr=0.7)}
    history = quiet_fit(
        model, torch.randn(64), epochs=4, batch_size=32, optimizer=opts, lr_schedule=[(3, 0.1), (4, 0.01)]
    )
    expected = [(0.1, 0.1)] * 6 + [(0.01, 0.01)] * 2  # 2 steps per epoch: stage 1 for 3 epochs, then stage 2
    assert model.rates == expected, f"rates per step (critic, gen) {model.rates}, expected {expected}"
    assert history["lr"][-1] == 0.01, f"logged lr {history['lr']}"


def test_resume_mid_schedule_continues_in_the_right_stage(tmp_path):
    schedule = [(4, 0.1), (8, 0.02), (12, 0.005)]
    torch.manual_seed(0)
    whole = RecordsLr()
    quiet_fit(
        whole,
        regression_data(),
        steps=12,
        batch_size=10,
        optimizer=whole.optimizer,
        lr_schedule=schedule,
        generator=1,
    )
    path = tmp_path / "sched.pt"
    torch.manual_seed(0)
    first = RecordsLr()
    quiet_fit(
        first,
        regression_data(),
        steps=6,
        batch_size=10,
        optimizer=first.optimizer,
        lr_schedule=schedule,
        generator=1,
        checkpoint=path,
        log_every=1,
    )
    torch.manual_seed(99)  # another init: the parameters must come from the checkpoint
    resumed = RecordsLr()
    history = quiet_fit(
        resumed,
        regression_data(),
        steps=12,
        batch_size=10,
        optimizer=resumed.optimizer,
        lr_schedule=schedule,
        generator=1,
        checkpoint=path,
        log_every=1,
    )
    assert resumed.seen == whole.seen[6:], (
        f"rates after resuming at step 6: {resumed.seen}, expected {whole.seen[6:]}"
    )
    assert history["lr"] == whole.seen, "the resumed history should hold the rate of every update"
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b), "6 + 6 steps with resume should give the same parameters as 12 in one run"


def test_a_tensor_lr_is_filled_in_place_and_checkpointed_as_a_number(tmp_path):
    model = Regression()
    rate = torch.tensor(0.1)  # as fit makes it for CUDA graphs: the captured kernel reads this memory
    opt = torch.optim.Adam(model.parameters(), lr=rate)
    quiet_fit(
        model,
        regression_data(),
        steps=4,
        batch_size=10,
        optimizer=opt,
        lr_schedule=[(2, 0.1), (4, 0.03)],
        checkpoint=tmp_path / "t.pt",
    )
    assert opt.param_groups[0]["lr"] is rate, "a tensor rate must be updated in place, not replaced"
    assert rate.item() == pytest.approx(0.03), (
        f"the tensor holds {rate.item()}, expected the last stage's 0.03"
    )
    saved = torch.load(tmp_path / "t.pt", weights_only=True)["optimizer"]["param_groups"][0]["lr"]
    assert isinstance(saved, float) and saved == pytest.approx(0.03), f"checkpointed rate {saved!r}"


@CUDA
def test_graph_mode_reads_the_scheduled_lr_on_every_replay():
    x = torch.randn(256, 4, device="cuda")
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0], device="cuda")

    def run(**kwargs) -> tuple[torch.Tensor, train.History, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = Regression().cuda()
        opt = train.adam(model, lr=1e-2)
        history = quiet_fit(model, (x, y), batch_size=32, speed="graph", generator=5, optimizer=opt, **kwargs)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), history, opt

    four, _, _ = run(steps=4)
    frozen, history, opt = run(steps=8, lr_schedule=[(4, 1e-2), (8, 0.0)])
    assert history.speed == "graph", f"fell back: {history.notes}"
    moved = (four - frozen).abs().max().item()
    assert moved < 1e-6, (
        f"with lr = 0 from step 4 the replays still moved the parameters by {moved}: rate baked in"
    )
    assert history["lr"][-1] == 0.0, f"logged rates {history['lr']}"
    assert isinstance(opt.param_groups[0]["lr"], float), "fit should hand back a float rate"


@CUDA
def test_graph_mode_schedule_matches_eager():
    gap = eager_graph_gap(lr_schedule=lambda step: 1e-2 * 0.7**step)
    assert gap < 1e-5, f"graph and eager differ by {gap} under the same schedule"


class InterruptedTinyVAE(TinyVAE):
    """TinyVAE whose loss raises KeyboardInterrupt (Jupyter's stop button) on its `at`-th call."""

    def __init__(self, at: int):
        super().__init__()
        self.calls, self.at = 0, at

    def loss(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().loss(x)


def test_an_interrupt_stops_the_cell_but_keeps_weights_and_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    data, ckpt = toy_data(64), tmp_path / "run.pt"
    model = InterruptedTinyVAE(at=11)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(KeyboardInterrupt):  # swallowed, the rest of the cell would report a finished run
        quiet_fit(model, data, epochs=8, batch_size=16, checkpoint=ckpt, speed="eager")
    assert "Interrupted at step 10 of 32" in capsys.readouterr().out, (
        "no message saying where training stopped"
    )
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), (
        "the 10 steps taken were lost"
    )
    assert train.load_checkpoint(ckpt, TinyVAE())["step"] == 10, (
        "the checkpoint does not hold the step reached"
    )
    model.at = 0  # no more interrupts: running the cell again resumes and finishes
    history = quiet_fit(model, data, epochs=8, batch_size=16, checkpoint=ckpt, speed="eager")
    assert history.steps[-1] == 32 and not history.interrupted, "the resumed run did not finish cleanly"
