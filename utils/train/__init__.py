"""One training loop for every model of the course.

The model contract: an ``nn.Module`` with ``loss(batch) -> dict`` whose ``"loss"`` entry is the
scalar to minimise; the other scalar entries (``"elbo"``, ``"kl"``, ...) are logged. Generative
models also have ``sample(n)``, which the loop does not need. Several players (a GAN) pass a dict
of optimizers and define ``training_step(batch, optimizers)`` instead.

    >>> history = fit(model, x_train, epochs=10, eval_data=x_test)   # doctest: +SKIP
    >>> history.last("eval_loss"), history.plot()                     # doctest: +SKIP

Why it is fast: a small model's step is bound by launch overhead, not arithmetic, so the data set
stays on the device and is sliced per batch, logged values are read back only every few dozen
steps, and on CUDA the whole step is recorded once as a CUDA graph and replayed (results/ has the
measured speeds).

Modules: ``loop`` (``fit``, ``evaluate``), ``history`` (``History``), ``checkpoints``, ``steppers``
(eager / compiled / CUDA-graph steps, ``adam``), ``schedules`` (learning-rate stages), ``progress``
(tqdm bar, live plot) and ``contract`` (the model contract's checks).
"""

from utils.train.checkpoints import load_checkpoint, save_checkpoint
from utils.train.contract import ModelContractError
from utils.train.history import History
from utils.train.loop import SPEEDS, NonFiniteLossError, evaluate, fit
from utils.train.steppers import adam

__all__ = [
    "SPEEDS",
    "History",
    "ModelContractError",
    "NonFiniteLossError",
    "adam",
    "evaluate",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
]
