"""The Hub's HTTP machinery, in one place: every verb that talks to a Hub goes through here.

- huggingface_hub, imported once, on first use (nothing here imports torch or transformers);
- the call state: the constants huggingface_hub reads from the environment once, at import
  (offline, timeouts, symlinks, Xet), follow this call's settings while it runs, and the
  progress bars show only once a download has run for a while;
- running a call: reads get bounded retries on quick network failures, writes get none (a lost
  answer would make a second commit);
- the one table from huggingface_hub's exceptions and HTTP statuses to :mod:`pybridge.errors`,
  as ``huggingface_hub.utils._http.hf_raise_for_status`` maps them to its own, and the one for
  inference endpoints (:func:`translate_inference`). Nothing else in pybridge maps a status.

Tokens: the HF token goes only to Hugging Face hosts and to the Hub the call names (HF_ENDPOINT,
the local mirror). huggingface_hub's ``InferenceClient`` sends the saved token as a Bearer token
to any ``base_url``; the request hook of :func:`_client_factory`, on the one HTTP session every
huggingface_hub call shares, takes it off an inference call's request to any other host.

Proxies and CA: R passes the proxy and CA variables with the HF_* ones at every call
(:data:`pybridge.settings.NETWORK_NAMES`), since Sys.setenv() in R never reaches os.environ, and
httpx2 reads os.environ only when a session is made. :func:`follow_network` remakes the shared
session when a call's settings differ from those it was made with, with its proxies and CA given
explicitly (``trust_env=False``): os.environ, a copy taken when Python started, is never read
for them. The table from proxy variables to mounts is httpx2's own (:func:`_routes`).

Xet: huggingface_hub uploads through Xet when ``hf_xet`` is installed. A Hub other than
huggingface.co (the local mirror, a company Hub) may not speak it, so for those endpoints it is
turned off for the call only.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import logging
import os
import ssl
import sys
import time
import urllib.parse
from typing import Dict, Optional, Tuple

from . import errors
from ._args import fields_of
from .settings import Network, Settings, check_url, proxy_label, resolve

RETRIES = 3
BACKOFF = (0.5, 1.0)
RETRY_WINDOW = 5.0
BAR_DELAY = 2.0  # seconds a download runs before its progress bar shows
HF_HOSTS = ("huggingface.co", "hf.co")
TOKEN_HOSTS = HF_HOSTS + ("huggingface.cloud",)  # + Inference Endpoints
_hf = None
_bar_class = None
# The Hub (scheme://host:port) of the call running in this context: its HF_ENDPOINT.
_call_hub: contextvars.ContextVar = contextvars.ContextVar("call_hub", default=None)
_hf_tokens: set = set()  # every HF token a call has resolved
# Set while an inference call runs (pybridge.inference.run_chain): the hook guards its requests
# only, so huggingface_hub used directly in this process (HfApi(endpoint=...)) is left alone.
# The value is the endpoint's own key, which a request to it may carry even if it looks like a
# token ("" for none).
endpoint_key: contextvars.ContextVar = contextvars.ContextVar("endpoint_key", default=None)
# The proxies and CA the shared session was made with; None: huggingface_hub's own (os.environ).
_network: Optional[Network] = None


def hf_module():
    """huggingface_hub, imported once (about 0.5 s the first time)."""
    global _hf
    if _hf is None:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
        import huggingface_hub.utils.tqdm

        huggingface_hub.set_client_factory(_client_factory)
        errors.redact_logs("huggingface_hub")
        _hf = huggingface_hub
    return _hf


def _client_factory(net: Optional[Network] = None):
    """huggingface_hub's default session, with :func:`_keep_token_home` after its own hook. With
    ``net``, its proxies and CA are exactly those of ``net``."""
    from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook

    if net is None:
        client = default_client_factory()
    else:
        import httpx2

        verify = _ssl_context(net)
        client = httpx2.Client(  # default_client_factory's settings, and the network's
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
            timeout=None,
            trust_env=False,
            verify=verify,
            mounts=_proxy_mounts(net, verify),
        )
    client.event_hooks = {
        **client.event_hooks,
        "request": [*client.event_hooks["request"], _keep_token_home],
    }
    return client


# ---------------------------------------------------------------------------------------------
# Proxies and CA


def follow_network(net: Network) -> None:
    """The shared session follows this call's proxies and CA: it is remade when they differ
    from those it was made with, so a change in R takes effect at the next call; equal settings
    cost a comparison. A bad proxy URL or CA file fails here, naming its variable."""
    global _network
    if net == _network:
        return
    hf = hf_module()
    hf.set_client_factory(functools.partial(_client_factory, net))
    _network = None
    hf.get_session()
    _network = net


def _ssl_context(net: Network):
    if net.ca is None:
        return True  # with trust_env=False: the system's CAs
    try:
        if os.path.isdir(net.ca):
            return ssl.create_default_context(capath=net.ca)
        return ssl.create_default_context(cafile=net.ca)
    except (OSError, ssl.SSLError) as exc:
        raise errors.InvalidArgumentError(
            f"{net.ca_variable} is '{net.ca}', which is not a readable CA file (PEM) or folder "
            f"({exc}). Fix or unset it.",
            argument=net.ca_variable,
        ) from None


def _proxy_mounts(net: Network, verify) -> dict:
    import httpx2

    mounts = {}
    for pattern, route in _routes(net).items():
        if route is None:
            mounts[pattern] = None  # direct, as no_proxy says
            continue
        url, variable = route
        try:
            check_url(url)  # httpx2 takes "http://[bad" and fails at each request
            mounts[pattern] = httpx2.HTTPTransport(verify=verify, trust_env=False, proxy=url)
        except (ValueError, ImportError, httpx2.InvalidURL) as exc:
            raise errors.InvalidArgumentError(
                f"The proxy in {variable} ({proxy_label(url)}) cannot be used: "
                f"{errors.safe_text(exc)}. Use http://host:port (or https://, socks5:// with the "
                "Python package socksio), or unset it.",
                argument=variable,
            ) from None
    return mounts


def _routes(net: Network) -> Dict[str, Optional[Tuple[str, str]]]:
    """URL pattern -> (proxy URL, variable), or None for no proxy: httpx2's reading of the
    proxy variables (``httpx2._utils.get_environment_proxies``), applied to ``net``."""
    from httpx2 import InvalidURL
    from httpx2._utils import URLPattern

    routes: Dict[str, Optional[Tuple[str, str]]] = {}
    for scheme, url, variable in net.proxies:
        routes[f"{scheme}://"] = (url, variable)
    for host in (h.strip() for h in net.no_proxy.split(",")):
        if host == "*":
            return {}
        pattern = _no_proxy_pattern(host) if host else None
        if pattern is not None:
            routes[pattern] = None
    for pattern in list(routes):
        try:
            URLPattern(pattern)
        except (ValueError, InvalidURL):
            del routes[pattern]  # as httpx2: an entry that cannot be parsed is ignored
    return routes


def _no_proxy_pattern(host: str) -> Optional[str]:
    import ipaddress

    def is_ip(kind) -> bool:
        try:
            kind(host.split("/")[0])
        except ValueError:
            return False
        return True

    if "://" in host:
        return host
    if is_ip(ipaddress.IPv4Address):
        return f"all://{host}"
    if is_ip(ipaddress.IPv6Address):
        addr, slash, subnet = host.partition("/")
        return f"all://[{addr}]/{subnet}" if slash else f"all://[{host.replace('%', '%25')}]"
    if host.lower() == "localhost" or host.startswith("["):
        return f"all://{host}"
    if "/" in host:
        return None
    return f"all://{host}" if host.startswith("*.") else f"all://*{host}"


def proxy_route(url: str) -> Optional[Tuple[str, str]]:
    """(proxy URL without credentials, its variable) that the shared session sends a request
    for ``url`` through, or None (direct, or a session that pybridge did not make)."""
    if _network is None or "://" not in str(url):
        return None
    import httpx2
    from httpx2._utils import URLPattern

    target = httpx2.URL(str(url))
    routes = sorted(((URLPattern(p), r) for p, r in _routes(_network).items()), key=lambda x: x[0])
    for pattern, route in routes:
        if pattern.matches(target):
            return None if route is None else (proxy_label(route[0]), route[1])
    return None


def token_may_reach(url: str) -> bool:
    """Whether the HF token may be sent to this URL: a Hugging Face host, or the Hub the running
    call names (HF_ENDPOINT), or the one huggingface_hub was configured with, on the same scheme,
    host and port (a local mirror does not vouch for another server on the same machine)."""
    parts = urllib.parse.urlparse(url)
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in TOKEN_HOSTS):
        return True
    hubs = (_call_hub.get(), hf_module().constants.ENDPOINT)
    return _origin(url) in {_origin(h) for h in hubs if h}


def _origin(url: str):
    parts = urllib.parse.urlparse(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _keep_token_home(request) -> None:
    key = endpoint_key.get()
    auth = request.headers.get("authorization")
    if key is None or not auth or token_may_reach(str(request.url)):
        return
    value = auth[len("Bearer ") :] if auth.startswith("Bearer ") else auth
    if key and value == key:
        return
    from huggingface_hub import get_token

    if value in _hf_tokens or value == get_token() or value.startswith("hf_"):
        del request.headers["authorization"]


def note_hub(s: Settings) -> None:
    """Remembers the call's Hub and token, for :func:`_keep_token_home`, and makes the shared
    session follow the call's proxies and CA (:func:`follow_network`)."""
    follow_network(s.network)
    _call_hub.set(s.endpoint)
    if s.token:
        _hf_tokens.add(s.token)


