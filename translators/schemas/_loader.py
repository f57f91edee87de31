"""Load the YAML schema files once (CSafeLoader via importlib.resources) and cache them."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, cast

import yaml

from translators.schemas.model import (
    ComponentRef,
    CompositeDef,
    ElementDef,
    ElementRef,
    HierarchyDef,
    LoopDef,
    Requirement,
    SegmentDef,
    SegmentUse,
    SyntaxKind,
    SyntaxNote,
    TransactionSchema,
)

_DATA = "data"
_VERSION_RE = re.compile(r"^\d{6}$")
_SET_FILE_RE = re.compile(r"^(\d{3})\.yaml$")
_NOTE_RE = re.compile(r"^([PRECL])((?:\d\d)+)$")
_USE_RE = re.compile(r"^([A-Z][A-Z0-9]{1,2})\s+([MOX])\s+(>1|\d+)$")


class SchemaDataError(ValueError):
    """A schema data file is malformed (a packaging bug, never a partner's fault)."""


def _data_root() -> Any:
    return resources.files("translators.schemas").joinpath(_DATA)


@cache
def _read_yaml(version: str, name: str) -> dict[str, Any] | None:
    """One data file parsed, or None when it does not exist."""
    path = _data_root().joinpath(version).joinpath(name)
    if not path.is_file():
        return None
    doc = yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
    if not isinstance(doc, dict):
        raise SchemaDataError(f"{version}/{name}: expected a mapping")
    return cast(dict[str, Any], doc)


@cache
def known_versions() -> tuple[str, ...]:
    """Every schema version that has a data folder, oldest first."""
    return tuple(sorted(p.name for p in _data_root().iterdir()
                        if p.is_dir() and _VERSION_RE.match(p.name)))


@cache
def known_sets() -> dict[str, tuple[str, ...]]:
    """Set id -> the versions that define it, oldest first."""
    found: dict[str, list[str]] = {}
    for version in known_versions():
        for p in _data_root().joinpath(version).iterdir():
            m = _SET_FILE_RE.match(p.name)
            if m:
                found.setdefault(m.group(1), []).append(version)
    return {k: tuple(sorted(v)) for k, v in found.items()}


def resolve_version(set_id: str, version: str) -> tuple[str, bool] | None:
    """The schema version to use for ``version`` (GS08/ST03) and whether it is exact.

    Only the first six characters count ("004010VICS" -> "004010"). Without an exact match the
    newest known version not above the requested one is used, else the oldest known one.
    None when no version of the set is known.
    """
    versions = known_sets().get(set_id)
    if not versions:
        return None
    wanted = version[:6]
    if wanted in versions:
        return wanted, True
    lower = [v for v in versions if v <= wanted] if _VERSION_RE.match(wanted) else []
    return (lower[-1] if lower else versions[0]), False


# --- dictionaries -------------------------------------------------------------------------

def _layered(version: str, name: str, section: str) -> dict[str, Any]:
    """Merge ``section`` of a dictionary file over the file of its ``base`` version."""
    doc = _read_yaml(version, name)
    if doc is None:
        raise SchemaDataError(f"{version}/{name} is missing")
    merged: dict[str, Any] = {}
    base = doc.get("base")
    if base:
        merged.update(_layered(str(base), name, section))
    merged.update({str(k): v for k, v in (doc.get(section) or {}).items()})
    for key in doc.get("remove", {}).get(section, []) if isinstance(doc.get("remove"), dict) else []:
        merged.pop(str(key), None)
    return merged


@cache
def element_dictionary(version: str) -> dict[str, ElementDef]:
    """Data element number -> definition for one version."""
    out: dict[str, ElementDef] = {}
    for key, raw in _layered(version, "elements.yaml", "elements").items():
        if not isinstance(raw, dict):
            raise SchemaDataError(f"{version} element {key}: expected a mapping")
        codes = frozenset(str(c) for c in raw.get("codes") or ()) or None
        is_open = bool(raw.get("open"))
        out[key] = ElementDef(
            id=key, name=str(raw.get("name", "")), type=str(raw["type"]),
            min=int(raw["min"]), max=int(raw["max"]),
            codes=None if is_open else codes, known_codes=codes if is_open else None)
    return out


def _notes(raw: Any, where: str) -> tuple[SyntaxNote, ...]:
    notes = []
    for text in raw or ():
        m = _NOTE_RE.match(str(text))
        if not m:
            raise SchemaDataError(f"{where}: bad syntax note {text!r}")
        digits = m.group(2)
        positions = tuple(int(digits[i:i + 2]) for i in range(0, len(digits), 2))
        notes.append(SyntaxNote(cast(SyntaxKind, m.group(1)), positions))
    return tuple(notes)


def _req(value: Any, where: str) -> Requirement:
    text = str(value)
    if text not in ("M", "O", "X"):
        raise SchemaDataError(f"{where}: requirement must be M, O or X, not {text!r}")
    return cast(Requirement, text)


@cache
def _composites(version: str) -> dict[str, CompositeDef]:
    elements = element_dictionary(version)
    out: dict[str, CompositeDef] = {}
    for cid, raw in _layered(version, "segments.yaml", "composites").items():
        comps = []
        for i, entry in enumerate(raw.get("components", ()), start=1):
            ref = str(entry[0])
            if ref not in elements:
                raise SchemaDataError(f"{version} composite {cid}: unknown element {ref}")
            comps.append(ComponentRef(i, elements[ref], _req(entry[1], cid)))
        out[cid] = CompositeDef(cid, str(raw.get("name", "")), tuple(comps),
                                _notes(raw.get("syntax"), cid))
    return out


@cache
def segment_dictionary(version: str) -> dict[str, SegmentDef]:
    """Segment tag -> definition for one version (envelope and body segments)."""
    elements = element_dictionary(version)
    composites = _composites(version)
    out: dict[str, SegmentDef] = {}
    for tag, raw in _layered(version, "segments.yaml", "segments").items():
        raw = raw or {}
        refs: tuple[ElementRef, ...] | None = None
        if raw.get("elements") is not None:
            items = []
            for i, entry in enumerate(raw["elements"], start=1):
                ref, req = str(entry[0]), _req(entry[1], f"{tag}{i:02d}")
                repeat = int(entry[2]) if len(entry) > 2 else 1
                if ref in composites:
                    items.append(ElementRef(i, req, composite=composites[ref], repeat=repeat))
                elif ref in elements:
                    items.append(ElementRef(i, req, element=elements[ref], repeat=repeat))
                else:
                    raise SchemaDataError(f"{version} {tag}{i:02d}: unknown element {ref}")
            refs = tuple(items)
        out[tag] = SegmentDef(tag, str(raw.get("name", "")), refs,
                              _notes(raw.get("syntax"), tag))
    return out


# --- transaction sets ---------------------------------------------------------------------

def _set_doc(set_id: str, version: str) -> dict[str, Any]:
    """The set's document with ``base`` resolved and its ``changes`` applied."""
    doc = _read_yaml(version, f"{set_id}.yaml")
    if doc is None:
        raise SchemaDataError(f"{version}/{set_id}.yaml is missing")
    base = doc.get("base")
    if not base:
        return doc
    merged = dict(_set_doc(set_id, str(base)))
    merged["structure"] = _copy(merged["structure"])
    for key, value in doc.items():
        if key not in ("base", "changes"):
            merged[key] = value
    for change in doc.get("changes") or ():
        _apply_change(merged["structure"], change, f"{version}/{set_id}.yaml")
    return merged


def _copy(items: list[Any]) -> list[Any]:
    return [dict(it, body=_copy(it["body"])) if isinstance(it, dict) else it for it in items]


def _item_name(item: Any) -> tuple[str, str]:
    if isinstance(item, dict):
        return "loop", str(item["loop"])
    return "segment", str(item).split()[0]


def _locate(structure: list[Any], path: str, where: str) -> tuple[list[Any], int]:
    """The list holding the item at ``path`` ("PO1/PID": loop PO1, then its PID) and its index.

    The last part names a segment of that loop, or a loop when no segment has that tag."""
    parts = path.split("/")
    items = structure
    for depth, part in enumerate(parts):
        segs = [i for i, it in enumerate(items) if _item_name(it) == ("segment", part)]
        loops = [i for i, it in enumerate(items) if _item_name(it) == ("loop", part)]
        if depth == len(parts) - 1:
            found = segs or loops
            if not found:
                raise SchemaDataError(f"{where}: no {part!r} in path {path!r}")
            return items, found[0]
        if not loops:
            raise SchemaDataError(f"{where}: no loop {part!r} in path {path!r}")
        items = items[loops[0]]["body"]
    raise SchemaDataError(f"{where}: empty path")


def _apply_change(structure: list[Any], change: dict[str, Any], where: str) -> None:
    if "remove" in change:
        items, i = _locate(structure, str(change["remove"]), where)
        del items[i]
    elif "insert_after" in change or "insert_before" in change:
        after = "insert_after" in change
        items, i = _locate(structure, str(change["insert_after" if after else "insert_before"]),
                           where)
        new = change["item"]
        items.insert(i + 1 if after else i, new)
    elif "set" in change:
        items, i = _locate(structure, str(change["set"]), where)
        it = items[i]
        if isinstance(it, dict):
            items[i] = dict(it, **{k: change[k] for k in ("req", "max") if k in change})
        else:
            tag, req, mx = str(it).split()
            items[i] = f"{tag} {change.get('req', req)} {change.get('max', mx)}"
    else:
        raise SchemaDataError(f"{where}: unknown change {change!r}")


def _max(value: Any) -> int | None:
    text = str(value)
    return None if text == ">1" else int(text)


def _build(items: list[Any], dictionary: dict[str, SegmentDef], used: dict[str, SegmentDef],
           where: str) -> tuple[SegmentUse | LoopDef, ...]:
    out: list[SegmentUse | LoopDef] = []
    for it in items:
        if isinstance(it, dict):
            body = _build(list(it["body"]), dictionary, used, f"{where}/{it['loop']}")
            loop = LoopDef(str(it["loop"]), _req(it.get("req", "O"), where),
                           _max(it.get("max", ">1")), body)
            if not body or not isinstance(body[0], SegmentUse):
                raise SchemaDataError(f"{where}: loop {loop.id} must start with a segment")
            out.append(loop)
            continue
        m = _USE_RE.match(str(it).strip())
        if not m:
            raise SchemaDataError(f"{where}: bad segment entry {it!r}")
        tag = m.group(1)
        seg = dictionary.get(tag)
        if seg is None:
            raise SchemaDataError(f"{where}: segment {tag} is not in the dictionary")
        used[tag] = seg
        out.append(SegmentUse(seg, _req(m.group(2), where), _max(m.group(3))))
    return tuple(out)


@cache
def _load_schema(set_id: str, version: str) -> TransactionSchema:
    doc = _set_doc(set_id, version)
    dictionary = segment_dictionary(version)
    used: dict[str, SegmentDef] = {}
    where = f"{version}/{set_id}"
    body = _build(list(doc["structure"]), dictionary, used, where)
    hierarchy = None
    if doc.get("hierarchy"):
        h = doc["hierarchy"]
        hierarchy = HierarchyDef(str(h["loop"]),
                                 tuple((str(k), str(v)) for k, v in h["levels"].items()))
    return TransactionSchema(
        set_id=set_id, version=version, name=str(doc.get("name", "")),
        functional_id=str(doc.get("functional_group", "")),
        root=LoopDef("", "M", 1, body), segments=used, dictionary=dictionary,
        hierarchy=hierarchy)


def get_schema(set_id: str, version: str) -> TransactionSchema | None:
    """The schema for ``set_id`` under ``version`` (GS08/ST03), falling back to the closest
    known version (see :func:`resolve_version`); None when the set is unknown."""
    resolved = resolve_version(set_id, version)
    if resolved is None:
        return None
    return _load_schema(set_id, resolved[0])
