"""gunicorn.conf.py as production runs it, plus a post_request hook that notes how each request was answered.

gunicorn passes post_request the WSGI environ; a request answered before the environ was built
(StorefrontThreadWorker's in-process hits) gets an empty one, as gunicorn's own early failures do.
The note (``parsed`` or ``wsgi``, then the raw target) goes to the file $OBSERVED_REQUESTS names;
$BREAK_ANSWERS_BEFORE_WSGI makes the shortcut raise on every request.
"""

import os
import runpy

_production = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "..", "gunicorn.conf.py"))
globals().update({name: value for name, value in _production.items() if not name.startswith("__")})


def post_request(worker, req, environ, resp):  # noqa: ARG001 - gunicorn hook signature
    with open(os.environ["OBSERVED_REQUESTS"], "a") as notes:
        notes.write(f"{'wsgi' if environ else 'parsed'} {req.uri}\n")


def post_worker_init(worker):
    # $BREAK_ANSWERS_BEFORE_WSGI: the shortcut fails on every request, as a bug in it would.
    if os.environ.get("BREAK_ANSWERS_BEFORE_WSGI") and worker.answer_parsed is not None:
        def broken(method, raw_target, headers):  # noqa: ARG001 - answer_parsed's signature
            raise RuntimeError("broken shortcut")

        worker.answer_parsed = broken
