"""The Hugging Face environment variables of one call, resolved as huggingface_hub 2.4 does.

R reads the variables of :data:`ENV_NAMES` with Sys.getenv() at every call and passes them here,
because Sys.setenv() in R after Python has started does not reach os.environ (and
huggingface_hub reads most of them only once, at import). Python callers may pass nothing, and
then os.environ is read. docs/environment.md lists every variable huggingface_hub reads and what
hfbridge does with it.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from .errors import InvalidArgumentError, register_secret

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 10  # huggingface_hub's DEFAULT_ETAG_TIMEOUT and DEFAULT_DOWNLOAD_TIMEOUT
_TRUE = {"1", "ON", "YES", "TRUE"}

# huggingface_hub.constants attributes that follow a boolean variable of the same name; hub.py
# sets them for the length of each call.
FLAG_CONSTANTS = ("HF_HUB_DISABLE_SYMLINKS", "HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_SHARED_BLOBS")
# Any of these true sets constants.HF_HUB_DISABLE_TELEMETRY (a shorter user-agent).
TELEMETRY_NAMES = ("HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "DO_NOT_TRACK")

# The proxy and CA variables, read as Python's HTTP clients read them: urllib's getproxies()
# (lower case wins, and a lower-case empty value unsets) for httpx2, and the CA files of httpx2
# (SSL_CERT_FILE, SSL_CERT_DIR) and requests (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE).
PROXY_SCHEMES = ("http", "https", "all")
PROXY_NAMES = tuple(
    name
    for scheme in PROXY_SCHEMES + ("no",)
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
)
CA_NAMES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
NETWORK_NAMES = PROXY_NAMES + CA_NAMES

ENV_NAMES = (
    (
        "HF_HOME",
        "XDG_CACHE_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_ASSETS_CACHE",
        "HUGGINGFACE_ASSETS_CACHE",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
        "HF_HUB_ETAG_TIMEOUT",
        "HF_HUB_DOWNLOAD_TIMEOUT",
        "HF_HUB_DISABLE_PROGRESS_BARS",
    )
    + FLAG_CONSTANTS
    + TELEMETRY_NAMES
    + NETWORK_NAMES
)


@dataclass(frozen=True)
class Network:
    """The proxies and CA of one call. Two equal values give the same HTTP session
    (:func:`pybridge.hub_call.follow_network`)."""

    proxies: Tuple[Tuple[str, str, str], ...] = ()  # (scheme or "all", proxy URL, variable)
    no_proxy: str = ""
    ca: Optional[str] = None  # a CA file or folder
    ca_variable: Optional[str] = None

    def __repr__(self) -> str:  # never the proxies' credentials
        shown = ", ".join(f"{var}={proxy_label(url)}" for _, url, var in self.proxies)
        return f"Network({shown}; no_proxy={self.no_proxy!r}; {self.ca_variable}={self.ca!r})"


def proxy_label(url: str) -> str:
    """A proxy URL without its user and password, for messages. Read as text, not parsed, so
    that a malformed URL (an unencoded "@" or "/" in the password) loses them too."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if "@" in rest else url


@dataclass(frozen=True)
class Settings:
    cache_dir: str
    endpoint: str
    offline: bool
    token: Optional[str]
    token_source: str
    hf_home: str
    etag_timeout: int = DEFAULT_TIMEOUT
    download_timeout: int = DEFAULT_TIMEOUT
    progress_bars: Optional[bool] = None  # False: HF_HUB_DISABLE_PROGRESS_BARS is true
    flags: Dict[str, bool] = field(default_factory=dict)
    network: Network = Network()

    @property
    def hf_token_arg(self):
        """What to pass as huggingface_hub's ``token=``: the token, or False to send none."""
        return self.token if self.token else False


