"""Shared utilities of the course "Differentiable Inference and Generative Models".

One module per responsibility (see README and docs): ``runtime``, ``data``, ``train``, ``models``,
``metrics``, ``viz``, ``widgets``, ``checks``. Import the module you need, e.g.
``from utils import runtime, viz``; nothing is re-exported with a star.
"""

__version__ = "0.1.0"