def hf_api(s: Settings):
    note_hub(s)
    return hf_module().HfApi(endpoint=s.endpoint, token=s.hf_token_arg)


def progress_bars():
    """huggingface_hub's progress bar, shown only once a download has run for BAR_DELAY
    seconds: fetching small or cached files (and "Fetching 3 files") prints nothing."""
    global _bar_class
    if _bar_class is None:
        from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

        class DelayedBar(hf_tqdm):
            def __init__(self, *args, **kwargs):
                kwargs.setdefault("delay", BAR_DELAY)
                super().__init__(*args, **kwargs)

        _bar_class = DelayedBar
    return _bar_class


# ---------------------------------------------------------------------------------------------
# Settings a call needs before it may start


def refuse_offline(s: Settings, ctx: dict, verb: str):
    if s.offline:
        raise errors.OfflineNotCachedError(
            f"{verb}() asks the Hub, but HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set. Unset it, "
            "or use hub_snapshot(..., local_files_only = TRUE) to work from the cache.",
            **ctx,
        )


def write_settings(env, token, ctx, verb) -> Settings:
    """The settings of a write: a token is required, and the Hub must be reachable."""
    s = resolve(env, token)
    if not s.token:
        raise no_token(s, verb, ctx)
    refuse_offline(s, ctx, verb)
    return s


