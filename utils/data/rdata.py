"""Just enough of R's serialization format to read character vectors out of an R package's data.

R packages installed from source (and Debian's ``r-cran-*`` packages) keep their datasets in a
lazy-load database: ``Rdata.rdx`` (a gzip-compressed serialized index: object name -> offset and
length) and ``Rdata.rdb`` (the objects, each a 4-byte length followed by a compressed serialized
object). The serialization is XDR ("X\\n" header, big-endian integers), format version 2 or 3. This
reader understands the value types such data uses (vectors, lists, pairlists, symbols, strings,
attributes, references) and rejects anything else with a clear error.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field

from utils.data.errors import CorruptFileError

# SEXP type codes (R Internals, "Serialization formats")
_NILSXP, _SYMSXP, _LISTSXP, _CHARSXP = 0, 1, 2, 9
_LGLSXP, _INTSXP, _REALSXP, _STRSXP, _VECSXP = 10, 13, 14, 16, 19
_REFSXP, _NILVALUE_SXP, _GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP = 255, 254, 253, 242, 241
_NA_INTEGER = -(2**31)
_UTF8_MASK, _LATIN1_MASK = 1 << 3, 1 << 2


@dataclass(frozen=True)
class RSymbol:
    name: str


@dataclass
class RValue:
    """An R vector or list with its attributes (``names`` among them)."""

    values: list
    attributes: dict[str, object] = field(default_factory=dict)

    def named(self) -> dict[str, object]:
        names = self.attributes.get("names")
        if not isinstance(names, RValue):
            raise CorruptFileError("An R list without names was found where a named list was expected.")
        return dict(zip(names.values, self.values))


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where
        self.refs: list[object] = []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CorruptFileError(f"{self.where} ends in the middle of an R object.")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        return n if n != -1 else (self.int() << 32) + self.int()

    def header(self) -> None:
        if self.take(2) != b"X\n":
            raise CorruptFileError(f"{self.where} is not an R serialization in XDR format.")
        version = self.int()
        self.int(), self.int()  # R version that wrote it, minimum reader version
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise CorruptFileError(
                f"{self.where} uses R serialization version {version}; only 2 and 3 are known."
            )

    def item(self) -> object:
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (_NILVALUE_SXP, _NILSXP, _GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP):
            return None
        if kind == _REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == _SYMSXP:
            symbol = RSymbol(str(self.item()))
            self.refs.append(symbol)
            return symbol
        if kind == _LISTSXP:
            return self.pairlist(has_attr, has_tag)
        if kind == _CHARSXP:
            return self.string(flags >> 12)
        value = self.vector(kind)
        if has_attr:
            value.attributes = self.attributes_of(self.item())
        return value

    def pairlist(self, has_attr: bool, has_tag: bool) -> RValue:
        # Read iteratively: a long pairlist would otherwise recurse once per element.
        values, tags = [], []
        while True:
            if has_attr:
                self.item()
            tags.append(self.item() if has_tag else None)
            values.append(self.item())
            flags = self.int()
            if flags & 0xFF != _LISTSXP:
                self.pos -= 4
                self.item()  # the terminating NILVALUE
                break
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        names = [t.name if isinstance(t, RSymbol) else "" for t in tags]
        return RValue(values, {"names": RValue(names)})

    def string(self, levels: int) -> str | None:
        n = self.int()
        if n == -1:
            return None  # NA_character_
        raw = self.take(n)
        return raw.decode("latin-1" if levels & _LATIN1_MASK else "utf-8")

    def vector(self, kind: int) -> RValue:
        if kind not in (_INTSXP, _LGLSXP, _REALSXP, _STRSXP, _VECSXP):
            raise CorruptFileError(
                f"{self.where} holds an R object of type {kind}, which this reader does not handle."
            )
        n = self.length()
        if kind in (_INTSXP, _LGLSXP):
            ints = struct.unpack(f">{n}i", self.take(4 * n))
            return RValue([None if v == _NA_INTEGER else v for v in ints])
        if kind == _REALSXP:
            return RValue(list(struct.unpack(f">{n}d", self.take(8 * n))))
        return RValue([self.item() for _ in range(n)])  # STRSXP or VECSXP

    @staticmethod
    def attributes_of(pairs: object) -> dict[str, object]:
        return pairs.named() if isinstance(pairs, RValue) else {}


def unserialize(data: bytes, where: str = "R data") -> object:
    """Decode one R object serialized in XDR format (as written by ``serialize`` / ``saveRDS``)."""
    reader = _Reader(data, where)
    reader.header()
    return reader.item()


def read_lazyload_db(rdx: bytes, rdb: bytes, where: str = "R lazy-load database") -> dict[str, object]:
    """Every object of an R lazy-load database (``Rdata.rdx`` + ``Rdata.rdb``), by name."""
    index = unserialize(gzip.decompress(rdx) if rdx[:2] == b"\x1f\x8b" else rdx, f"{where} index")
    if not isinstance(index, RValue):
        raise CorruptFileError(f"The index of {where} is not an R list.")
    entries = index.named()
    compressed = entries.get("compressed")
    method = compressed.values[0] if isinstance(compressed, RValue) and compressed.values else 1
    variables = entries.get("variables")
    if not isinstance(variables, RValue):
        raise CorruptFileError(f"The index of {where} has no 'variables' entry.")
    objects = {}
    for name, span in variables.named().items():
        offset, length = (int(v) for v in span.values)  # type: ignore[union-attr]
        blob = rdb[offset : offset + length]
        objects[name] = unserialize(_decompress_blob(blob, method, f"{where}: {name}"), f"{where}: {name}")
    return objects


def _decompress_blob(blob: bytes, method: object, where: str) -> bytes:
    """One object of an .rdb file: 4-byte uncompressed length, then (for methods 2 and 3) a type byte."""
    size = struct.unpack(">I", blob[:4])[0]
    body = blob[4:]
    try:
        if method in (2, 3):
            kind, body = body[:1], body[1:]
            out = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress, b"0": bytes}[kind](
                body
            )
        else:
            out = zlib.decompress(body)
    except (KeyError, zlib.error, OSError, lzma.LZMAError, ValueError) as err:
        raise CorruptFileError(f"{where} could not be decompressed ({err}).") from err
    if len(out) != size:
        raise CorruptFileError(f"{where} decompressed to {len(out):,} bytes instead of {size:,}.")
    return out
