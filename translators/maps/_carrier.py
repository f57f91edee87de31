"""TD5 routing: the first TD5 is the document's carrier; later ones are kept as extra."""

from __future__ import annotations

from translators.maps._engine import TD5, Context, Data, Scope
from translators.x12.model import Row


def on_td5(seg: Row, target: Data, ctx: Context) -> Scope | None:
    """TD5: fills the carrier once; a second routing line is kept in extra_segments."""
    carrier = target.get("carrier")
    if carrier is None:
        carrier = target["carrier"] = {}
    elif any(name in carrier for _, name, *_ in TD5.fields):
        ctx.unknown(seg)
        return None
    TD5.read(seg, ctx, carrier)
    return None
