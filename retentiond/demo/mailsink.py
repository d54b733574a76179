"""The demo's mail sink: an SMTP server on loopback that keeps every message it is given as an
``.eml`` file, and a small web page to read them (with their links and attachments) beside
the demo's holding systems.

Real delivery, end to end: the service sends its notices through its SMTP channel exactly as
it would to a council's mail relay; only the relay is this folder. Never for production.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from retentiond.clock import Clock

_NAME = re.compile(r"^[0-9A-Za-z_.-]+\.eml$")
_URL = re.compile(r"https?://[^\s<>\"']+")


class MailSinkUnavailable(RuntimeError):
    """The SMTP server needs aiosmtpd (the ``demo`` extra)."""


def start_smtp(mail_dir: Path, host: str, port: int, *, clock: Clock) -> Any:
    """Start the SMTP server in a thread; every message becomes ``mail_dir/STAMP-N.eml``.
    Returns the aiosmtpd controller (``.stop()`` ends it)."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError as exc:
        raise MailSinkUnavailable("the demo's mail sink needs aiosmtpd: pip install "
                                  "'retentiond[demo]' (./dev installs it)") from exc
    mail_dir.mkdir(parents=True, exist_ok=True)
    numbers = count(1)
    lock = threading.Lock()

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with lock:
                stamp = clock.now().strftime("%Y%m%dT%H%M%S")
                path = mail_dir / f"{stamp}-{next(numbers):04d}.eml"
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(envelope.original_content or envelope.content)
                tmp.rename(path)  # a reader never sees half a message
            return "250 kept"

    controller = Controller(Keep(), hostname=host, port=port)
    controller.start()
    return controller


@dataclass(frozen=True, kw_only=True)
class RecordLookup:
    """What the page shows of one record: where it lives and whether its data is there."""

    record_id: str
    state: str
    system: str
    locator: str
    present: bool | None  # None: the system has no way to look (paper)


@dataclass(frozen=True, kw_only=True)
class DemoPages:
    """What the demo page reads: the mail folder, the holding systems' counts, and a
    record's whereabouts."""

    mail_dir: Path
    counts: Callable[[], dict[str, int]]
    lookup: Callable[[str], RecordLookup | None]
    service_url: str


def _messages(mail_dir: Path) -> list[tuple[str, EmailMessage]]:
    parser = BytesParser(policy=policy.default)
    out = []
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        with path.open("rb") as fh:
            out.append((path.name, parser.parse(fh)))
    return out


def _linkify(text: str) -> str:
    parts, last = [], 0
    for m in _URL.finditer(text):
        parts += [html.escape(text[last:m.start()]),
                  f'<a href="{html.escape(m.group(0))}">{html.escape(m.group(0))}</a>']
        last = m.end()
    return "".join(parts) + html.escape(text[last:])


_STYLE = """
body { font-family: Arial, sans-serif; margin: 0; color: #0b0c0c; }
header { background: #4c2c92; color: #fff; padding: 12px 24px; }
header a { color: #fff; }
main { padding: 8px 24px 40px; max-width: 1000px; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; border-bottom: 1px solid #b1b4b6; padding: 6px 8px; vertical-align: top; }
pre { background: #f3f2f1; padding: 12px; white-space: pre-wrap; }
.gone { color: #00703c; font-weight: bold; } .there { color: #d4351c; font-weight: bold; }
"""


