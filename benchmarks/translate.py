"""X12 engine throughput: read, validate, canonical JSON and generate, plus peak memory.

Generates its own input (40-line 850s, 856s with pack/item HL trees, and in the full run one
1 GB 856 interchange streamed from disk) and prints MB/s and transactions/s on one core
(CPU time; the big file's figure is wall time, as it includes reading the disk).
``--quick`` runs small inputs without thresholds (what CI does).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

if importlib.util.find_spec("translators") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from translators import engine_build
from translators.canonical import parse_document, to_json_bytes
from translators.generate import generate_interchange
from translators.maps import to_canonical, to_canonical_json
from translators.settings import EnvelopeSettings, PartyId, TranslationSettings
from translators.validation import validate_transaction
from translators.x12.model import TransactionSet
from translators.x12.reader import iter_events

ISA = ("ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTCO         *261122*0930*U*00401*"
       "{cn:09d}*0*P*>~\n")


def po_850(n: int, lines: int = 12) -> str:
    """A 40-segment 850 (header, two N1 loops, ``lines`` PO1/PID pairs)."""
    body = [f"BEG*00*SA*PO{n:08d}**20261122", "CUR*BY*USD", "REF*DP*042", "DTM*002*20261201",
            "N1*BT*ACME RETAIL INC*92*0001", "N3*100 MAIN ST", "N4*SPRINGFIELD*IL*62701*US",
            "N1*ST*ACME DC 7*92*0007", "N3*7 DEPOT RD", "N4*JOLIET*IL*60431*US"]
    for i in range(1, lines + 1):
        body.append(f"PO1*{i}*{i * 2}*CA*{i}.25**UP*0123456789{i:02d}*VP*WID-{i}*BP*ACME-{i}")
        body.append(f"PID*F****WIDGET NUMBER {i}")
    body.append(f"CTT*{lines}")
    return _set("850", n, body)


def asn_856(n: int, packs: int = 4, items: int = 3) -> str:
    """An 856 with a shipment, one order, ``packs`` cartons of ``items`` items each."""
    body = [f"BSN*00*SH{n:08d}*20261122*0930*0001", "DTM*011*20261122",
            "HL*1**S", "TD1*CTN25*4****G*120*LB", "TD5*B*2*UPSN*U", "REF*BM*BOL12345",
            "N1*ST*ACME DC 7*92*0007", "N1*SF*DISTCO*92*DC1", "HL*2*1*O", f"PRF*PO{n:08d}"]
    hl = 2
    for p in range(packs):
        hl += 1
        pack = hl
        body += [f"HL*{pack}*2*P", f"MAN*GM*00012345678{n % 10**7:07d}{p:02d}"]
        for i in range(items):
            hl += 1
            body += [f"HL*{hl}*{pack}*I", f"LIN**UP*0123456789{i:02d}*VP*WID-{i}",
                     f"SN1**{i + 1}*EA"]
    body.append(f"CTT*{hl}")
    return _set("856", n, body)


def _set(set_id: str, n: int, body: list[str]) -> str:
    cn = f"{n % 10**9:04d}"
    return f"ST*{set_id}*{cn}~\n" + "".join(s + "~\n" for s in body) + f"SE*{len(body) + 2}*{cn}~\n"


def interchange(sets: list[str], functional_id: str, cn: int = 1) -> str:
    """One interchange with one group around already formatted sets."""
    return (ISA.format(cn=cn) + f"GS*{functional_id}*ACMERETAIL*DISTCO*20261122*0930*{cn}*X*004010~\n"
            + "".join(sets) + f"GE*{len(sets)}*{cn}~\nIEA*1*{cn:09d}~\n")


def build(make: Callable[[int], str], functional_id: str, target_bytes: int) -> tuple[bytes, int]:
    """Concatenated interchanges of ~1,000 sets each up to ``target_bytes``."""
    out, count, cn = [], 0, 1
    size = 0
    while size < target_bytes:
        sets = [make(count + i) for i in range(1000)]
        text = interchange(sets, functional_id, cn)
        out.append(text)
        size += len(text)
        count += len(sets)
        cn += 1
    return "".join(out).encode(), count


def _sets(data: bytes | io.BufferedReader) -> Iterator[TransactionSet]:
    for event in iter_events(data):
        if isinstance(event, TransactionSet):
            yield event


def read_only(data: bytes) -> int:
    """Tokenise and structure every set."""
    return sum(1 for _ in _sets(data))


def read_validate(data: bytes) -> int:
    """Read and validate every set against its schema."""
    n = 0
    for ts in _sets(data):
        validate_transaction(ts)
        n += 1
    return n


def read_validate_json(data: bytes | io.BufferedReader) -> int:
    """Read, validate and translate every set to canonical JSON bytes (the whole document:
    every field that is not None, as the gateway stores and delivers it)."""
    n = 0
    for ts in _sets(data):
        issues = [*ts.issues, *validate_transaction(ts)]
        to_canonical_json(ts, issues=issues)  # a clean set's data is used as read
        n += 1
    return n


def interpreter() -> str:
    """Which interpreter runs the benchmark and whether the engine is compiled (setup.py)."""
    return (f"{os.path.realpath(sys.executable)} ({platform.python_compiler()}, "
            f"built {platform.python_build()[1]}); engine {engine_build()}")


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    """Best-of-two CPU time of ``fn`` and its count.

    CPU time of this one-threaded process is what one core spends, and unlike wall time it
    does not grow when other work shares the machine; on a quiet machine the two agree."""
    best, count = float("inf"), 0
    for _ in range(2):
        start = time.process_time()
        count = fn()
        best = min(best, time.process_time() - start)
    return best, count


def report(name: str, nbytes: int, seconds: float, count: int) -> dict[str, float | str]:
    """Print and return one figure."""
    mb_s = nbytes / seconds / 1e6
    per_s = count / seconds
    print(f"  {name:<42} {mb_s:8.1f} MB/s {per_s:10.0f} sets/s  ({count} sets, {seconds:.2f} s)")
    return {"name": name, "mb_s": round(mb_s, 1), "sets_s": round(per_s)}


def pyx12_read(data: bytes) -> int:
    """Segments pyx12's X12Reader yields for the same input (an independent baseline)."""
    from pyx12.x12file import X12Reader

    count = 0
    for _ in X12Reader(io.StringIO(data.decode())):
        count += 1
    return count


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB.

    On Linux ``ru_maxrss`` of a child started by fork/vfork + exec starts at the parent's peak
    (the benchmark's parent holds ~700 MB by then), so VmHWM, which exec resets, is used there."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_file_child(path: str) -> None:
    """Stream one big file through read+validate+JSON and print MB/s and peak RSS."""
    size = os.path.getsize(path)
    start = time.perf_counter()
    with open(path, "rb") as fh:
        n = read_validate_json(fh)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    print(json.dumps({"bytes": size, "seconds": seconds, "sets": n, "peak_rss_mb": peak_mb}))


def write_big_856(path: Path, target: int) -> None:
    """One 856 interchange of ``target`` bytes written to disk in pieces."""
    with path.open("w") as fh:
        fh.write(ISA.format(cn=1) + "GS*SH*ACMERETAIL*DISTCO*20261122*0930*1*X*004010~\n")
        n, size = 0, 0
        while size < target:
            chunk = "".join(asn_856(n + i) for i in range(1000))
            fh.write(chunk)
            size += len(chunk)
            n += 1000
        fh.write(f"GE*{n}*1~\nIEA*1*000000001~\n")


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs, no 1 GB file (CI)")
    parser.add_argument("--big-child", help=argparse.SUPPRESS)
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the big 856 in MB")
    args = parser.parse_args()
    if args.big_child:
        big_file_child(args.big_child)
        return 0
    target = 1_000_000 if args.quick else 20_000_000
    print(f"edigate translate benchmark — {datetime.now():%Y-%m-%d %H:%M}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, one core")
    print(f"interpreter: {interpreter()}")
    po_data, po_count = build(po_850, "PO", target)
    asn_data, asn_count = build(asn_856, "SH", target)
    for label, data in (("850 (40 segments)", po_data), ("856 (pack/item HL)", asn_data)):
        print(f"{label}: {len(data) / 1e6:.1f} MB")
        report("read only", len(data), *timed(lambda d=data: read_only(d)))  # type: ignore[misc]
        report("read + validate", len(data), *timed(lambda d=data: read_validate(d)))  # type: ignore[misc]
        report("read + validate + canonical JSON", len(data),
               *timed(lambda d=data: read_validate_json(d)))  # type: ignore[misc]

    docs = [to_canonical(ts) for ts in _sets(po_data[: len(po_data) // 4])]
    docs = [parse_document(json.loads(to_json_bytes(d))) for d in docs]
    settings = TranslationSettings(envelope=EnvelopeSettings(
        interchange_id=PartyId(qualifier="ZZ", id="ACMERETAIL"), our_id=PartyId(qualifier="ZZ", id="DISTCO")))

    def generate() -> int:
        text = generate_interchange(docs, settings, now=datetime(2026, 11, 22, 9, 30),
                                    interchange_control=1, group_control=1, transaction_control=1)
        generate.size = len(text)  # type: ignore[attr-defined]
        return len(docs)

    seconds, count = timed(generate)
    report("generate 850 (canonical → X12)", generate.size, seconds, count)  # type: ignore[attr-defined]

    sample = po_data[: min(len(po_data), 2_000_000)]
    ours, _ = timed(lambda: read_only(sample))
    theirs, _ = timed(lambda: pyx12_read(sample))
    print(f"  pyx12 X12Reader on the same 850s: {len(sample) / theirs / 1e6:.1f} MB/s; "
          f"our read is {theirs / ours:.1f}x faster")

    big_mb = 20 if args.quick else args.big_mb
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.856"
        write_big_856(path, big_mb * 1_000_000)
        out = subprocess.run([sys.executable, __file__, "--big-child", str(path)],
                             check=True, capture_output=True, text=True).stdout
        big = json.loads(out)
        print(f"one {big['bytes'] / 1e6:.0f} MB 856 interchange ({big['sets']} sets), streamed from disk: "
              f"{big['bytes'] / big['seconds'] / 1e6:.1f} MB/s read+validate+JSON, "
              f"peak RSS {big['peak_rss_mb']:.0f} MB")
    print(f"(850s: {po_count}, 856s: {asn_count})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
