"""Tabs other apps add to a persona's profile, after the profile's own ones.

An app registers a tab from its ``AppConfig.ready()``; personas never imports that app. The
tab's ``render_fn(request, persona)`` returns the context the profile template shows the tab
with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

RenderFn = Callable[[HttpRequest, Any], dict[str, Any]]


@dataclass(frozen=True)
class Tab:
    name: str
    label: str
    render_fn: RenderFn


_TABS: dict[str, Tab] = {}


def register_tab(name: str, label: str, render_fn: RenderFn) -> None:
    """Add (or, registered again under the same name, replace) a profile tab."""
    _TABS[name] = Tab(name, label, render_fn)


def registered_tabs() -> dict[str, Tab]:
    """The registered tabs, in the order they were registered."""
    return dict(_TABS)
