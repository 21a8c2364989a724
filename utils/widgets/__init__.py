"""Latent-space explorers built on ipywidgets 8: sliders over z, a 2-D latent map, interpolations,
and a layer-by-layer stepper for 2-D flows.

Each explorer decodes the current latent and shows the image as a PNG (no matplotlib per change,
so a change redraws at once, also on a CPU). They work without a browser: build one, set a
slider's ``.value`` from Python, and read ``.last_image`` (the tests do exactly this). In a
notebook, make the explorer the last expression of a cell (or ``display(explorer)``).

>>> explorer = LatentExplorer(vae.decode, latent_dim=20, output="logits",
...                           encode=vae.encode, examples=x_test[:100], labels=y_test[:100])
>>> explorer                                    # sliders, buttons, the decoded image
>>> explorer.sliders[0].value = 1.5             # headless: the image is redrawn at once
>>> explorer.last_image.shape                   # (28, 28), floats in [0, 1]
>>> explorer.interpolation(0, 1)                # slider t between the encodings of examples 0 and 1

Callbacks never print, never move a model and never warn: the latent is moved to the decoder's
device (found from its parameters) on each decode.

Modules: ``latent`` (``LatentExplorer``, ``latent_map``), ``interpolation``
(``InterpolationExplorer``, ``interpolation_widget``), ``replay`` (``TrainingReplay``, a slider over
snapshots saved during training), ``flow_stepper`` (``FlowStepper``, a slider over a 2-D flow's
layers, drawn with matplotlib), ``score_field`` (``ScoreField``, a noise-conditional score on a
2-D toy with Langevin particles moving in it), ``concrete`` (``ConcreteExplorer``, a temperature slider over
Concrete samples on the 3-class simplex and relaxed one-hot codes), ``latent_compare`` (``LatentMapComparison``: several models' 2-D latent
maps side by side over their priors' densities, decoded at one shared z), ``sentences`` (``SentenceHomotopy`` and ``NearestSentences``, text
explorers of a sentence code space, lecture 11), ``structured`` (``AnalogyGrid``, one example's style
in every class, and ``frames_with_boxes``, DRAW's canvases with the attention window drawn, lecture 12), ``images`` (decoding latents safely,
``decode_images``, ``png_bytes``) and ``layout`` (sliders, columns, image widgets). A new explorer
that two lectures use gets a module of its own here; a one-off widget stays in its lecture.
"""

from utils.widgets.concrete import ConcreteExplorer
from utils.widgets.flow_stepper import FlowStepper
from utils.widgets.images import decode_images, png_bytes
from utils.widgets.interpolation import InterpolationExplorer, interpolation_widget
from utils.widgets.latent import LatentExplorer, latent_map
from utils.widgets.latent_compare import LatentMapComparison, MapPanel
from utils.widgets.replay import TrainingReplay
from utils.widgets.score_field import ScoreField
from utils.widgets.sentences import NearestSentences, SentenceHomotopy
from utils.widgets.structured import AnalogyGrid, frames_with_boxes

__all__ = [
    "LatentExplorer",
    "InterpolationExplorer",
    "interpolation_widget",
    "latent_map",
    "TrainingReplay",
    "decode_images",
    "png_bytes",
    "FlowStepper",
    "ScoreField",
    "ConcreteExplorer",
    "LatentMapComparison",
    "MapPanel",
    "SentenceHomotopy",
    "NearestSentences",
    # structured models (lecture 12)
    "AnalogyGrid",
    "frames_with_boxes",
]
