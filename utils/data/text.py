"""A character-level text corpus (Jane Austen's six novels) and a character vocabulary.

The novels are plain UTF-8 files, one per novel, looked for in ``$DIGM_DATA_DIR/text/`` and then in
the cache folder ``$DIGM_CACHE_DIR/text/`` (default ``~/.cache/digm/text/``); each file must match
its published sha256 (a gzipped copy is accepted when its content does). :func:`load_text` joins
them in publication order.

Where they are missing and downloads are allowed, the novels are rebuilt from Debian's package
``r-cran-janeaustenr`` 1.0.0-1 (1.6 MB; the texts of Julia Silge's janeaustenr R package, Project
Gutenberg's texts with the boilerplate removed; public domain, package MIT): the ``.deb`` is
downloaded and verified by its sha256, read in memory (``ar`` archive -> ``data.tar.xz`` -> R
lazy-load database, see ``rdata.py``), and each novel is written to the cache only if its sha256
matches. A ``.deb`` placed by hand in the cache's ``text/`` folder is used the same way.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from utils.data.errors import ChecksumError, CorruptFileError, DatasetNotFoundError
from utils.data.rdata import RValue, read_lazyload_db
from utils.data.sources import (
    CACHE_FILE_MODE,
    ENV_CACHE_DIR,
    ENV_DATA_DIR,
    Resource,
    load_decoded,
    locate,
    writable_folder,
)
from utils.files import atomic_write

# Publication order: (file name, title, object name in the R package, sha256 of the UTF-8 file).
AUSTEN_NOVELS = (
    ("sense_and_sensibility.txt", "Sense and Sensibility", "sensesensibility",
     "105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09"),
    ("pride_and_prejudice.txt", "Pride and Prejudice", "prideprejudice",
     "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d"),
    ("mansfield_park.txt", "Mansfield Park", "mansfieldpark",
     "98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9"),
    ("emma.txt", "Emma", "emma",
     "7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe"),
    ("northanger_abbey.txt", "Northanger Abbey", "northangerabbey",
     "51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed"),
    ("persuasion.txt", "Persuasion", "persuasion",
     "8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a"),
)  # fmt: skip
TEXT_RESOURCES = tuple(
    Resource(
        folder="text",
        filename=name,
        file_hashes=(("sha256", sha),),
        content_hashes=(("sha256", sha),),
        description=f"Jane Austen's {title}",
    )
    for name, title, _, sha in AUSTEN_NOVELS
)
DEBIAN_PACKAGE = Resource(
    folder="text",
    filename="r-cran-janeaustenr_1.0.0-1_all.deb",
    file_hashes=(("sha256", "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"),),
    mirrors=(
        "http://deb.debian.org/debian/pool/main/r/r-cran-janeaustenr/",
        "http://ftp.debian.org/debian/pool/main/r/r-cran-janeaustenr/",
        "http://archive.debian.org/debian/pool/main/r/r-cran-janeaustenr/",
    ),
    description="Debian's package r-cran-janeaustenr (Jane Austen's novels)",
)
_RDATA_DIR = "usr/lib/R/site-library/janeaustenr/data/"


def _decode_utf8(content: bytes, where: str) -> str:
    return content.decode("utf-8")


def load_text(limit_chars: int | None = None) -> str:
    """Jane Austen's six novels as one string (4,025,028 characters, 81 distinct), or its first ``limit_chars``.

    Raises :class:`DatasetNotFoundError` naming the places tried when the novels cannot be found or fetched.
    """
    if limit_chars is not None and (
        isinstance(limit_chars, bool) or not isinstance(limit_chars, int) or limit_chars < 1
    ):
        raise ValueError(f"limit_chars={limit_chars!r} must be a positive integer or None.")
    try:
        text = _read_novels(limit_chars)
    except DatasetNotFoundError as missing:
        try:
            unpack_novels(locate(DEBIAN_PACKAGE).content())
        except DatasetNotFoundError as no_package:
            raise DatasetNotFoundError(
                f"{missing} The novels could not be rebuilt from {DEBIAN_PACKAGE.description} either: "
                f"{no_package} Put the six novels (names and checksums in utils/data/text.py) in "
                f"${ENV_DATA_DIR}/text/ or ${ENV_CACHE_DIR}/text/ (default ~/.cache/digm/text/), "
                "or allow a download.",
                missing.attempts + no_package.attempts,
            ) from None
        text = _read_novels(limit_chars)
    return text if limit_chars is None else text[:limit_chars]


def _read_novels(limit_chars: int | None) -> str:
    parts: list[str] = []
    length = 0
    for resource in TEXT_RESOURCES:
        parts.append(load_decoded(resource, _decode_utf8))
        length += len(parts[-1])
        if limit_chars is not None and length >= limit_chars:
            break
    return "".join(parts)


def novels_from_debian_package(deb: bytes) -> dict[str, bytes]:
    """The six novels (file name -> UTF-8 bytes, checksums verified) read from the package's bytes."""
    objects = read_lazyload_db(*_rdata_files(deb), where=DEBIAN_PACKAGE.filename)
    novels = {}
    for name, _, r_name, sha in AUSTEN_NOVELS:
        lines = objects.get(r_name)
        if not isinstance(lines, RValue) or not all(isinstance(line, str) for line in lines.values):
            raise CorruptFileError(f"{DEBIAN_PACKAGE.filename} has no character vector {r_name!r}.")
        body = ("\n".join(lines.values) + "\n").encode("utf-8")
        if hashlib.sha256(body).hexdigest() != sha:
            raise ChecksumError(f"{name} rebuilt from {DEBIAN_PACKAGE.filename} does not match its sha256.")
        novels[name] = body
    return novels


