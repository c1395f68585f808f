"""``cfx dashboards``: Voilà serving ``dashboards/`` behind cfx API tokens, with no CDN.

- **Who may look.** :class:`CfxIdentityProvider` (Voilà's ``identity_provider_class``) accepts
  a cfx API token as ``?token=`` (or a bearer header), checks it against the same token store
  as the service, and remembers the viewer by a random session id in a signed, HTTP-only cookie
  for the page's own follow-up requests (kernel channels, static files): the cookie never holds
  the token, and the server keeps only the token's hash per session (:class:`Sessions`), so a
  revoked token ends its sessions at once. No or an unknown token: 401 with a sentence on how
  to get one. A role without the dashboard's scope (the investor on the customer success
  dashboard): 403. The kernel calls the service with the viewer's token (Voilà hands the query
  string to the kernel), so the service's roles apply to every number shown.
- **Offline.** Voilà's ``lab`` template links Font Awesome from a CDN; the ``cfx`` template is
  made from the installed one at start-up with those two links removed (nothing else of it is
  copied into this repository), under ``$CFX_HOME/dashboards/``.
- **Light pages.** A page loads the widget manager's JavaScript only, not every JupyterLab
  extension installed (:data:`FRONTEND_EXTENSIONS`).
- **Preheated.** With ``dashboards.preheat`` (the default), Voilà keeps one kernel per dashboard
  started with the notebook run up to the point where it needs a viewer (its imports: about 1 s
  per view), so a page view starts from there (:func:`cfxlib.dashboards.client.wait_for_viewer`). The viewer's
  request (with its token) reaches the waiting kernel over Voilà's ``/voila/query`` socket,
  which this server accepts from the loopback address only (the kernels run on this machine).
  A used kernel is replaced in the background as soon as a viewer takes it
  (:func:`refill_when_taken`), not once it is ready, so viewers arriving close together never
  find the pool empty and fall back to a kernel started cold.
- **Bounded.** Idle kernels are culled (``dashboards.cull_idle_s``); at most
  ``dashboards.max_kernels`` kernels serve page views at once (the pool's waiting kernels are
  not counted), further page views get 503.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from pathlib import Path

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web

from cfxlib.api.auth import PERMISSIONS, TokenStore, token_hash
from cfxlib.core.home import Home

REPO = Path(__file__).resolve().parents[3]
COOKIE = "cfx-dashboard-session"
SESSION_TTL_S = 24 * 3600


class Sessions:
    """Dashboard sessions in memory: random id -> (token hash, expiry). A restart forgets them
    (the viewer opens the page with ``?token=`` again)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, limit: int = 10_000):
        self.ttl_s, self.limit = ttl_s, limit
        self._by_id: dict[str, tuple[str, float]] = {}

    def new(self, token: str) -> str:
        now = time.time()
        if len(self._by_id) >= self.limit:
            self._by_id = {k: v for k, v in self._by_id.items() if v[1] > now}
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = (token_hash(token), now + self.ttl_s)
        return sid

    def token_hash(self, sid: str | None) -> str | None:
        found = self._by_id.get(sid or "")
        if found is None or found[1] <= time.time():
            self._by_id.pop(sid or "", None)
            return None
        return found[0]


NEEDS = {"customer_success": "customers", "reporting_portal": "finance.public"}
"""Scope a role needs per dashboard (the service's scopes: the investor has finance.public only)."""
TEMPLATE = "cfx"
FRONTEND_EXTENSIONS = [
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "bqplot",
    "bqscales",
]
"""The JupyterLab extensions a dashboard page loads: the widgets and bqplot's charts (with its
scales) only. Voilà loads every one installed by default, and plotly's alone is 4.7 MB of
JavaScript per page view, which the dashboards do not use."""


def dashboard_of(path: str) -> str | None:
    for name in NEEDS:
        if f"/{name}.ipynb" in path:
            return name
    return None