def no_token(s: Settings, verb, ctx=None):
    return errors.AuthError(
        f"{verb}() writes to {s.endpoint} and needs a token with write access, but none was "
        "found (token argument, HF_TOKEN, HUGGING_FACE_HUB_TOKEN or $HF_HOME/token).",
        **fields_of(ctx or {}),
    )


# ---------------------------------------------------------------------------------------------
# Running a call


def run(call, s: Settings, ctx: dict, offline: bool, quiet: bool):
    """Runs a read with bounded retries on network failures; translates every failure.

    huggingface_hub already retries a failing HEAD and a tree listing with its own backoff
    (about 23 s). A failure that took longer than RETRY_WINDOW seconds went through that backoff
    and is not retried again; quick failures (a 5xx on a GET, a refused connection while listing
    a snapshot) get up to RETRIES tries with BACKOFF sleeps.
    """
    with call_state(s, quiet):
        for attempt in range(1, RETRIES + 1):
            started = time.monotonic()
            try:
                return call()
            except errors.PybridgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is translated below
                err = translate(exc, ctx, s, offline)
                quick = time.monotonic() - started < RETRY_WINDOW
                if isinstance(err, errors.NetworkError) and quick and attempt < RETRIES:
                    time.sleep(BACKOFF[min(attempt - 1, len(BACKOFF) - 1)])
                    continue
                raise err from None
    raise AssertionError("unreachable")