def _clean(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _is_true(value: Optional[str]) -> bool:
    return value is not None and value.upper() in _TRUE


_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def _expand(path: str, env: Mapping[str, str]) -> str:
    """os.path.expandvars(os.path.expanduser(path)), with the variables of ``env`` first (R's
    view), then os.environ; unknown variables stay as written, as expandvars leaves them."""

    def value(match):
        name = match.group(1).strip("{}")
        found = env.get(name, os.environ.get(name))
        return match.group(0) if found is None else str(found)

    return _VAR.sub(value, os.path.expanduser(path))


def _timeout(env: Mapping[str, str], name: str) -> int:
    """As huggingface_hub: an integer number of seconds; 0 or unset means the default."""
    value = _clean(env, name)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise InvalidArgumentError(
            f"{name} must be a whole number of seconds (0 for the default), not '{value}'. Fix "
            "or unset it.",
            argument=name,
        )
    return seconds or DEFAULT_TIMEOUT


def resolve(env: Optional[Mapping[str, str]] = None, token: Optional[str] = None) -> Settings:
    """Settings from ``env`` (R's view of the environment) or os.environ."""
    env = os.environ if env is None else env
    if not isinstance(env, Mapping):  # R's hf_env() with no HF_* set arrives as an empty list
        env = dict(env or {})
    xdg = _clean(env, "XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    hf_home = _expand(_clean(env, "HF_HOME") or os.path.join(xdg, "huggingface"), env)
    cache_dir = _expand(
        _clean(env, "HF_HUB_CACHE")
        or _clean(env, "HUGGINGFACE_HUB_CACHE")
        or os.path.join(hf_home, "hub"),
        env,
    )
    endpoint = (_clean(env, "HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    if "@" in endpoint:
        register_url_credentials(endpoint)
    _check_endpoint(endpoint)
    # As huggingface_hub: HF_HUB_OFFLINE when set (even to "0"), else TRANSFORMERS_OFFLINE.
    offline = _is_true(_clean(env, "HF_HUB_OFFLINE") or _clean(env, "TRANSFORMERS_OFFLINE"))
    found, source = _resolve_token(env, hf_home, token)
    register_secret(found)
    _check_token(found, source)
    bars = _clean(env, "HF_HUB_DISABLE_PROGRESS_BARS")
    return Settings(
        cache_dir,
        endpoint,
        offline,
        found,
        source,
        hf_home,
        etag_timeout=_timeout(env, "HF_HUB_ETAG_TIMEOUT"),
        download_timeout=_timeout(env, "HF_HUB_DOWNLOAD_TIMEOUT"),
        progress_bars=None if bars is None else not _is_true(bars),
        flags={
            **{name: _is_true(_clean(env, name)) for name in FLAG_CONSTANTS},
            "HF_HUB_DISABLE_TELEMETRY": any(_is_true(_clean(env, n)) for n in TELEMETRY_NAMES),
        },
        network=_network(tuple(env.get(name) for name in NETWORK_NAMES)),
    )


def check_url(url: str) -> None:
    """ValueError unless ``url`` parses with a host (and a port that is a number, if any)."""
    parts = urllib.parse.urlsplit(url)
    parts.port  # noqa: B018 - reading it raises for a port that is not a number
    if not parts.hostname:
        raise ValueError(f"no host in '{url}'")


@functools.lru_cache(maxsize=16)
def _check_endpoint(endpoint: str) -> None:
    """HF_ENDPOINT as an http(s) URL with a host; checked once per value."""
    try:
        check_url(endpoint)
        ok = urllib.parse.urlsplit(endpoint).scheme in ("http", "https")
    except ValueError:
        ok = False
    if not ok:
        raise InvalidArgumentError(
            f"HF_ENDPOINT must be an http(s) URL such as https://huggingface.co or "
            f"http://127.0.0.1:8080, not '{endpoint}'. Fix or unset it.",
            argument="HF_ENDPOINT",
        )


@functools.lru_cache(maxsize=16)
def _network(values: tuple) -> Network:
    """The Network of the NETWORK_NAMES values (None: unset), cached: the same values at every
    call cost a lookup."""
    env = {name: str(v) for name, v in zip(NETWORK_NAMES, values) if v is not None}
    proxies = []
    for scheme in PROXY_SCHEMES:
        found = _proxy_variable(env, scheme)
        if found is not None:
            value, name = found
            url = value if "://" in value else f"http://{value}"  # as httpx2 reads a bare host
            register_url_credentials(url)
            proxies.append((scheme, url, name))
    no_proxy = _proxy_variable(env, "no")
    ca = next(((_clean(env, n), n) for n in CA_NAMES if _clean(env, n)), (None, None))
    return Network(tuple(proxies), no_proxy[0] if no_proxy else "", *ca)


def _proxy_variable(env: Mapping[str, str], scheme: str):
    """(value, variable) as urllib.request.getproxies_environment() picks it, or None."""
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
        value = env.get(name)
        if value is not None and (value or name.islower()):
            return (value, name) if value else None
    return None


def register_url_credentials(url: str) -> None:
    """A URL's user:password and password (as written and decoded) never reach a message: a
    proxy's, an endpoint's, HF_ENDPOINT's."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    if not password:
        return
    for secret in (userinfo, password, urllib.parse.unquote(password)):
        register_secret(secret)


_TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]+")


def _check_token(token, source) -> None:
    """A token goes into an HTTP header, which holds printable ASCII only: a token with a
    space, a line break or other text inside is a pasting slip, and would fail as a protocol
    error (or, with a line break, add a header)."""
    if token and not _TOKEN_CHARACTERS.fullmatch(token):
        raise InvalidArgumentError(
            f"The token (from {source}) holds a space, a line break or a character that is not "
            "printable ASCII, which no token has. Copy it again from your Hub settings.",
            argument="token" if source == "argument" else source,
        )


def _resolve_token(env, hf_home, explicit):
    """huggingface_hub's order: argument, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the token file."""
    if explicit:
        return str(explicit).strip(), "argument"
    if _is_true(_clean(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN")):
        return None, "none (HF_HUB_DISABLE_IMPLICIT_TOKEN)"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = _clean(env, name)
        if value:
            return value, name
    path = _expand(_clean(env, "HF_TOKEN_PATH") or os.path.join(hf_home, "token"), env)
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError:
        value = ""
    if value:
        return value, "token file"
    return None, "none"
