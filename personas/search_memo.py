"""Search text stays out of URLs.

Staff search by phone, email, name and customer ID, which is personal data: in an address bar
it would land in browser history on shared front-desk screens, in access logs and in Referer
headers. So the search boxes post their text; the server keeps it in the signed-in session under
a short random token, and URLs (the address bar, paging links, reloads, Back) carry only
``s=<token>``. A token means nothing outside its session, so such a link cannot leak a search.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.http import HttpRequest, QueryDict

SESSION_KEY = "search_memo"
LIST_KEY = "personas_list_address"  # the list's last address: filters, sort, page, token
KEEP = 50  # the most recent searches a session can return to
MAX_LENGTH = 200


def remember(request: HttpRequest, text: str) -> str:
    """The token for ``text`` in this session (the same token for the same text)."""
    text = text.strip()[:MAX_LENGTH]
    if not text:
        return ""
    memo = request.session.get(SESSION_KEY, {})
    for token, value in memo.items():
        if value == text:
            return token
    token = secrets.token_urlsafe(6)
    memo[token] = text
    while len(memo) > KEEP:
        memo.pop(next(iter(memo)))
    request.session[SESSION_KEY] = memo
    return token


def recall(request: HttpRequest, token: str) -> str | None:
    """The text behind ``token``, or None when this session never had it (or dropped it)."""
    value = request.session.get(SESSION_KEY, {}).get(token)
    return value if isinstance(value, str) else None


@dataclass
class Search:
    data: QueryDict  # the request's fields with ``q`` restored: what the form reads
    params: QueryDict  # what URLs may carry: filters and ``s``, never ``q``, never empties
    expired: bool  # ``s`` named a search this session no longer has
    typed: bool  # the text came with this request (a search), not from a token (reload, Back)


def resolve(request: HttpRequest) -> Search:
    """Read a search from a POST (the search form), or from a GET's ``s`` token (a reload, a
    paging link, Back). A GET ``q`` still works for an address typed by hand, but nothing the
    product renders produces one."""
    data = (request.POST if request.method == "POST" else request.GET).copy()
    data.pop("csrfmiddlewaretoken", None)
    token, expired, typed = "", False, "q" in data
    if typed:
        token = remember(request, data.get("q", ""))
    elif data.get("s"):
        text = recall(request, data["s"])
        if text is None:
            expired = True
        else:
            data["q"], token = text, data["s"]
    data.pop("s", None)
    params = data.copy()
    for key in ("q", "cursor"):
        params.pop(key, None)
    for key in [k for k, v in params.items() if not v]:
        params.pop(key)
    if token:
        params["s"] = token
    return Search(data, params, expired, typed)


def keep_list_address(request: HttpRequest, address: str) -> None:
    """Remember the persona list's address (it carries a token, never search text) so the
    profile's way back returns to the same search, filters and page."""
    if request.session.get(LIST_KEY) != address:
        request.session[LIST_KEY] = address


def list_address(request: HttpRequest, default: str) -> str:
    address = request.session.get(LIST_KEY) if hasattr(request, "session") else None
    return address if isinstance(address, str) and address.startswith(default) else default
