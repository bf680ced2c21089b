"""A record: a dataclass written as one JSON file and read back strictly, the base of every file's record
(:mod:`tsmlip.records`).

A field made with :func:`part` holds a nested record whose keys are written in its place (left out when it is
None); a field made with :func:`optional` is left out of the file when it is None. Every other field is
written, None as null. A field whose type is a record (or a ``dict[str, <record>]``) is written as a nested
object and read back as that record.

Reading is strict: a file that lacks a field that is not optional, or holds a key that is not a field, is a
:class:`RecordError` naming the file and the keys. The provenance record of a file (the top-level key
``_provenance``, :data:`tsmlip.provenance.JSON_KEY`) is no field: :meth:`Record.read` keeps it in the record's
:attr:`Record.provenance` and :meth:`Record.to_json` writes it back, so ``Rec.read(p).to_json() == json.load(p)``
for every file the steps write.
"""
from __future__ import annotations

import json
import types
import typing
from dataclasses import field, fields
from pathlib import Path

__all__ = ["PROVENANCE_KEY", "Record", "RecordError", "optional", "part"]

#: the top-level key of a file's provenance record (the same as tsmlip.provenance.JSON_KEY, which imports numpy)
PROVENANCE_KEY = "_provenance"


class RecordError(ValueError):
    """A JSON file that is not its record (not JSON, a missing field, an unknown key): one line naming the file."""


def part(cls, optional: bool = False):
    """A field holding a ``cls`` record whose keys are written in its place; an ``optional`` part is None by
    default, and then left out."""
    return field(default=None, metadata={"part": cls}) if optional else field(metadata={"part": cls})


def optional():
    """A field left out of the file when it is None."""
    return field(default=None, metadata={"optional": True})


class _Missing(RecordError):
    """Fields missing from a file (a :class:`RecordError`; parts add theirs to their owner's)."""

    def __init__(self, names: list[str], where: str, cls):
        self.names = names
        super().__init__(f"{where}: missing field(s) {', '.join(names)} (of {cls.__name__})")


def _plain(value):
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _record_type(tp):
    """The record class a field's type names (``Rec`` or ``Rec | None``), or None."""
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [_record_type(t) for t in typing.get_args(tp)]
        return next((t for t in found if t is not None), None)
    return None


def _decode(tp, value, where: str):
    """``value`` of a field of type ``tp`` read back: nested records (also as dict values) become records."""
    if value is None:
        return None
    rec = _record_type(tp)
    if rec is not None:
        return rec.from_json(value, where)
    if typing.get_origin(tp) is dict and isinstance(value, dict):
        args = typing.get_args(tp)
        rec = _record_type(args[1]) if len(args) == 2 else None
        if rec is not None:
            return {k: rec.from_json(v, f"{where}.{k}") for k, v in value.items()}
    return value


class Record:
    """Base of the records: the file's JSON object and the keys it can have."""

    #: the file's provenance record (its ``_provenance`` key), None when it has none; kept by read and to_json
    provenance: typing.ClassVar[dict | None] = None

    def to_json(self) -> dict:
        """The file's JSON object: ``dataclasses.asdict`` with parts spliced in, empty optional fields left out
        and the provenance record (if any) under ``_provenance``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if "part" in f.metadata:
                if value is not None:
                    out.update(value.to_json())
            elif value is not None or not f.metadata.get("optional"):
                out[f.name] = _plain(value)
        if self.provenance is not None:
            out[PROVENANCE_KEY] = self.provenance
        return out

    def with_provenance(self, rec: dict | None):
        """This record with the provenance record ``rec`` (written under ``_provenance``); returns self."""
        self.provenance = rec
        return self

    def write(self, path: str | Path, indent: int = 1) -> dict:
        """Write the record to ``path`` atomically (NaN and infinities as null); returns the written object."""
        from .io_utils import atomic_write_json

        obj = self.to_json()
        if isinstance(obj.get(PROVENANCE_KEY), dict):  # the record holds the content it describes: a hand edit shows
            from .provenance import json_content

            obj[PROVENANCE_KEY] = {**obj[PROVENANCE_KEY],
                                   "output_content": json_content({k: v for k, v in obj.items() if k != PROVENANCE_KEY})}
        atomic_write_json(path, obj, indent=indent)
        return obj

    @classmethod
    def read(cls, path: str | Path):
        """The record of the JSON file ``path``; :class:`RecordError` naming the file when it cannot be read, is
        not a JSON object, lacks a field that is not optional or holds a key that is not a field."""
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise RecordError(f"{path}: no such file (a {cls.__name__} record)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RecordError(f"{path}: not a readable JSON file ({err})") from None
        return cls.from_json(obj, str(path))

    @classmethod
    def from_json(cls, obj, where: str = "the object"):
        """The record of the JSON object ``obj`` (strict, as :meth:`read`); ``where`` names it in errors."""
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: a {cls.__name__} record is a JSON object, not {type(obj).__name__}")
        obj = dict(obj)
        prov = obj.pop(PROVENANCE_KEY, None)
        rec = cls._from_keys(obj, where)
        if obj:
            raise RecordError(f"{where}: unknown field(s) {', '.join(obj)} (not in {cls.__name__}: "
                              f"{', '.join(cls.keys())})")
        return rec.with_provenance(prov)

    @classmethod
    def _from_keys(cls, obj: dict, where: str):
        """The record from the keys of ``obj`` it owns (popped from ``obj``, so that the rest are unknown)."""
        hints = typing.get_type_hints(cls)
        kwargs, missing = {}, []
        for f in fields(cls):
            if "part" in f.metadata:
                part_cls = f.metadata["part"]
                present = [k for k in part_cls.keys() if k in obj]
                if not present and f.default is None:  # an optional part left out
                    kwargs[f.name] = None
                    continue
                try:
                    kwargs[f.name] = part_cls._from_keys(obj, where)
                except _Missing as m:
                    missing += m.names
                continue
            if f.name in obj:
                kwargs[f.name] = _decode(hints[f.name], obj.pop(f.name), f"{where}: {f.name}")
            elif not f.metadata.get("optional"):
                missing.append(f.name)
        if missing:
            raise _Missing(missing, where, cls)
        return cls(**kwargs)

    def value(self, key: str):
        """The value of the file's key ``key`` (a part's key from the part; None when its optional part or
        optional field is left out); a key the file cannot have is a ``ValueError``."""
        for f in fields(self):
            if "part" in f.metadata:
                if key in f.metadata["part"].keys():
                    part_value = getattr(self, f.name)
                    return None if part_value is None else part_value.value(key)
            elif f.name == key:
                return getattr(self, key)
        raise ValueError(f"{type(self).__name__} has no field {key}")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every key the file can have, in the file's order (a part's keys in its place)."""
        out: list[str] = []
        for f in fields(cls):
            out += f.metadata["part"].keys() if "part" in f.metadata else [f.name]
        return tuple(out)

    @classmethod
    def select(cls, *names: str) -> tuple[str, ...]:
        """``names``, after checking that each is a key of the file (a reader's columns)."""
        unknown = [n for n in names if n not in cls.keys()]
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
        return names
