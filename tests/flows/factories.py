"""Flows for tests: the design example, published, with one run of a persona."""

from __future__ import annotations

import copy
import io

from flows import engine, examples
from flows import services as flow_services
from flows.models import Flow
from imports import services as import_services

# The design's example flow, from the one file seed_demo loads too.
DESIGN_EXAMPLE = examples.load("design_example")


def published_flow(
    definition: dict, *, name: str = "F", trigger: dict | None = None, reentry: str = "each"
) -> Flow:
    """``definition`` as a published, active flow (by default started by hand, re-entry each
    time)."""
    flow = Flow.objects.create(
        name=name,
        definition=copy.deepcopy(definition),
        trigger=trigger or {"type": "manual"},
        reentry=reentry,
    )
    flow_services.publish(flow, user=None)
    flow.refresh_from_db()
    return flow


def published_flow_with_run(persona, *, name: str = "Doors") -> tuple[Flow, int]:
    """The design example published as ``name``, and the id of one run of ``persona``
    through it (run to its end)."""
    flow = published_flow(DESIGN_EXAMPLE, name=name)
    [run_id] = engine.enroll(flow, [persona.pk], run_now=True)
    return flow, run_id


def uploaded_import(user, text: bytes = b"First Name,Mobile\nDoor,2025550142\n"):
    """An uploaded (not yet mapped) import job of a small CSV."""
    return import_services.upload(io.BytesIO(text), name="d.csv", user=user)
