"""gunicorn settings of the capture service; `leadgate serve` runs gunicorn with this module.

Operators can use it directly, adding or overriding any setting on the command line::

    gunicorn -c python:capture.gunicorn_conf --bind 0.0.0.0:8000 'capture:create_app()'

Measured on 2-core machines (docs/performance.md): two ``sync`` workers were the best choice
for visitors (and one more per export slot keeps staff exports off them);
four spent more CPU per request, and the ``gthread`` worker tripled the p99. A ``sync``
worker serves one request at a time and closes the connection after each answer (keep-alive
is ignored), so in production it belongs behind a proxy that buffers slow clients, such as
nginx with its default ``proxy_buffering on`` (docs/deployment.md).
"""

import os
import re

from gunicorn.glogging import Logger

from capture.config import export_slots

wsgi_app = "capture:create_app()"
# No bind here: gunicorn listens on 127.0.0.1:8000 (or 0.0.0.0:$PORT) unless told --bind.
# The visitors' workers ($WEB_CONCURRENCY, gunicorn's own convention, set by many hosting
# platforms), plus one per export that may stream at once (LEADGATE_EXPORT_SLOTS): exports
# never hold more workers than that, so the visitors' stay free (capture/staff/slots.py).
# A --workers on the command line replaces this sum: count the export slots in.
workers = int(os.environ.get("WEB_CONCURRENCY", "2")) + export_slots(os.environ)
worker_class = "sync"
# Never load the app before forking: each worker opens its own database connections
# (a SQLite connection must not cross a fork). create_app() connects lazily anyway.
preload_app = False
# A submission takes milliseconds; 30 s only ends a worker that hangs (a stuck database).
timeout = 30
graceful_timeout = 20
accesslog = "-"
# gunicorn's default format without the client address (%(h)s): the service keeps only the
# /24 or /48 network of a visitor, and the access log should not keep more.
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# gunicorn ≥ 25 opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which a second instance on the same host takes over. Signals (HUP, TTIN, TTOU, TERM) do the
# same work without that clash.
control_socket_disable = True


#: The personal part of a thank-you or download link: whoever reads it can fetch the PDF as
#: the visitor, so it stays out of the access log.
_LINK_TOKEN = re.compile(r"(/(?:thanks|download)/)[^/?#\s]+")


class AccessLogger(Logger):
    """gunicorn's logger, with link tokens in the request line, path and referrer blanked, and
    the size of files sent with sendfile()."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = _LINK_TOKEN.sub(r"\1…", atoms[key])
        # The site's pages and the PDFs are files (Flask's send_file through wsgi.file_wrapper),
        # which gunicorn hands to sendfile() without counting them in resp.sent: the log said
        # "200 0" for an 18 kB page. Such an answer always declares its Content-Length.
        if not resp.sent and resp.response_length and _has_body(req.method, resp.status_code):
            atoms["b"], atoms["B"] = str(resp.response_length), resp.response_length
        return atoms


def _has_body(method: str, status: int | None) -> bool:
    """Whether an answer carries its body (RFC 9110: not to HEAD, nor with 1xx, 204 or 304)."""
    return method != "HEAD" and status is not None and status >= 200 and status not in (204, 304)


logger_class = AccessLogger


def post_worker_init(worker) -> None:
    """Each worker keeps scores at today's decay in a thread of its own (capture.scoring.apply),
    and an export it streams tells gunicorn it is alive (capture.staff.slots)."""
    from capture.scoring.apply import start_refresher
    from capture.staff.slots import set_heartbeat

    if getattr(worker.wsgi, "import_name", None) != "capture":
        return  # another app under these settings (benchmarks/baseline_app.py): none of ours
    start_refresher(worker.wsgi)
    set_heartbeat(worker.wsgi, worker.notify)
