"""The flow diagram: steps laid out top to bottom by distance from the first step, drawn as
server-rendered SVG (boxes, arrows labelled with their transition event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .definition import STEP_TYPES, events_for

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 270, 80, 60, 90, 30


@dataclass
class Node:
    name: str
    type_label: str
    step_type: str
    x: int
    y: int
    first: bool
    beta: bool
    ends: list[str] = field(default_factory=list)
    problem: bool = False


@dataclass
class Edge:
    d: str
    label: str
    lx: int
    ly: int
    back: bool


def _offset_x(state: dict[str, Any]) -> float:
    """A step's x on Studio's canvas (``properties.offset.x``); 0 when it has none, so
    steps without one keep their order (the sort is stable)."""
    offset = (state.get("properties") or {}).get("offset")
    if isinstance(offset, dict) and isinstance(offset.get("x"), int | float):
        return float(offset["x"])
    return 0.0


def layout(definition: dict[str, Any], problems: list[str] | None = None) -> dict[str, Any]:
    states = {
        s["name"]: s
        for s in definition.get("states", [])
        if isinstance(s, dict) and isinstance(s.get("name"), str)
    }
    first = definition.get("initial_state")
    level: dict[str, int] = {}
    if first in states:
        level[first] = 0
        queue = [first]
        while queue:
            current = queue.pop(0)
            for t in states[current].get("transitions", []) or []:
                target = t.get("next")
                if target in states and target not in level:
                    level[target] = level[current] + 1
                    queue.append(target)
    depth = max(level.values(), default=-1) + 1
    for name in states:
        if name not in level:
            level[name] = depth  # unreachable steps sit in a last row
    rows: dict[int, list[str]] = {}
    for name in states:
        rows.setdefault(level[name], []).append(name)
    for names in rows.values():  # left to right as placed on Studio's canvas (its offset)
        names.sort(key=lambda n: _offset_x(states[n]))
    widest = max((len(r) for r in rows.values()), default=1)
    width = MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X
    nodes: dict[str, Node] = {}
    problem_text = " ".join(problems or [])
    for row, names in rows.items():
        row_width = len(names) * BOX_W + (len(names) - 1) * GAP_X
        x0 = (width - row_width) // 2
        for i, name in enumerate(names):
            state = states[name]
            kind = state.get("type", "")
            meta = STEP_TYPES.get(kind, {"label": kind or "?"})
            ends = [
                t.get("event", "") for t in state.get("transitions", []) or [] if not t.get("next")
            ]
            connected = {t.get("event") for t in state.get("transitions", []) or []}
            ends += [e for e in events_for(state) if e not in connected]
            nodes[name] = Node(
                name=name,
                type_label=meta["label"],
                step_type=kind,
                x=x0 + i * (BOX_W + GAP_X),
                y=MARGIN + row * (BOX_H + GAP_Y),
                first=name == first,
                beta=bool(meta.get("beta")),
                ends=ends,
                problem=f"“{name}”" in problem_text,
            )
    edges: list[Edge] = []
    for name, state in states.items():
        source = nodes[name]
        outgoing = [t for t in state.get("transitions", []) or [] if t.get("next") in nodes]
        for k, t in enumerate(outgoing):
            target = nodes[t["next"]]
            offset = (k - (len(outgoing) - 1) / 2) * 40
            sx = int(source.x + BOX_W / 2 + offset)
            sy = source.y + BOX_H
            tx = int(target.x + BOX_W / 2)
            ty = target.y
            back = target.y <= source.y
            if back:
                # Loop back: around the right side of the boxes.
                rx = max(source.x, target.x) + BOX_W + 30 + 12 * k
                d = (
                    f"M{source.x + BOX_W},{source.y + BOX_H // 2} C{rx},{source.y + BOX_H // 2} "
                    f"{rx},{target.y + BOX_H // 2} {target.x + BOX_W},{target.y + BOX_H // 2}"
                )
                lx, ly = rx - 10, (source.y + target.y) // 2 + BOX_H // 2
            else:
                my = (sy + ty) // 2
                d = f"M{sx},{sy} C{sx},{my} {tx},{my} {tx},{ty - 6}"
                lx, ly = (sx + tx) // 2, my - 4
            edges.append(Edge(d, t.get("event", ""), lx, ly, back))
    row_count = max(rows, default=-1) + 1
    height = MARGIN * 2 + row_count * BOX_H + max(row_count - 1, 0) * GAP_Y
    return {
        "nodes": list(nodes.values()),
        "edges": edges,
        "width": max(width + 80, 400),
        "height": height,
        "box_w": BOX_W,
        "box_h": BOX_H,
    }