def write(fn, s: Settings, ctx: dict, quiet: bool = True, exists=None, commit=False):
    """Runs one write, once, with Xet as the endpoint allows; ``exists`` is ("branch", name) or
    ("tag", name) for the calls whose 409 means that name is taken; ``commit`` for the calls
    that commit to ``ctx["revision"]``, which must be a branch."""
    with call_state(s, quiet), _xet_for(s.endpoint):
        try:
            return fn()
        except errors.PybridgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is translated
            raise translate(exc, ctx, s, write=True, exists=exists, commit=commit) from None


@contextlib.contextmanager
def call_state(s: Settings, quiet: bool):
    """huggingface_hub's constants that it reads from the environment once, at import, follow
    this call's settings while it runs (offline, timeouts, symlinks, Xet); quiet or
    HF_HUB_DISABLE_PROGRESS_BARS hides the progress bars. Quiet also hides huggingface_hub's own
    log warnings (advice for its Python users, such as installing hf_xet for a large upload)."""
    constants = hf_module().constants
    note_hub(s)
    wanted = {
        "HF_HUB_OFFLINE": bool(s.offline),
        "HF_HUB_ETAG_TIMEOUT": s.etag_timeout,
        "HF_HUB_DOWNLOAD_TIMEOUT": s.download_timeout,
        **s.flags,
    }
    saved = {name: getattr(constants, name) for name in wanted}
    bars = sys.modules["huggingface_hub.utils.tqdm"]  # huggingface_hub.utils.tqdm is the class
    saved_bars = bars.HF_HUB_DISABLE_PROGRESS_BARS
    for name, value in wanted.items():
        setattr(constants, name, value)
    bars.HF_HUB_DISABLE_PROGRESS_BARS = True if quiet or s.progress_bars is False else None
    logger = logging.getLogger("huggingface_hub")
    saved_level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(constants, name, value)
        bars.HF_HUB_DISABLE_PROGRESS_BARS = saved_bars
        logger.setLevel(saved_level)


def is_hf_host(endpoint: str) -> bool:
    host = (urllib.parse.urlparse(endpoint).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in HF_HOSTS)


@contextlib.contextmanager
def _xet_for(endpoint: str):
    """Xet off for this call unless the endpoint is huggingface.co."""
    constants = hf_module().constants
    old = constants.HF_HUB_DISABLE_XET
    if not is_hf_host(endpoint):
        constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = old


# ---------------------------------------------------------------------------------------------
# Failures as pybridge errors


def describe_place(ctx: dict) -> str:
    kind = "" if ctx.get("repo_type", "model") == "model" else f"{ctx['repo_type']} "
    where = f"{kind}repo '{ctx['repo_id']}' at revision '{ctx['revision']}'"
    if ctx.get("filename"):
        where = f"'{ctx['filename']}' in {where}"
    return where


def _status(exc) -> Optional[int]:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_network(exc) -> bool:
    import httpx2

    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return not isinstance(exc, hf_module().errors.OfflineModeIsEnabled)
    status = _status(exc)
    return (
        isinstance(exc, hf_module().errors.HfHubHTTPError)
        and status is not None
        and (status >= 500 or status in (408, 429))
    )