def unpack_novels(deb: bytes) -> None:
    """Write the novels found in the Debian package ``deb`` (its bytes) into the cache's ``text/`` folder."""
    novels = novels_from_debian_package(deb)
    attempts: list[str] = []
    folder = writable_folder(DEBIAN_PACKAGE, attempts)
    if folder is None:
        raise DatasetNotFoundError(f"The novels cannot be stored: {'; '.join(attempts)}.", attempts)
    for name, body in novels.items():
        atomic_write(folder / name, body, mode=CACHE_FILE_MODE)


def _rdata_files(deb: bytes) -> tuple[bytes, bytes]:
    """``Rdata.rdx`` and ``Rdata.rdb`` from a ``.deb`` (an ``ar`` archive holding ``data.tar.*``)."""
    members = _ar_members(deb)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise CorruptFileError(f"{DEBIAN_PACKAGE.filename} has no data.tar member.")
    try:
        with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*") as tar:
            files = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
            rdx, rdb = (tar.extractfile(files[_RDATA_DIR + f]).read() for f in ("Rdata.rdx", "Rdata.rdb"))
    except (tarfile.TarError, KeyError, OSError, EOFError) as err:
        raise CorruptFileError(f"{DEBIAN_PACKAGE.filename}'s {data_name} is unreadable ({err}).") from err
    return rdx, rdb


def _ar_members(archive: bytes) -> dict[str, bytes]:
    if archive[:8] != b"!<arch>\n":
        raise CorruptFileError(f"{DEBIAN_PACKAGE.filename} is not an ar archive (a .deb).")
    members, pos = {}, 8
    while pos + 60 <= len(archive):
        header = archive[pos : pos + 60]
        name, size = header[:16].decode("ascii").strip().rstrip("/"), int(header[48:58].decode("ascii"))
        members[name] = archive[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)  # members are padded to an even offset
    return members


@dataclass(frozen=True)
class CharVocab:
    """A fixed alphabet of characters, mapping each to an integer id (its index in ``chars``;
    :meth:`from_text` sorts them, so there the id is the character's rank in code-point order).

    >>> vocab = CharVocab.from_text("hello")
    >>> vocab.decode(vocab.encode("hole"))
    'hole'
    """

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
            raise ValueError(
                "CharVocab needs distinct single characters; build it with CharVocab.from_text(text)."
            )

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every distinct character in ``text``, in code-point order."""
        if not text:
            raise ValueError("CharVocab.from_text got an empty string; pass the training text.")
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def _codepoints(self) -> np.ndarray:
        return np.array([ord(c) for c in self.chars], dtype=np.int64)

    def encode(self, text: str) -> torch.Tensor:
        """Ids of the characters of ``text``, ``int64 [len(text)]`` (vectorised: 4 M characters in ~0.1 s)."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        table = self._codepoints()
        order = np.argsort(table)  # searchsorted needs a sorted table; chars given by hand may not be
        ids = np.searchsorted(table[order], points)
        ids = np.clip(ids, 0, len(table) - 1)
        known = table[order][ids] == points
        if not known.all():
            position = int(np.flatnonzero(~known)[0])
            raise ValueError(
                f"Character {text[position]!r} at position {position} is not in this vocabulary of "
                f"{len(self)} characters; build the vocabulary from text that contains it."
            )
        return torch.from_numpy(order[ids])

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The string for a 1-D tensor (or list) of ids."""
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise ValueError(
                    f"decode needs a 1-D tensor of ids, got shape {tuple(ids.shape)}; decode rows one by one."
                )
            values = ids.detach().cpu().tolist()
        else:
            values = list(ids)
        bad = [i for i in values if not 0 <= int(i) < len(self.chars)]
        if bad:
            raise ValueError(
                f"Id {bad[0]} is outside this vocabulary of {len(self)} characters (0..{len(self) - 1})."
            )
        return "".join(self.chars[int(i)] for i in values)
