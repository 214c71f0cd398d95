"""Bearer tokens for the write endpoints, and the rule for binding to a network address.

The token comes from a file (``--token-file``, surrounding whitespace stripped) or the
environment variable ``ADAPTLOOP_TOKEN``; it is compared in constant time. Without a token,
the service binds only to a loopback address.

>>> check = TokenCheck("s3cret")
>>> check.allows("Bearer s3cret"), check.allows("Bearer nope"), check.allows(None)
(True, False, False)
>>> TokenCheck(None).allows(None)
True
>>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
(True, True, False)
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

from adaptloop.serve.errors import InputError, Namer

TOKEN_ENV = "ADAPTLOOP_TOKEN"


def load_token(token_file: str | Path | None = None, env: str = TOKEN_ENV) -> str | None:
    """The configured token: from ``token_file`` if given, else ``$ADAPTLOOP_TOKEN``, else None
    (``InputError``, field ``token_file``, when the file is missing or empty).

    >>> load_token(None, env="ADAPTLOOP_NO_SUCH_VARIABLE") is None
    True
    """
    if token_file is not None:
        path = Path(token_file)
        if not path.is_file():
            raise InputError("token_file", f"no such file: {path}")
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise InputError("token_file", f"{path} is empty")
        return token
    token = os.environ.get(env, "").strip()
    return token or None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UnsafeBind(InputError):
    """A non-loopback ``host`` without a token: anyone on the network could write."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__("host", f"refusing to serve on {host} without a token")

    def describe(self, name: Namer = str) -> str:
        return f"{self.detail} ({name('token_file')} or {TOKEN_ENV})"


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback ``host`` without a token (:class:`UnsafeBind`, field ``host``).

    >>> check_bind("0.0.0.0", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptloop.serve.auth.UnsafeBind: host: refusing to serve on 0.0.0.0 without a token (...)
    """
    if token is None and not is_loopback(host):
        raise UnsafeBind(host)


class TokenCheck:
    """Checks an ``Authorization`` header against the token (everything passes without one)."""

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else token.encode()

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def allows(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[7:].strip().encode(), self._token)