class CfxIdentityProvider(IdentityProvider):
    """Voilà's users are cfx API tokens (see the module documentation)."""

    tokens: TokenStore | None = None  # set by :func:`run` from the home
    sessions: Sessions = Sessions()
    max_kernels: int = 20

    @property
    def auth_enabled(self) -> bool:  # Voilà passes an empty token: authentication is still on
        return True

    def get_handlers(self) -> list:
        return [(r"/login", _NeedToken)]  # replaces the default /login, which would loop

    def get_user(self, handler: web.RequestHandler) -> User | None:
        token = handler.get_argument("token", None)
        header = handler.request.headers.get("Authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:].strip()
        record = None
        if self.tokens is not None and token:
            record = self.tokens.lookup(token)
        elif self.tokens is not None:
            raw = handler.get_secure_cookie(COOKIE)
            digest = self.sessions.token_hash(raw.decode() if raw else None)
            record = self.tokens.lookup_hash(digest) if digest else None
        if record is None:
            return None
        name = dashboard_of(handler.request.path)
        if name and NEEDS[name] not in PERMISSIONS[record.role]:
            return _refuse(handler, 403, f"The role {record.role!r} may not open the {name} dashboard.")
        if name and handler.request.path.startswith(("/voila/render/", "/notebooks/")):
            running = viewing_kernels(handler.settings["kernel_manager"])
            if running >= self.max_kernels:
                return _refuse(handler, 503, f"{running} dashboards are open, the limit; try again in a minute.")
        if token:
            sid = self.sessions.new(token)
            handler.set_secure_cookie(COOKIE, sid, httponly=True, samesite="Strict", expires_days=1)
        return User(username=f"{record.role}:{record.id}", name=record.name or record.role)


def viewing_kernels(kernel_manager) -> int:
    """Kernels serving page views: all running ones but the pool's ready kernels, which wait for
    a viewer (a kernel still being preheated counts, so the figure errs on the safe side)."""
    pools = getattr(kernel_manager, "_pools", {})  # Voilà's preheat pools: notebook -> tasks
    ready = sum(1 for pool in pools.values() for task in pool if task.done() and not task.cancelled())
    return max(0, len(kernel_manager.list_kernel_ids()) - ready)


def loopback_only_request_info() -> None:
    """Voilà's ``/voila/query/<kernel id>`` socket hands a viewer's request (its query string,
    with the token) to whoever connects with that kernel's id, and checks no identity: only the
    kernels, which run on this machine, may connect."""
    from voila.request_info_handler import RequestInfoSocketHandler

    if getattr(RequestInfoSocketHandler, "_cfx_loopback_only", False):
        return
    voila_open = RequestInfoSocketHandler.open

    def open_from_loopback(self, kernel_id: str) -> None:
        if self.request.remote_ip not in ("127.0.0.1", "::1"):
            self.close(code=1008, reason="kernels only")
            return
        voila_open(self, kernel_id)

    RequestInfoSocketHandler.open = open_from_loopback
    RequestInfoSocketHandler._cfx_loopback_only = True


def refill_when_taken() -> None:
    """Start a pool's replacement kernel when a viewer takes the pool's kernel, not once that
    kernel is ready (Voilà 0.5's order).

    Voilà pops the pool's kernel, waits until it is ready, and only then starts the next one.
    Until then the pool is empty, so a viewer arriving meanwhile gets a kernel started cold; and
    the next kernel's start is serialised behind the previous one's, so page views arriving
    faster than one kernel start (plus ``fill_delay``) queue up behind each other: with one
    viewer every 2 s, each page took about a second longer than the one before
    (docs/benchmarks.md). Refilled at take time, every viewer finds a kernel (ready, or being
    preheated since the previous viewer arrived) and kernels start in parallel when needed.
    """
    import voila.app

    factory = voila.app.voila_kernel_manager_factory
    if getattr(factory, "_cfx_refill_when_taken", False):
        return

    def factory_refilling_when_taken(base_class, preheat_kernel, default_pool_size, **kwargs):
        manager_class = factory(base_class, preheat_kernel, default_pool_size, **kwargs)
        if not preheat_kernel:
            return manager_class

        class RefillWhenTaken(manager_class):
            async def get_rendered_notebook(self, notebook_name, extra_kernel_env_variables=None, **kw):
                pool = self._pools.get(notebook_name)
                extra = extra_kernel_env_variables or {}
                if pool:
                    taken = pool.pop(0)
                    self.fill_if_needed(notebook_name=notebook_name, extra_kernel_env_variables=extra, **kw)
                    pool.insert(0, taken)  # Voilà pops it; its own refill then finds the pool full
                return await super().get_rendered_notebook(notebook_name, extra, **kw)

        return RefillWhenTaken

    factory_refilling_when_taken._cfx_refill_when_taken = True
    voila.app.voila_kernel_manager_factory = factory_refilling_when_taken


def _refuse(handler: web.RequestHandler, status: int, text: str) -> None:
    """Answer ``status`` with a sentence and end the request here (``web.Finish``: no user, no
    page, and no redirect to a login page after the answer was written)."""
    handler.set_status(status)
    handler.set_header("Content-Type", "text/plain; charset=utf-8")
    handler.finish(text + "\n")
    raise web.Finish()


TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+|cfx_[A-Za-z0-9_-]{20,}", re.IGNORECASE)


def redact(text: str) -> str:
    """``token=...`` values and bare cfx tokens replaced by ``***``."""
    return TOKEN_IN_TEXT.sub(lambda m: (m.group(1) or "") + "***", text)


class RedactTokens(logging.Filter):
    """A log filter: no record leaves with a cfx token in it (request URLs carry ``?token=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def redact_logs(*loggers: logging.Logger) -> None:
    """Put :class:`RedactTokens` on every handler of ``loggers``, the root and tornado's loggers."""
    seen = set()
    for logger in (
        *loggers,
        logging.getLogger(),
        *(logging.getLogger(n) for n in ("tornado.access", "tornado.application", "tornado.general")),
    ):
        for handler in logger.handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                handler.addFilter(RedactTokens())
        logger.addFilter(RedactTokens())


class _NeedToken(web.RequestHandler):
    def get(self) -> None:
        self.set_header("X-Cfx-Pid", str(os.getpid()))  # which process answers (`cfx health` compares)
        self.set_status(401)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(
            "A cfx API token is needed: add ?token=TOKEN to the dashboard's address "
            "(cfx token create --role analyst|executive|investor).\n"
        )


def make_template(target: Path) -> Path:
    """The ``cfx`` Voilà template: the installed ``lab`` one without its CDN links. Returns the
    folder to put on ``JUPYTER_PATH`` (it holds ``voila/templates/cfx``)."""
    import voila

    share = Path(voila.__file__).resolve().parents[4] / "share" / "jupyter" / "voila" / "templates" / "lab"
    if not share.is_dir():  # installed elsewhere (a system site-packages): ask jupyter
        from jupyter_core.paths import jupyter_path

        share = next(Path(p) / "lab" for p in jupyter_path("voila", "templates") if (Path(p) / "lab").is_dir())
    dest = target / "voila" / "templates" / TEMPLATE
    dest.mkdir(parents=True, exist_ok=True)
    for item in share.iterdir():
        text = item.read_text(encoding="utf-8") if item.is_file() else None
        if text is None:
            continue
        if item.name == "index.html.j2":
            text = re.sub(r'\s*<link rel="stylesheet" href="https://[^"]*"[^>]*/>', "", text)
        (dest / item.name).write_text(text, encoding="utf-8")
    (dest / "conf.json").write_text('{"base_template": "lab"}\n', encoding="utf-8")
    return target


def run(
    home: Home,
    host: str,
    port: int,
    api_url: str,
    dashboards: Path | None = None,
    max_kernels: int = 20,
    cull_idle_s: int = 300,
    preheat: bool = True,
) -> None:
    """Serve the dashboards until interrupted."""
    dashboards = dashboards or REPO / "dashboards"
    share = make_template(home.root / "dashboards" / "share")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(share), os.environ.get("JUPYTER_PATH")]))
    os.environ["CFX_DASHBOARD_API"] = api_url  # read by the kernels (cfxlib.dashboards.client)
    # Where a preheated kernel asks for its viewer's request (Voilà's port on this machine).
    os.environ["VOILA_APP_IP"] = "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host
    CfxIdentityProvider.tokens = TokenStore(home.tokens)
    CfxIdentityProvider.max_kernels = max_kernels
    from traitlets.config import Config
    from voila.app import Voila

    secret = home.root / "dashboards" / "cookie_secret"  # signs the token cookie; never leaves the home
    if not secret.exists():
        secret.write_bytes(os.urandom(32))
        secret.chmod(0o600)
    config = Config()
    config.Voila.ip = host
    config.Voila.port = port
    config.Voila.open_browser = False
    config.Voila.identity_provider_class = CfxIdentityProvider
    config.Voila.tornado_settings = {"cookie_secret": secret.read_bytes()}
    config.VoilaConfiguration.template = TEMPLATE
    config.VoilaConfiguration.show_tracebacks = False
    config.VoilaConfiguration.extension_allowlist = FRONTEND_EXTENSIONS
    if preheat:
        loopback_only_request_info()
        refill_when_taken()
        config.VoilaConfiguration.preheat_kernel = True
        # One per dashboard: with two, the refills (two kernels booting per page view) took the
        # cores from the pages being opened, and one viewer every 2 s waited longer, not less
        # (docs/benchmarks.md).
        config.VoilaConfiguration.default_pool_size = 1
    config.MappingKernelManager.cull_idle_timeout = cull_idle_s
    config.MappingKernelManager.cull_interval = 30
    config.MappingKernelManager.cull_connected = False
    app = Voila(config=config)
    app.initialize([str(dashboards)])
    redact_logs(app.log)
    print(
        f"cfx dashboards: http://{host}:{port}/voila/render/customer_success.ipynb?token=TOKEN and "
        f"/voila/render/reporting_portal.ipynb?token=TOKEN (service {api_url}); Ctrl-C stops",
        flush=True,
    )
    app.start()
