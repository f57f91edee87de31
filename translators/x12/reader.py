"""Streaming X12 reader: bytes in; interchanges, groups and transaction sets out.

Memory is bounded by one transaction set (plus one read chunk): segments are yielded as
complete sets at their SE, envelopes as start/end events, so a 1 GB interchange of many
sets streams through. Envelope problems (missing trailers, wrong counts, mismatched or
duplicate control numbers) come back as coded :class:`X12Issue` objects, never exceptions.
"""

from __future__ import annotations

import codecs
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, islice, repeat
from operator import itemgetter
from typing import BinaryIO, NamedTuple

from translators.errors import (
    GroupError,
    Level,
    SetError,
    Severity,
    TA1Note,
    X12Issue,
)
from translators.x12.isa import IsaParseError, check_isa_fields, isa_issue, parse_isa
from translators.x12.model import (
    Event,
    GroupEnd,
    GroupHeader,
    GroupStart,
    InputProblem,
    InterchangeEnd,
    InterchangeHeader,
    InterchangeStart,
    OffsetRun,
    Row,
    Segment,
    TransactionSet,
    segment_offset,
)

_BOM = codecs.BOM_UTF8
_WS = b" \t\r\n"
_WS_TEXT = " \t\r\n"
_ISA_LOOKAHEAD = 512


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    """Explicit bounds that keep a hostile or broken input from exhausting memory."""

    chunk_size: int = 1 << 20
    max_segment_bytes: int = 1 << 20  # a longer "segment" means a missing terminator
    max_transaction_segments: int = 500_000
    max_transaction_bytes: int = 64 << 20


Source = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