def translate(
    exc: BaseException,
    ctx: dict,
    s: Settings,
    offline: bool = False,
    write=False,
    exists=None,
    commit=False,
) -> errors.PybridgeError:
    """A huggingface_hub (or httpx) exception as a pybridge error with the call's context.

    A write's failure is first looked up by status (huggingface_hub wraps LFS upload failures in
    a RuntimeError, so the cause is looked at); what a write and a read share follows."""
    if write:
        while isinstance(exc, RuntimeError) and exc.__cause__ is not None:
            exc = exc.__cause__
        err = _write_status_error(exc, ctx, s, exists) or _unreadable_upload(exc, ctx)
        if err is not None:
            return err
        if commit and isinstance(exc, hf_module().errors.RevisionNotFoundError):
            return errors.RevisionNotFoundError(
                f"'{ctx['revision']}' is not a branch of repo '{ctx['repo_id']}', and commits "
                "go to a branch (a tag or a commit cannot take them). Create the branch with "
                "hub_create_branch(), or pass create_pr = TRUE.",
                **fields_of(ctx),
            )
    return _read_error(exc, ctx, s, offline)


def _unreadable_upload(exc, ctx) -> Optional[errors.PybridgeError]:
    """A file of the upload that could not be read: it vanished or changed meanwhile."""
    path = getattr(exc, "filename", None)
    if not isinstance(exc, OSError) or not isinstance(path, str) or _status(exc) is not None:
        return None  # not a local file's failure (HfHubHTTPError is an OSError too)
    if errors.storage_error(exc) is not None:
        return None
    return errors.InvalidArgumentError(
        f"{path} could not be read while it was uploaded "
        f"({exc.strerror or exc}): was it moved or changed meanwhile? Nothing was committed.",
        **{**fields_of(ctx), "path": path},
    )


def _write_status_error(exc, ctx, s: Settings, exists) -> Optional[errors.PybridgeError]:
    status = _status(exc)
    where = describe_place(ctx) if ctx.get("repo_id") else s.endpoint
    if status == 409 and exists:
        kind, name = exists
        return errors.RefExistsError(
            f"The {kind} '{name}' already exists in repo '{ctx['repo_id']}'. Pass exist_ok = TRUE "
            "to keep it as it is, or choose another name.",
            **{kind: name},
            **fields_of(ctx),
        )
    if status == 409:
        return errors.RepoExistsError(
            f"Repository '{ctx['repo_id']}' ({ctx['repo_type']}) already exists at {s.endpoint}. "
            "Pass exist_ok = TRUE to use it as it is.",
            **fields_of(ctx),
        )
    if status == 412:
        return errors.StaleParentError(
            f"{where} has moved on since parent_commit: someone committed in between. Read the "
            "new head with hub_repo_info() and try again.",
            **fields_of(ctx),
        )
    if status in (401, 403):
        return auth_error(where, s, ctx, status, write=True)
    if status in (400, 422):  # a name the Hub does not take, a file that changed on the way
        return errors.InvalidArgumentError(
            f"The Hub refused the request for {where} ({status}): "
            f"{_server_message(exc.response).rstrip('.')}. Nothing was changed.",
            **fields_of(ctx),
        )
    return None


