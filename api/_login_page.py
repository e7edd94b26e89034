"""The login page a browser gets instead of a bare JSON 401.

A request that prefers HTML (a browser opening the dashboard) and carries no valid
credentials is answered with a page that says how to get in: ``leadstream serve``
prints a login URL, or the token goes into a form that opens that same URL,
``/login?token=…``. API clients (``Accept: application/json``, ``*/*`` or nothing)
keep the JSON error of :mod:`api._errors`.

The page needs no other file (``/static`` is behind the login): its one inline style
is allowed by its hash in the page's own Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import html

from fastapi.responses import HTMLResponse

_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;color:#1d2330;background:#f5f6f8;margin:0}"
    "main{max-width:36em;margin:8vh auto;background:#fff;border:1px solid #e2e5ea;"
    "border-radius:6px;padding:20px 24px}h1{font-size:20px;margin:0 0 8px}"
    "code{background:#f0f2f5;padding:0 3px;border-radius:3px;white-space:nowrap}"
    "form{display:flex;gap:8px;align-items:end;flex-wrap:wrap;margin:16px 0}"
    "label{display:flex;flex-direction:column;font-size:13px;color:#677085;flex:1 1 16em}"
    "input,button{font:inherit;padding:6px 8px;border:1px solid #c9ced8;border-radius:4px}"
    "button{background:#2f6fde;color:#fff;border-color:#2f6fde;cursor:pointer}"
    ".error{color:#c8372d;font-weight:600}.note{color:#677085;font-size:13px}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
#: Nothing but the inline style and the form's own target.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leadstream · sign in</title>
<style>{style}</style>
</head>
<body>
<main>
<h1>Sign in to the leadstream dashboard</h1>
{message}<p>The dashboard needs the API token, <code>LEADSTREAM_API__TOKEN</code>. When
<code>leadstream serve</code> starts, it prints a login URL,
<code>http://…/login?token=…</code>: open it and the dashboard opens. Where its output
went to a log, the URL reads <code>…?token=$LEADSTREAM_API__TOKEN</code>; the token is
the value of that variable in the environment <code>serve</code> runs in.</p>
<form id="login" method="get" action="/login">
<label>API token <input type="password" name="token" autocomplete="current-password"
 maxlength="512" required autofocus></label>
<button type="submit">Open the dashboard</button>
</form>
<p class="note">{basic}API clients send <code>Authorization: Bearer &lt;token&gt;</code>
and get JSON answers.</p>
</main>
</body>
</html>
"""


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header ranks HTML above JSON, as a browser's navigation does.

    A media range's quality is that of its most specific match; a tie, ``*/*`` or no
    header at all means an API client.

    Examples
    --------
    >>> prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    True
    >>> prefers_html("application/json"), prefers_html("*/*"), prefers_html("")
    (False, False, False)
    >>> prefers_html("text/html;q=0.5, application/json"), prefers_html("text/*, */*;q=0.1")
    (False, True)
    """
    ranges: dict[str, float] = {}
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        if not kind:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges[kind.lower()] = q

    def quality(media: str) -> float:
        major = media.split("/")[0]
        for candidate in (media, f"{major}/*", "*/*"):
            if candidate in ranges:
                return ranges[candidate]
        return 0.0

    return quality("text/html") > quality("application/json")


def login_page(status: int, message: str = "", basic: bool = False,
               headers: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    """The login page, with ``message`` (what went wrong) above the explanation.

    ``basic``: user and password are also accepted (the browser asks for them).

    Examples
    --------
    >>> page = login_page(401, "That token was not accepted.")
    >>> page.status_code, page.headers["content-type"]
    (401, 'text/html; charset=utf-8')
    >>> b'action="/login"' in page.body and b"not accepted" in page.body
    True
    """
    body = _PAGE.format(
        style=_STYLE,
        message=f'<p class="error" role="alert">{html.escape(message)}</p>\n' if message else "",
        basic="With a user name and password set, the browser asks for them instead. "
        if basic
        else "",
    )
    return HTMLResponse(
        body, status_code=status,
        headers={**(headers or {}), "Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )  # fmt: skip
