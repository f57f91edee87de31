"""CPU time of the benchmarks' child processes, read from /proc (CPU time holds up on a shared machine)."""

from __future__ import annotations

import os
from pathlib import Path


def group_cpu_seconds(leader: int) -> float:
    """CPU seconds (user + system) used so far by every live process of ``leader``'s process group."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # field 5 of stat: the process group
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
