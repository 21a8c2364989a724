"""The student library of the course "Differentiable Inference and Generative Models".

What lectures and assignments import, one module or package per responsibility (CONTRIBUTING.md
has the map): ``runtime``, ``data``, ``files``, ``train``, ``models``, ``metrics``, ``viz``,
``widgets``, ``checks``. Import the module you need, e.g. ``from utils import runtime, viz``;
nothing is re-exported with a star. The instructor commands live apart, in ``tools``.
"""

__version__ = "0.1.0"
