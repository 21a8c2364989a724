"""utils.runtime: the FAST switch, device choice, seeding, timer, result lines."""

import pytest
import torch

from utils import runtime


def test_fast_flag_reads_the_environment_each_call(monkeypatch):
    monkeypatch.setenv("DIGM_FAST", "1")
    assert runtime.is_fast(), "DIGM_FAST=1 should switch FAST mode on"
    monkeypatch.setenv("DIGM_FAST", "0")
    assert not runtime.is_fast(), "DIGM_FAST=0 should switch FAST mode off (is the value cached?)"
    monkeypatch.delenv("DIGM_FAST")
    assert not runtime.is_fast(), "an unset DIGM_FAST means full mode"


def test_fast_or_picks_by_mode(monkeypatch):
    monkeypatch.setenv("DIGM_FAST", "1")
    assert runtime.fast_or(full=100, fast=2) == 2
    monkeypatch.setenv("DIGM_FAST", "0")
    assert runtime.fast_or(full=100, fast=2) == 100


def test_a_garbled_fast_flag_is_an_error_not_a_guess(monkeypatch):
    monkeypatch.setenv("DIGM_FAST", "maybe")
    with pytest.raises(ValueError, match="DIGM_FAST"):
        runtime.is_fast()


def test_device_override_from_environment(monkeypatch):
    monkeypatch.setenv("DIGM_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_unknown_device_names_the_choices(monkeypatch):
    monkeypatch.setenv("DIGM_DEVICE", "tpu")
    with pytest.raises(ValueError) as err:
        runtime.get_device()
    message = str(err.value)
    assert "tpu" in message and "cpu" in message and "DIGM_DEVICE" in message, message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_an_error(monkeypatch):
    monkeypatch.setenv("DIGM_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        runtime.get_device()


def test_cuda_with_a_cpu_only_torch_says_the_build_is_the_problem(monkeypatch):
    monkeypatch.setenv("DIGM_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeError, match="CPU-only build") as err:
        runtime.get_device()
    assert "unset DIGM_DEVICE" in str(err.value), "the error should say how to go on without a GPU"


def test_cuda_with_a_cuda_torch_but_no_gpu_does_not_blame_the_build(monkeypatch):
    monkeypatch.setenv("DIGM_DEVICE", "cuda")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    with pytest.raises(RuntimeError) as err:
        runtime.get_device()
    message = str(err.value)
    assert "install a CUDA build" not in message, f"this torch is a CUDA build already: {message}"
    assert "CUDA 12.8 build" in message and "no usable GPU" in message and "nvidia-smi" in message, message


def test_cuda_hidden_by_cuda_visible_devices_is_named(monkeypatch):
    monkeypatch.setenv("DIGM_DEVICE", "cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    with pytest.raises(RuntimeError, match="CUDA_VISIBLE_DEVICES=''"):
        runtime.get_device()


def test_automatic_choice_without_a_gpu_is_the_cpu(monkeypatch):
    monkeypatch.delenv("DIGM_DEVICE", raising=False)
    device = runtime.get_device()
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert device == torch.device("cpu")


def test_seeding_makes_draws_repeatable():
    runtime.seed_everything(123)
    a = torch.randn(5)
    g = runtime.seed_everything(123)
    b = torch.randn(5)
    assert torch.equal(a, b), "seed_everything should reset torch's global generator"
    assert torch.equal(
        torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(123))
    )


def test_timer_measures_elapsed_time():
    with runtime.Timer("x") as t:
        sum(range(10000))
    assert t.seconds > 0


def test_report_result_prints_a_parseable_line(capsys):
    assert runtime.report_result("test_nll", 88.912345, "nats") is None, (
        "a returned value would echo in a cell"
    )
    assert capsys.readouterr().out.strip() == "[result] test_nll = 88.9123 nats"


def test_describe_names_mode_and_device(monkeypatch):
    monkeypatch.setenv("DIGM_FAST", "1")
    text = runtime.describe(torch.device("cpu"))
    assert "FAST" in text and "cpu" in text and torch.__version__ in text


def test_require_passes_silently_when_the_check_holds():
    runtime.require(torch.tensor([True, True]), "never shown")
    runtime.require(True, "never shown")


def test_require_raises_the_message_when_any_entry_fails():
    with pytest.raises(ValueError, match="^values must be positive$"):
        runtime.require(torch.tensor([True, False]), "values must be positive")
    with pytest.raises(ValueError, match="positive"):
        runtime.require(False, "values must be positive")


class Recorder:
    def __init__(self):
        self.seen = []

    def record(self, ok, message):
        self.seen.append((bool(ok), message))


def test_inside_a_recording_block_require_hands_the_check_over_instead_of_raising():
    recorder = Recorder()
    with runtime.recording_checks(recorder):
        runtime.require(torch.tensor([True, False]), "values must be positive")  # must not raise here
    assert recorder.seen == [(False, "values must be positive")], f"the recorder got {recorder.seen}"
    with pytest.raises(ValueError):
        runtime.require(torch.tensor(False), "after the block, checks are immediate again")