def _read_error(exc, ctx: dict, s: Settings, offline: bool) -> errors.PybridgeError:
    e = hf_module().errors
    where = describe_place(ctx)
    tls = tls_error(exc, s.endpoint, **ctx)
    if tls is not None:
        return tls
    if isinstance(exc, e.GatedRepoError):
        token_hint = (
            f"the token (from {s.token_source}) has not been granted access"
            if s.token
            else "no token was sent"
        )
        return errors.GatedRepoError(
            f"{where} is gated and {token_hint}. Request access on its Hub page, then set "
            "HF_TOKEN to a token of an account that was granted access.",
            **ctx,
        )
    if isinstance(exc, e.RepositoryNotFoundError):
        if _status(exc) == 401 and s.token:
            return auth_error(where, s, ctx, 401)
        return errors.RepoNotFoundError(
            f"Repository '{ctx['repo_id']}' ({ctx['repo_type']}) was not found at {s.endpoint}. "
            "Check the repo id and repo_type, or set HF_TOKEN if it is private.",
            **ctx,
        )
    if isinstance(exc, e.RevisionNotFoundError):
        return errors.RevisionNotFoundError(
            f"Revision '{ctx['revision']}' does not exist in repo '{ctx['repo_id']}'. Check the "
            "branch, tag or commit; hub_repo_info() shows the current commit.",
            **ctx,
        )
    if isinstance(exc, e.RemoteEntryNotFoundError):
        return errors.EntryNotFoundError(
            f"{where} does not exist. Check the file name; hub_list_files() lists the repo's "
            "files.",
            **ctx,
        )
    if isinstance(exc, e.IncompleteSnapshotError) and not offline:
        via, proxy = _proxy_note(exc, s.endpoint)
        return errors.NetworkError(
            f"Could not reach {s.endpoint}{via} for {where}, and the cache holds only part of "
            f"it. Check the connection{_proxy_advice(proxy)} or HF_ENDPOINT, then try again.",
            **ctx,
            proxy=proxy and proxy[0],
        )
    if isinstance(exc, e.IncompleteSnapshotError) or (
        isinstance(exc, (e.LocalEntryNotFoundError, e.OfflineModeIsEnabled)) and offline
    ):
        return errors.OfflineNotCachedError(
            f"{where} is not (fully) in the cache at {s.cache_dir}, and the call is offline "
            "(HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or local_files_only). Download it once online, "
            "or point HF_HOME / HF_HUB_CACHE at a cache that has it.",
            **ctx,
        )
    if isinstance(exc, e.HfHubHTTPError) and _status(exc) in (401, 403):
        return auth_error(where, s, ctx, _status(exc))
    if isinstance(exc, e.HfHubHTTPError) and _status(exc) == 404:  # a 404 without the Hub's code
        return errors.RepoNotFoundError(
            f"{s.endpoint} answered 404 for {where}: the repository is not there, or "
            "HF_ENDPOINT is not a Hub. Check the repo id, repo_type and HF_ENDPOINT.",
            **ctx,
        )
    if isinstance(exc, ValueError) and exc.__cause__ is not None:
        # "Force download failed due to the above error.": the failure is the one above
        return _read_error(exc.__cause__, ctx, s, offline)
    cause = (exc.__cause__ or exc) if isinstance(exc, e.LocalEntryNotFoundError) else exc
    if isinstance(exc, e.LocalEntryNotFoundError) and cause is not None and cause is not exc:
        inner = _read_error(cause, ctx, s, offline)
        if not isinstance(inner, errors.PythonError):
            return inner
    if _is_network(cause) or isinstance(exc, e.LocalEntryNotFoundError):
        via, proxy = _proxy_note(cause, s.endpoint)
        return errors.NetworkError(
            f"Could not reach {s.endpoint}{via} for {where}, also after retrying "
            f"({type(cause).__name__}). Check the connection{_proxy_advice(proxy)} or "
            "HF_ENDPOINT; files already in the cache work with HF_HUB_OFFLINE=1.",
            **ctx,
            proxy=proxy and proxy[0],
        )
    if isinstance(exc, e.HFValidationError) or isinstance(exc, ValueError):
        return errors.InvalidArgumentError(f"{where}: {exc}", **ctx)
    if type(exc).__name__ == "InvalidURL" or _status(exc) == 431:  # a name or token too long
        return errors.InvalidArgumentError(
            f"{where}: the request cannot be made ({type(exc).__name__}: {exc}); is a name, "
            "the revision or the token far too long?",
            **ctx,
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return errors.InvalidArgumentError(
            f"{where}: a name is too long for the cache's file system ({s.cache_dir}).", **ctx
        )
    storage = errors.storage_error(exc, s.cache_dir, **ctx)
    if storage is not None:
        return storage
    return unforeseen(exc, where, **ctx)


def unforeseen(exc, where: str, **fields) -> errors.PythonError:
    """An exception no rule here foresaw, as the documented ``python`` error."""
    kind = type(exc).__name__
    return errors.PythonError(f"{where}: {kind}: {exc}", python_type=kind, **fields)


def _chain(exc) -> list:
    """``exc`` and the exceptions behind it, outermost first."""
    found = []
    while exc is not None and len(found) < 12 and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def _request_url(exc, fallback: str) -> str:
    """The URL of the request that failed (httpx2 keeps it on its errors), else ``fallback``."""
    for e in _chain(exc):
        try:
            return str(e.request.url)
        except (AttributeError, RuntimeError):  # no request, or httpx2's "not set"
            continue
    return fallback


def tls_error(exc, url: str, **fields) -> Optional[errors.TLSError]:
    """A certificate that could not be verified, behind ``exc``, as an error that says which
    variable to set; None for any other failure."""
    failure = next((e for e in _chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)
    if failure is None:
        return None
    target = urllib.parse.urlsplit(_request_url(exc, url))
    origin = f"{target.scheme}://{target.netloc}" if target.netloc else url
    net = _network
    cas = f"the CAs in {net.ca_variable} ({net.ca})" if net and net.ca else "the system's CAs"
    return errors.TLSError(
        f"The TLS certificate of {origin} could not be verified with {cas}: "
        f"{failure.verify_message or failure.reason}. If your network or Hub uses a certificate "
        "authority of its own, set SSL_CERT_FILE to its CA file (PEM), as in Sys.setenv("
        'SSL_CERT_FILE = "/path/to/ca.pem"); the next call uses it.',
        variable="SSL_CERT_FILE",
        **fields,
    )


def _proxy_note(exc, url: str):
    """(" through the proxy ... (from VAR)", (proxy, VAR)) when the failed request went through a
    proxy, else ("", None); with what the proxy answered to a refused tunnel."""
    import httpx2

    route = proxy_route(_request_url(exc, url))
    if route is None:
        return "", None
    refused = next((e for e in _chain(exc) if isinstance(e, httpx2.ProxyError)), None)
    answer = f", which answered {errors.safe_text(refused)}" if refused is not None else ""
    return f" through the proxy {route[0]} (from {route[1]}{answer})", route


def _proxy_advice(proxy) -> str:
    return f", the proxy ({proxy[1]}) and no_proxy," if proxy else ""


def fetch(url: str, timeout: float, what: str) -> bytes:
    """The body of a plain URL (an image to classify), on the shared session, once; a failure is
    a NetworkError naming ``what``."""
    import httpx2

    try:
        return _body_within(url, timeout)
    except httpx2.HTTPStatusError as exc:
        status = exc.response.status_code
        raise errors.NetworkError(
            f"Could not download {what} {url}: the server answered HTTP {status}.",
            url=url,
            status=status,
        ) from None
    except httpx2.HTTPError as exc:
        raise errors.NetworkError(
            f"Could not download {what} {url} ({type(exc).__name__}: {exc}).", url=url
        ) from None


def _body_within(url: str, timeout: float) -> bytes:
    """The body of ``url`` in ``timeout`` seconds in all: httpx2's timeout bounds each read,
    so a server that sends a byte now and then would hold the call for ever."""
    import httpx2

    deadline = time.monotonic() + timeout
    session = hf_module().get_session()
    with session.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
        response.raise_for_status()
        chunks = []
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise httpx2.ReadTimeout(f"the body took longer than {timeout:g} s")
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Inference endpoints' failures (pybridge.inference's failover chain)

INFERENCE_BACKOFF = 0.5
INFERENCE_FATAL_STATUSES = (400, 401, 403, 404, 413, 422)


def translate_inference(exc, where: str, what: str, timeout: float, sent: str):
    """An inference endpoint's failure as (the pybridge error, seconds to wait before trying
    again, or None: no retry). 429 and 502-504 wait (Retry-After when sent), timeouts and
    refused connections wait INFERENCE_BACKOFF; 401, 403, 400, 404, 413 and 422 never retry.
    ``sent`` says which key went (never the key itself)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, TextGenerationError

    tls = tls_error(exc, where, endpoint=where)
    if tls is not None:
        return tls, None
    if isinstance(exc, (InferenceTimeoutError, httpx2.TimeoutException, TimeoutError)):
        msg = f"{where} did not answer {what} within {timeout:g} s."
        return errors.NetworkError(msg, endpoint=where), INFERENCE_BACKOFF
    if isinstance(exc, (httpx2.TransportError, ConnectionError)):
        via, proxy = _proxy_note(exc, where)
        msg = f"Could not reach {where}{via} for {what} ({type(exc).__name__}: {exc})."
        err = errors.NetworkError(msg, endpoint=where, proxy=proxy and proxy[0])
        return err, INFERENCE_BACKOFF
    if isinstance(exc, TextGenerationError):  # a TGI error body or stream event
        return _generation_error(exc, where, what)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if not isinstance(exc, HfHubHTTPError) or status is None:
        return unforeseen(exc, where, endpoint=where), None
    detail = _server_message(exc.response)
    retry_after = _retry_after(exc.response)
    if status == 429:
        wait = INFERENCE_BACKOFF if retry_after is None else retry_after
        msg = f"{where} is rate-limiting {what}: {detail} Try again in {wait:g} s."
        return errors.RateLimitError(msg, endpoint=where, retry_after=wait), wait
    if status in (502, 503, 504):
        wait = INFERENCE_BACKOFF if retry_after is None else retry_after
        msg = f"{where} is overloaded or not ready ({status}): {detail}"
        return errors.OverloadedError(msg, endpoint=where, retry_after=wait, status=status), wait
    if status in (401, 403):
        msg = f"{where} refused the request ({status}; hfbridge sent {sent}): {detail}"
        return errors.AuthError(msg, endpoint=where, status=status), None
    if _is_context_length(detail):
        msg = f"The request does not fit the model's context at {where}: {detail}"
        return errors.ContextLengthError(msg, endpoint=where), None
    if status in INFERENCE_FATAL_STATUSES:
        msg = f"{where} refused the request as not valid ({status}): {detail}"
        return errors.ValidationError(msg, endpoint=where, status=status), None
    if status < 500:
        advice = " Check the endpoint's URL." if status == 405 else ""
        msg = f"{where} refused the request ({status}): {detail}{advice}"
        return errors.ValidationError(msg, endpoint=where, status=status), None
    msg = f"{where} failed on its side ({status}): {detail}"
    return errors.NetworkError(msg, endpoint=where, status=status), None


def _generation_error(exc, where: str, what: str):
    """huggingface_hub's reading of a TGI error ("error_type" validation, overloaded, generation,
    incomplete_generation): overloaded waits and retries, the others are the request's."""
    from huggingface_hub.errors import OverloadedError

    if isinstance(exc, OverloadedError):
        msg = f"{where} is overloaded: {exc}"
        return errors.OverloadedError(msg, endpoint=where, retry_after=INFERENCE_BACKOFF), (
            INFERENCE_BACKOFF
        )
    msg = f"{where} could not answer {what} ({type(exc).__name__}): {exc}"
    return errors.ValidationError(msg, endpoint=where), None