class _Buffer:
    """A sliding window over the input that keeps absolute byte offsets."""

    __slots__ = ("_chunks", "base", "buf", "chunk_size", "eof", "pos")

    def __init__(self, source: Source, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.base = 0
        self.pos = 0
        if isinstance(source, bytes | bytearray | memoryview):
            self.buf = bytes(source)
            self.eof = True
            self._chunks: Iterator[bytes] = iter(())
        else:
            self.buf = b""
            self.eof = False
            read = getattr(source, "read", None)
            if read is not None:
                self._chunks = iter(lambda: read(chunk_size), b"")
            else:
                self._chunks = iter(source)

    def fill(self) -> bool:
        """Read one more chunk, dropping consumed bytes; False at end of input."""
        if self.eof:
            return False
        chunk = next(self._chunks, b"")
        if not chunk:
            self.eof = True
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.base += self.pos
            self.pos = 0
        if chunk:
            self.buf += chunk
            return True
        return False

    def ensure(self, n: int) -> None:
        """Make at least ``n`` unread bytes available when the input has them."""
        while len(self.buf) - self.pos < n and self.fill():
            pass


class _Batch(NamedTuple):
    """Segment texts cut from the buffer in one split, and the bytes they were cut from."""

    texts: list[str]
    sizes: list[int] | None  # byte size of each text with its separator; None: len(text) + step
    offset: int  # absolute offset of the first text
    step: int  # terminator length plus any line break that always follows it; 0: no terminator
    region: bytes
    separator: bytes


@dataclass(slots=True)
class _GroupState:
    header: GroupHeader
    count: int = 0
    control_numbers: set[str | int] = field(default_factory=set)  # keys from _cn_key
    issues: list[X12Issue] = field(default_factory=list)


@dataclass(slots=True)
class _SetState:
    rows: list[Row]
    texts: list[str]
    offsets: list[OffsetRun]
    offset: int
    set_id: str
    control_number: str
    implementation_reference: str
    issues: list[X12Issue]
    overflow: bool = False
    dropped: int = 0


class X12Reader:
    """Iterate over the events of an X12 input; see :func:`iter_events`."""

    def __init__(self, source: Source, limits: ReaderLimits | None = None) -> None:
        self.limits = limits or ReaderLimits()
        self._buf = _Buffer(source, self.limits.chunk_size)
        self._interchange_index = 0
        self._seen_interchanges: set[tuple[str, str, str, str, str]] = set()

    # -- finding interchanges -----------------------------------------------------------

    def _skip_to_isa(self) -> Iterator[Event]:
        """Advance to the next 'ISA'; report anything that is not blank space on the way."""
        b = self._buf
        garbage_start: int | None = None
        garbage_sample = b""
        while True:
            b.ensure(4)
            buf, pos = b.buf, b.pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if buf.startswith(_BOM, pos):
                pos += len(_BOM)
            if pos != b.pos:
                b.pos = pos
                continue  # look again with enough bytes buffered
            if pos >= len(buf):
                if b.fill():
                    continue
                break
            if buf.startswith(b"ISA", pos):
                b.ensure(4)
                buf, pos = b.buf, b.pos
                if len(buf) - pos >= 4 and not chr(buf[pos + 3]).isalnum():
                    break
            if garbage_start is None:
                b.ensure(40)
                buf, pos = b.buf, b.pos
                garbage_start = b.base + pos
                garbage_sample = buf[pos:pos + 40]
            nxt = buf.find(b"ISA", pos + 1)
            if nxt < 0:
                b.pos = max(pos + 1, len(buf) - 3)
                if not b.fill():
                    b.pos = len(b.buf)
                    break
                continue
            b.pos = nxt
        if garbage_start is not None:
            sample = garbage_sample.decode("utf-8", "replace").splitlines()[0][:40]
            where = "before the first ISA" if self._interchange_index == 0 else "between interchanges"
            found = b.pos < len(b.buf)
            if self._interchange_index == 0 and not found:
                message = f"no ISA segment found (input starts with {sample!r})"
            else:
                message = (f"{b.base + b.pos - garbage_start} bytes that belong to no interchange "
                           f"{where} (starting {sample!r})")
            yield InputProblem(X12Issue(Level.INPUT, TA1Note.INVALID_CONTENT, message,
                                        offset=garbage_start))
        elif self._interchange_index == 0 and b.pos >= len(b.buf):
            yield InputProblem(X12Issue(Level.INPUT, TA1Note.PREMATURE_END,
                                        "no ISA segment found (the input is empty)", offset=0))

    def __iter__(self) -> Iterator[Event]:
        b = self._buf
        while True:
            yield from self._skip_to_isa()
            if b.pos >= len(b.buf):
                return
            yield from self._read_interchange()

    # -- one interchange ------------------------------------------------------------------

    def _read_interchange(self) -> Iterator[Event]:
        b = self._buf
        b.ensure(_ISA_LOOKAHEAD)
        start = b.pos
        isa_offset = b.base + start
        self._interchange_index += 1
        index = self._interchange_index
        try:
            parsed = parse_isa(b.buf, start)
        except IsaParseError as exc:
            yield InputProblem(isa_issue(exc.code, str(exc), offset=isa_offset, index=index,
                                         control=None))
            # What follows belongs to this broken interchange: skip it quietly to the next ISA.
            b.pos = start + 3
            nxt = b.buf.find(b"ISA", b.pos)
            while nxt < 0:
                b.pos = max(b.pos, len(b.buf) - 2)
                if not b.fill():
                    break
                nxt = b.buf.find(b"ISA", b.pos)
            b.pos = nxt if nxt >= 0 else len(b.buf)
            return
        fields = parsed.fields
        control = fields[12].strip()
        delimiters = parsed.delimiters
        isa_segment = Segment("ISA", fields, offset=isa_offset, component=delimiters.component,
                              repetition=delimiters.repetition)
        header = InterchangeHeader(
            index=index, offset=isa_offset, segment=isa_segment, delimiters=delimiters,
            authorization_qualifier=fields[0].strip(), authorization=fields[1].strip(),
            security_qualifier=fields[2].strip(), security=fields[3].strip(),
            sender_qualifier=fields[4].strip(), sender_id=fields[5].strip(),
            receiver_qualifier=fields[6].strip(), receiver_id=fields[7].strip(),
            date=fields[8].strip(), time=fields[9].strip(), standards_id=fields[10],
            version=fields[11].strip(), control_number=control, ack_requested=fields[13].strip(),
            usage=fields[14].strip(),
        )
        for warning in parsed.warnings:
            header.issues.append(isa_issue(TA1Note.NO_ERROR, warning, offset=isa_offset, index=index,
                                           control=control, severity=Severity.WARNING))
        for code, message, severity in check_isa_fields(fields):
            header.issues.append(isa_issue(code, message, offset=isa_offset, index=index,
                                           control=control, severity=severity))
        key = (header.sender_qualifier, header.sender_id, header.receiver_qualifier,
               header.receiver_id, control)
        if key in self._seen_interchanges:
            header.issues.append(isa_issue(
                TA1Note.DUPLICATE_CONTROL_NUMBER,
                f"duplicate interchange control number {control} from {header.sender_id} "
                f"in the same input", offset=isa_offset, index=index, control=control))
        self._seen_interchanges.add(key)
        b.pos = start + parsed.length
        yield InterchangeStart(header)
        yield from _InterchangeParser(self, header, parsed.terminator).run()


class _InterchangeParser:
    """Segments of one interchange, from after its ISA through its IEA."""

    def __init__(self, reader: X12Reader, header: InterchangeHeader, terminator: bytes) -> None:
        self.reader = reader
        self.header = header
        self.terminator = terminator
        self.limits = reader.limits
        self.group: _GroupState | None = None
        self.txn: _SetState | None = None
        self.group_count = 0
        self.group_controls: set[str] = set()
        self.ta1: list[Segment] = []
        self.issues: list[X12Issue] = []
        d = header.delimiters
        self.element = d.element
        self.component = d.component
        self.repetition = d.repetition

    # issue helpers
    def _interchange_issue(self, code: str, message: str, offset: int | None,
                           tag: str | None = None, severity: Severity = Severity.ERROR) -> X12Issue:
        return X12Issue(Level.INTERCHANGE, code, message, severity, offset=offset,
                        interchange_index=self.header.index,
                        interchange_control=self.header.control_number, segment_tag=tag)

    def _group_issue(self, group: GroupHeader, code: str, message: str, offset: int | None,
                     tag: str | None = None) -> X12Issue:
        return X12Issue(Level.GROUP, code, message, offset=offset,
                        interchange_index=self.header.index,
                        interchange_control=self.header.control_number,
                        group_control=group.control_number, segment_tag=tag)

    def _set_issue(self, txn: _SetState, code: str, message: str, offset: int | None,
                   tag: str | None = None) -> X12Issue:
        group = self.group.header.control_number if self.group else None
        return X12Issue(Level.TRANSACTION, code, message, offset=offset,
                        interchange_index=self.header.index,
                        interchange_control=self.header.control_number, group_control=group,
                        transaction_control=txn.control_number, segment_tag=tag)

    def _batches(self) -> Iterator[_Batch]:
        """Runs of raw segment texts cut from the buffer in one split (see :class:`_Batch`)."""
        b = self.reader._buf
        term = self.terminator
        max_seg = self.limits.max_segment_bytes
        window = max(self.limits.chunk_size, 4096)
        while True:
            buf, pos = b.buf, b.pos
            # Cut at most one chunk at a time: an IEA may end this interchange mid-region,
            # and the rest must then be re-read with the next ISA's delimiters.
            last = buf.rfind(term, pos, pos + window)
            if last < 0:
                last = buf.find(term, pos)
            if last < 0:
                if len(buf) - pos > max_seg:
                    self.issues.append(self._interchange_issue(
                        TA1Note.INVALID_SEGMENT_TERMINATOR,
                        f"no segment terminator within {max_seg} bytes", b.base + pos))
                    b.pos = len(buf)
                    return
                if b.fill():
                    continue
                rest = buf[pos:]
                b.pos = len(buf)
                if rest.strip(_WS):
                    yield _Batch([rest.decode("utf-8", "replace")], [len(rest)], b.base + pos, 0,
                                 rest, b"")
                return
            region = buf[pos:last]
            b.pos = last + len(term)
            base = b.base + pos
            text = region.decode("ascii") if region.isascii() and term.isascii() else None
            # Split at terminator + line break when every terminator in the region has it.
            sep, texts, raw = term, None, None
            for suffix in (b"\r\n", b"\n"):
                if buf.startswith(suffix, b.pos):
                    joined = term + suffix
                    if text is not None:
                        texts = text.split(joined.decode())
                        cuts = len(texts) - 1
                    else:
                        raw = region.split(joined)
                        cuts = len(raw) - 1
                    if region.count(term) == cuts:
                        b.pos += len(suffix)
                        sep = joined
                        break
                    texts = raw = None
            if text is not None:
                yield _Batch(texts if texts is not None else text.split(term.decode()), None,
                             base, len(sep), region, sep)
            else:
                raw = raw if raw is not None else region.split(sep)
                yield _Batch([r.decode("utf-8", "replace") for r in raw],
                             [len(r) + len(sep) for r in raw], base, len(sep), region, sep)

    def run(self) -> Iterator[Event]:
        """Yield this interchange's events; returns after IEA or at a premature end."""
        fast = self.element.isascii()
        for batch in self._batches():
            texts = batch.texts
            # The empty text and any text that starts with white space sort before "!".
            if fast and batch.step and min(texts) >= "!":
                ended = yield from self._clean_batch(batch, 0, batch.offset)
            elif fast and batch.step and len(texts) > 1 and min(islice(texts, 1, None)) >= "!":
                # Only the first text is blank-led (the line break after an ISA, typically).
                ended = yield from self._batch(batch, 1)
                if not ended:
                    first = batch.sizes[0] if batch.sizes else len(texts[0]) + batch.step
                    ended = yield from self._clean_batch(batch, 1, batch.offset + first)
            else:
                ended = yield from self._batch(batch, len(texts))
            if ended:
                return
        yield from self._close_open()
        self.issues.append(self._interchange_issue(
            TA1Note.PREMATURE_END, "input ends before the IEA trailer", None, "IEA"))
        yield self._interchange_end(None)

    def _clean_batch(self, batch: _Batch, start: int, offset: int) -> Generator[Event, None, bool]:
        """The texts of a batch from ``start`` (at byte ``offset``) on, each of them a whole
        segment: a set's body is split and taken as one run. Returns True when the
        interchange ended in it (the buffer then points after its IEA)."""
        texts, sizes, step = batch.texts, batch.sizes, batch.step
        element = self.element
        limits = self.limits
        n = len(texts)
        i = start
        at = offset  # byte offset of texts[i]
        while i < n:
            txn = self.txn
            j = i if txn is None else self._next_se(batch, i, at - batch.offset)
            if j > i:
                assert txn is not None
                # Rows are made a set at a time: a whole batch of them would outlive the young
                # generation and cost the cyclic GC more than the split itself.
                rows = list(map(str.split, texts[i:j], repeat(element)))
                if not _CONTROL_TAGS.isdisjoint(map(_TAG, rows)):  # a set without SE:
                    return (yield from self._batch(batch, n, i, at))  # the rest one by one
                span = (sum(sizes[i:j]) if sizes is not None
                        else sum(map(len, texts[i:j])) + (j - i) * step)
                last = at + span - (sizes[j - 1] if sizes is not None else len(texts[j - 1]) + step)
                if txn.overflow:
                    txn.dropped += j - i
                elif (len(txn.rows) + j - i <= limits.max_transaction_segments
                      and last <= txn.offset + limits.max_transaction_bytes):
                    txn.offsets.append((len(txn.rows), at, step, sizes, i))
                    txn.rows += rows
                    txn.texts += texts[i:j]
                else:
                    self._body_run(txn, rows, texts[i:j], at, sizes, i, step)
                at += span
                i = j
                if i == n:
                    break
            text = texts[i]
            end = at + (sizes[i] if sizes is not None else len(text) + step)
            events, ended = self._control(text.split(element), text, at, end, step)
            yield from events
            if ended:
                return True
            at = end
            i += 1
        return False

    def _next_se(self, batch: _Batch, i: int, position: int) -> int:
        """The index of the first text from ``i`` on that is an SE (len(texts) when none).

        ``position`` is where texts[i] starts in the batch's bytes; the SE is found there
        (a C scan) and then its text in the list."""
        texts = batch.texts
        se = "SE" + self.element
        if texts[i].startswith(se):
            return i
        sep = batch.separator
        found = batch.region.find(sep + se.encode(), position)
        if found < 0:
            return len(texts)
        found += len(sep)
        end = batch.region.find(sep, found)
        text = batch.region[found:end if end >= 0 else len(batch.region)]
        try:
            return texts.index(text.decode("utf-8", "replace"), i)
        except ValueError:  # decoded differently: the caller finds the SE among the rows
            return len(texts)

    def _batch(
        self, batch: _Batch, stop: int, start: int = 0, offset: int | None = None
    ) -> Generator[Event, None, bool]:
        """The texts of a batch from ``start`` (at byte ``offset``) before ``stop``, one segment at
        a time (for empty or blank-led texts, a last segment without terminator, or sets without
        SE). Returns True when the interchange ended."""
        sizes, step = batch.sizes, batch.step
        offset = batch.offset if offset is None else offset
        texts = batch.texts[start:stop]
        sizes = sizes[start:stop] if sizes is not None else None
        element = self.element
        ws = _WS_TEXT
        term_is_space = self.terminator in (b"\n", b"\r")
        offsets = list(accumulate(map(step.__add__, map(len, texts)) if sizes is None
                                  else sizes, initial=offset))
        for text, seg_offset, end in zip(texts, offsets, islice(offsets, 1, None), strict=False):
            if not text or text[0] in ws:
                stripped = text.lstrip(ws)
                if not stripped:
                    if not text and not term_is_space:
                        self._on_empty(seg_offset)
                    continue
                seg_offset += len(text.encode("utf-8")) - len(stripped.encode("utf-8"))
                text = stripped
            row = text.split(element)
            txn = self.txn
            if txn is not None and row[0] not in _CONTROL_TAGS:
                self._body_run(txn, [row], [text], seg_offset, None, 0, 0)
                continue
            events, ended = self._control(row, text, seg_offset, end, step)
            yield from events
            if ended:
                return True
        return False

    def _body_run(self, txn: _SetState, rows: list[Row], texts: list[str], offset: int,
                  sizes: list[int] | None, at: int, step: int) -> None:
        """Add body segments one by one, stopping at the set's limits (then count the rest)."""
        max_segments = self.limits.max_transaction_segments
        limit = txn.offset + self.limits.max_transaction_bytes
        for k, (row, text) in enumerate(zip(rows, texts, strict=True)):
            if txn.overflow:
                txn.dropped += 1
            elif len(txn.rows) >= max_segments or offset > limit:
                self._overflow(txn, row[0], offset)
            else:
                txn.offsets.append((len(txn.rows), offset, 0, None, 0))
                txn.rows.append(row)
                txn.texts.append(text)
            offset += sizes[at + k] if sizes is not None else len(text) + step

    def _control(self, row: Row, text: str, offset: int, end: int,
                 step: int) -> tuple[list[Event], bool]:
        """An envelope segment, or any segment outside a set: the events it completes, and
        True when it ended the interchange. (A list, not a generator: two of these a set.)"""
        tag = row[0]
        seg = Segment(tag, row[1:], offset, 0, self.component, self.repetition, text)
        if step == 0:
            self.issues.append(self._interchange_issue(
                TA1Note.NO_ERROR, f"last segment {tag!r} has no terminator", offset, tag,
                Severity.WARNING))
        if tag == "IEA":
            events = self._close_open()
            events.append(self._close_interchange(seg))
            b = self.reader._buf
            b.pos = end - b.base  # the rest of this batch belongs to what follows
            return events, True
        if tag == "ISA":
            # A new interchange starts before this one ended: re-read that ISA afresh.
            events = self._close_open()
            self.issues.append(self._interchange_issue(
                TA1Note.PREMATURE_END, "interchange has no IEA trailer before the next ISA",
                offset, "ISA"))
            b = self.reader._buf
            b.pos = offset - b.base
            events.append(self._interchange_end(None))
            return events, True
        return self._on_control(seg), False

    def _on_control(self, seg: Segment) -> list[Event]:
        """Envelope segments, and anything found outside a transaction set."""
        events: list[Event] = []
        tag = seg.tag
        offset = seg.offset
        txn = self.txn
        if tag == "SE":
            if txn is None:
                self.issues.append(self._interchange_issue(
                    TA1Note.INVALID_CONTROL_STRUCTURE, "SE without a matching ST", offset, tag))
                return events
            seg.position = len(txn.rows) + txn.dropped + 1
            if not txn.overflow:
                txn.offsets.append((len(txn.rows), offset, 0, None, 0))
                txn.rows.append([tag, *seg.elements])
                txn.texts.append(seg.raw or "")
            events.append(self._close_set(seg))
        elif tag == "ST":
            if txn is not None:
                events.append(self._close_set(None))
            self._open_set(seg)
        elif tag == "GS":
            if txn is not None:
                events.append(self._close_set(None))
            if self.group is not None:
                events.append(self._close_group(None))
            events.append(self._open_group(seg))
        elif tag == "GE":
            if txn is not None:
                events.append(self._close_set(None))
            if self.group is None:
                self.issues.append(self._interchange_issue(
                    TA1Note.INVALID_CONTROL_STRUCTURE, "GE without a matching GS", offset, tag))
                return events
            events.append(self._close_group(seg))
        elif tag == "TA1" and self.group is None:
            self.ta1.append(seg)
        elif tag in ("ISB", "ISE") and self.group is None and self.group_count == 0:
            return events  # interchange service segments: legal between ISA and the first GS
        else:
            where = "outside any transaction set" if self.group else "outside any group"
            self.issues.append(self._interchange_issue(
                TA1Note.INVALID_CONTENT, f"segment {tag!r} {where}", offset, tag))
        return events

    # -- transaction sets ---------------------------------------------------------------

    def _open_set(self, seg: Segment) -> None:
        if self.group is None:
            self.issues.append(self._interchange_issue(
                TA1Note.INVALID_CONTROL_STRUCTURE, "ST outside a functional group", seg.offset, "ST"))
        seg.position = 1
        set_id, control_number, reference = [*seg.elements, "", "", ""][:3]  # ST01..ST03
        txn = _SetState([[seg.tag, *seg.elements]], [seg.raw or ""], [(0, seg.offset, 0, None, 0)],
                        seg.offset, set_id, control_number, reference, [])
        self.txn = txn
        if not (len(txn.set_id) == 3 and txn.set_id.isalnum()):
            txn.issues.append(self._set_issue(txn, SetError.MISSING_OR_INVALID_SET_ID,
                                              f"ST01 {txn.set_id!r} is not a transaction set id",
                                              seg.offset, "ST"))
        cn = txn.control_number
        if not (4 <= len(cn) <= 9) or cn != cn.strip():
            txn.issues.append(self._set_issue(txn, SetError.MISSING_OR_INVALID_CONTROL_NUMBER,
                                              f"ST02 {cn!r} is not a 4-9 character control number",
                                              seg.offset, "ST"))
        if self.group is not None:
            key = _cn_key(cn)
            if key in self.group.control_numbers:
                txn.issues.append(self._set_issue(
                    txn, SetError.CONTROL_NUMBER_NOT_UNIQUE,
                    f"ST02 {cn} is used twice in group {self.group.header.control_number}",
                    seg.offset, "ST"))
            self.group.control_numbers.add(key)

    def _overflow(self, txn: _SetState, tag: str, offset: int) -> None:
        txn.overflow = True
        txn.dropped += 1
        txn.issues.append(self._set_issue(
            txn, SetError.SEGMENTS_IN_ERROR,
            f"transaction set exceeds the limit of {self.limits.max_transaction_segments} "
            f"segments or {self.limits.max_transaction_bytes} bytes; the rest is not read",
            offset, tag))

    def _close_set(self, se: Segment | None) -> TransactionSet:
        txn = self.txn
        assert txn is not None
        self.txn = None
        if se is None:
            txn.issues.append(self._set_issue(txn, SetError.TRAILER_MISSING,
                                              f"transaction set {txn.control_number} has no SE",
                                              txn.offset, "SE"))
        else:
            counted = se.position
            declared, control_number = [*se.elements, "", ""][:2]  # SE01, SE02
            if counted is not None and declared != str(counted):
                txn.issues.append(self._set_issue(
                    txn, SetError.SEGMENT_COUNT_MISMATCH,
                    f"SE01 says {declared or 'nothing'} but the set has {counted} segments",
                    se.offset, "SE"))
            if control_number != txn.control_number:
                txn.issues.append(self._set_issue(
                    txn, SetError.CONTROL_NUMBER_MISMATCH,
                    f"SE02 {control_number!r} does not match ST02 {txn.control_number!r}",
                    se.offset, "SE"))
        group = self.group.header if self.group else _orphan_group(self.header, txn.offset)
        if self.group is not None:
            self.group.count += 1
        if se is not None:
            last_offset, text = se.offset, se.raw or ""
        else:
            last = len(txn.rows) - 1
            last_offset, text = segment_offset(txn.offsets, txn.texts, last), txn.texts[last]
        size = (last_offset + (len(text) if text.isascii() else len(text.encode()))
                + len(self.terminator) - txn.offset)
        return TransactionSet.read(group, txn.offset, txn.rows, txn.texts, txn.offsets,
                                   txn.set_id, txn.control_number, txn.implementation_reference,
                                   txn.issues, size)

    # -- groups and the interchange -------------------------------------------------------

    def _open_group(self, gs: Segment) -> GroupStart:
        header = GroupHeader(self.header, gs.offset, gs, gs.get(1), gs.get(2), gs.get(3),
                             gs.get(4), gs.get(5), gs.get(6), gs.get(7), gs.get(8))
        state = _GroupState(header)
        self.group = state
        self.group_count += 1
        cn = header.control_number
        if not (cn.isdigit() and len(cn) <= 9):
            state.issues.append(self._group_issue(
                header, GroupError.CONTROL_NUMBER_SYNTAX,
                f"GS06 group control number {cn!r} is not a number of at most 9 digits",
                gs.offset, "GS"))
        elif cn in self.group_controls:
            state.issues.append(self._group_issue(
                header, GroupError.DUPLICATE_CONTROL_NUMBER,
                f"GS06 {cn} is not unique within interchange {self.header.control_number}",
                gs.offset, "GS"))
        self.group_controls.add(cn)
        for problem in _check_gs(header):
            self.issues.append(self._interchange_issue(TA1Note.INVALID_CONTENT, problem,
                                                       gs.offset, "GS"))
        return GroupStart(header)

    def _close_group(self, ge: Segment | None) -> GroupEnd:
        state = self.group
        assert state is not None
        self.group = None
        header = state.header
        issues = state.issues
        if ge is None:
            issues.append(self._group_issue(header, GroupError.TRAILER_MISSING,
                                            f"group {header.control_number} has no GE",
                                            header.offset, "GE"))
        else:
            if ge.get(1) != str(state.count):
                issues.append(self._group_issue(
                    header, GroupError.SET_COUNT_MISMATCH,
                    f"GE01 says {ge.get(1) or 'nothing'} but the group has {state.count} sets",
                    ge.offset, "GE"))
            if ge.get(2) != header.control_number:
                issues.append(self._group_issue(
                    header, GroupError.CONTROL_NUMBER_MISMATCH,
                    f"GE02 {ge.get(2)!r} does not match GS06 {header.control_number!r}",
                    ge.offset, "GE"))
        return GroupEnd(header, ge, state.count, issues)

    def _close_open(self) -> list[Event]:
        events: list[Event] = []
        if self.txn is not None:
            events.append(self._close_set(None))
        if self.group is not None:
            events.append(self._close_group(None))
        return events

    def _close_interchange(self, iea: Segment) -> InterchangeEnd:
        if iea.get(1) != str(self.group_count):
            self.issues.append(self._interchange_issue(
                TA1Note.INVALID_GROUP_COUNT,
                f"IEA01 says {iea.get(1) or 'nothing'} but the interchange has "
                f"{self.group_count} groups", iea.offset, "IEA"))
        if iea.get(2) != self.header.control_number:
            self.issues.append(self._interchange_issue(
                TA1Note.CONTROL_NUMBER_MISMATCH,
                f"IEA02 {iea.get(2)!r} does not match ISA13 {self.header.control_number!r}",
                iea.offset, "IEA"))
        return self._interchange_end(iea)

    def _interchange_end(self, iea: Segment | None) -> InterchangeEnd:
        return InterchangeEnd(self.header, iea, self.group_count, self.ta1, self.issues)

    def _on_empty(self, offset: int) -> None:
        issue_args = (f"empty segment (two terminators in a row) at byte {offset}", offset)
        if self.txn is not None:
            self.txn.issues.append(self._set_issue(self.txn, SetError.SEGMENTS_IN_ERROR,
                                                   *issue_args))
        else:
            self.issues.append(self._interchange_issue(TA1Note.INVALID_CONTENT, *issue_args))


_CONTROL_TAGS = frozenset({"SE", "ST", "GS", "GE", "IEA", "ISA"})


_TAG = itemgetter(0)


def _cn_key(cn: str) -> str | int:
    """A control number as a compact set key: a group of a million sets keeps a million.

    ASCII digits become an int with a leading 1 (so "0001" and "1" stay apart); anything else
    stays the string. Ints never equal strings, so two keys are equal exactly when the numbers are."""
    return int("1" + cn) if cn.isascii() and cn.isdigit() else cn


def _check_gs(header: GroupHeader) -> list[str]:
    problems = []
    if not header.functional_id:
        problems.append("GS01 functional identifier is missing")
    if not header.sender or not header.receiver:
        problems.append("GS02/GS03 application sender or receiver code is missing")
    date = header.date
    if not (date.isdigit() and len(date) in (6, 8)):
        problems.append(f"GS04 date {date!r} is not a date")
    time = header.time
    if not (time.isdigit() and 4 <= len(time) <= 8):
        problems.append(f"GS05 time {time!r} is not a time")
    if not header.version:
        problems.append("GS08 version is missing")
    return problems


def _orphan_group(interchange: InterchangeHeader, offset: int) -> GroupHeader:
    """A stand-in header for an ST found outside any GS (already reported)."""
    seg = Segment("GS", [], offset=offset)
    return GroupHeader(interchange, offset, seg, "", "", "", "", "", "", "", "")


def iter_events(source: Source, limits: ReaderLimits | None = None) -> Iterator[Event]:
    """Stream the events of an X12 input: bytes, a binary file object or an iterable of chunks."""
    return iter(X12Reader(source, limits))


def read_transactions(source: Source, limits: ReaderLimits | None = None) -> list[TransactionSet]:
    """Every transaction set of an input, in order (for small inputs and tests)."""
    return [e for e in iter_events(source, limits) if isinstance(e, TransactionSet)]