def _page(title: str, body: str, service_url: str) -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<header><strong>retentiond demo</strong>: the mail sink and the holding systems (not part of
the product) &middot; <a href="/">mailbox</a> &middot;
<a href="{html.escape(service_url)}">the review service</a></header>
<main><h1>{html.escape(title)}</h1>{body}</main></body></html>""".encode()


def _index(pages: DemoPages, record: str) -> bytes:
    rows = "".join(
        f'<tr><td>{html.escape(str(m["Date"] or ""))}</td><td>{html.escape(str(m["To"] or ""))}'
        f'</td><td><a href="/mail/{name}">{html.escape(str(m["Subject"] or "(no subject)"))}'
        f"</a></td></tr>"
        for name, m in _messages(pages.mail_dir))
    mailbox = (f"<table><tr><th>date</th><th>to</th><th>subject</th></tr>{rows}</table>" if rows
               else "<p>No mail yet. Notices arrive here a few seconds after a certificate is "
                    "issued.</p>")
    counts = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>"
                     for k, v in pages.counts().items())
    found = ""
    if record:
        seen = pages.lookup(record.strip())
        if seen is None:
            found = f"<p>No record {html.escape(record)} in the registry.</p>"
        else:
            where = (f"<strong>{html.escape(seen.system)}</strong>, locator "
                     f"<code>{html.escape(seen.locator)}</code>")
            data = ("a person confirms paper disposals" if seen.present is None else
                    '<span class="there">its data is there</span>' if seen.present else
                    '<span class="gone">its data is gone</span>')
            found = (f"<p>Record <strong>{html.escape(seen.record_id)}</strong> ({html.escape(seen.state)})"
                     f" is held in {where}: {data}.</p>")
    return _page("Demo mailbox", f"""
<p>Every message retentiond sent, as the demo's mail relay received it (also as
<code>.eml</code> files in <code>{html.escape(str(pages.mail_dir))}</code>).</p>
{mailbox}
<h2>Holding systems</h2>
<p>The systems the demo's records live in; a disposal deletes from them.</p>
<table>{counts}</table>
<form method="get" action="/"><p><label for="record">Is a record's data still there?</label>
<input id="record" name="record" value="{html.escape(record)}" placeholder="DEMO-R-000123">
<button type="submit">Look</button></p></form>
{found}""", pages.service_url)


def _message(pages: DemoPages, name: str) -> bytes | None:
    path = pages.mail_dir / name
    if not _NAME.match(name) or not path.is_file():
        return None
    with path.open("rb") as fh:
        msg = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    files = "".join(
        f'<li><a href="/mail/{name}/{i}">{html.escape(part.get_filename() or f"part {i}")}</a> '
        f"({html.escape(part.get_content_type())})</li>"
        for i, part in enumerate(msg.iter_attachments()))
    head = "".join(f"<tr><th>{k}</th><td>{html.escape(str(msg[k] or ''))}</td></tr>"
                   for k in ("From", "To", "Date", "Subject"))
    return _page(str(msg["Subject"] or "(no subject)"), f"""
<table>{head}</table><pre>{_linkify(text)}</pre>
{f"<h2>Attached</h2><ul>{files}</ul>" if files else ""}""", pages.service_url)


def _attachment(pages: DemoPages, name: str, index: str) -> tuple[bytes, str, str] | None:
    path = pages.mail_dir / name
    if not _NAME.match(name) or not path.is_file() or not index.isdigit():
        return None
    with path.open("rb") as fh:
        msg = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(msg, EmailMessage)
    parts = list(msg.iter_attachments())
    if int(index) >= len(parts):
        return None
    part = parts[int(index)]
    data = part.get_content()
    return (data if isinstance(data, bytes) else str(data).encode(), part.get_content_type(),
            part.get_filename() or f"part-{index}")


def serve_pages(pages: DemoPages, host: str, port: int) -> ThreadingHTTPServer:
    """Serve the demo page in a thread; ``.shutdown()`` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if not parts:
                record = parse_qs(url.query).get("record", [""])[0]
                self._send(200, _index(pages, record))
            elif len(parts) == 2 and parts[0] == "mail" and (page := _message(pages, parts[1])):
                self._send(200, page)
            elif len(parts) == 3 and parts[0] == "mail" and (
                    found := _attachment(pages, parts[1], parts[2])):
                data, kind, filename = found
                self._send(200, data, kind, filename)
            else:
                self._send(404, _page("Not found", "<p>No such page.</p>", pages.service_url))

        def _send(self, status: int, body: bytes, kind: str = "text/html; charset=utf-8",
                  filename: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if filename:
                safe = re.sub(r"[^0-9A-Za-z_.-]", "_", filename)
                self.send_header("Content-Disposition", f'attachment; filename="{safe}"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the daemon logs
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="demo-pages", daemon=True).start()
    return server