def _server_message(response) -> str:
    """The message of an error answer: OpenAI's {"error": {"message"}}, TGI's {"error"}."""
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - not JSON, or a body already consumed by a stream
        try:
            return (response.text or "").strip()[:300] or "(no message)"
        except Exception:  # noqa: BLE001
            return "(no message)"
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        err = err.get("message") or err.get("error") or err
    return str(err)[:300]


def _retry_after(response) -> Optional[float]:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _is_context_length(detail: str) -> bool:
    d = detail.lower()
    return "context length" in d or "context_length" in d or "maximum context" in d


def auth_error(where, s: Settings, ctx, status, write=False) -> errors.AuthError:
    """401 and 403, for reads and writes: the one place their messages are written."""
    fields = fields_of(ctx)
    if not s.token:
        return errors.AuthError(
            f"The Hub needs a token for {where} and none was sent. Set HF_TOKEN, or write the "
            "token to $HF_HOME/token.",
            **fields,
        )
    if write and status == 403:
        return errors.AuthError(
            f"The token (from {s.token_source}) may not write to {where}. Use a token with write "
            "access to this repo.",
            **fields,
        )
    public = "" if write else ", or unset it for a public repo"
    return errors.AuthError(
        f"The Hub refused the token (from {s.token_source}) for {where}. Check HF_TOKEN or the "
        f"token file{public}.",
        **fields,
    )
