"""A verified token's claims, kept per process: the same bearer token arrives on every request.

Decoding a JWT (PyJWT's base64, JSON, HMAC and claim checks, then Litestar's conversion) was
the largest cost of an authenticated request once the user's row was kept (bench/README.md,
"reads"). A token string that verified once has the same claims every time, so its decoded
``Token`` is kept by the exact string (and secret and algorithm) for as long as it is valid;
expiry is checked again on every use, as PyJWT checks it (``exp`` at or before now: refused).
Only a token that passed the full check is kept, so a forged or altered string never hits;
options other than the defaults the app uses skip the cache.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime

from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

#: Tokens kept per process at most; when full, the kept ones are dropped and collected again.
MAX_KEPT = 20_000

_kept: dict[tuple[str, str, str], Token] = {}


class KeptToken(Token):
    @classmethod
    def decode(  # type: ignore[override]  # Litestar's signature, returning Token
        cls,
        encoded_token: str,
        secret: str,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        require_claims: Sequence[str] | None = None,
        verify_exp: bool = True,
        verify_nbf: bool = True,
        strict_audience: bool = False,
    ) -> Token:
        plain = (
            audience is None and issuer is None and not require_claims
            and verify_exp and verify_nbf and not strict_audience
        )  # fmt: skip
        if not plain:
            return super().decode(
                encoded_token, secret, algorithm, audience, issuer, require_claims, verify_exp,
                verify_nbf, strict_audience,
            )  # fmt: skip
        key = (encoded_token, secret, algorithm)
        token = _kept.get(key)
        if token is None:
            token = super().decode(encoded_token, secret, algorithm)
            if "nbf" not in token.extras:  # a not-before time would need checking too: not kept
                if len(_kept) >= MAX_KEPT:
                    _kept.clear()
                _kept[key] = token
        elif token.exp <= datetime.now(UTC):
            del _kept[key]
            raise NotAuthorizedException("Invalid token")
        return copy.copy(token)  # each request its own object
