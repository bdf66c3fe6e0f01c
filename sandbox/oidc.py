"""A loopback OpenID Connect provider: discovery, authorization, token and JWKS endpoints.

It follows OpenID Connect Core 1.0 and Discovery 1.0 for the Authorization Code flow with PKCE
(RFC 7636, S256 only):

- `GET /.well-known/openid-configuration`: the discovery document (`issuer`, the endpoints,
  `jwks_uri`, supported response types, scopes, claims, signing algorithms RS256).
- `GET /authorize`: checks `client_id`, `redirect_uri`, `response_type=code`, `scope` holding
  `openid`, a `code_challenge` (S256); then redirects (302) to `redirect_uri` with `code` and
  `state`. No login page: the test hook `sign_in_as(email)` picks the user, `refuse_next(error)`
  answers with `error=access_denied` (or another error code) and the state instead.
- `POST /token`: `grant_type=authorization_code`, the code (single use, 60 s), the same
  `redirect_uri`, the PKCE `code_verifier`, and the client's secret (HTTP Basic or in the form).
  Errors are RFC 6749 section 5.2 JSON (`invalid_grant`, `invalid_client`, status 400/401). The answer
  holds an `access_token` and an RS256 `id_token` with `iss`, `sub`, `aud`, `exp`, `iat`, `nonce`,
  `email` and `email_verified`, its header naming the key (`kid`).
- `GET|POST /logout`: the `end_session_endpoint` of RP-Initiated Logout 1.0. An `id_token_hint` must
  be an ID token this provider issued (its signature, `iss`; an expired one is still accepted, as the
  spec asks) whose `aud` is the `client_id` when both are sent; otherwise 400. It redirects (302) only
  to a `post_logout_redirect_uri` registered for the client (`post_logout_redirect_uris`, exact
  match), with `state` when one was sent, and only when the client is known (by the hint or
  `client_id`); else it answers with its own "signed out" page (200). Each sign-out is recorded in
  `signed_out` (the hint's `sub`). `offer_end_session = False` leaves the endpoint out of discovery.
- `GET /jwks`: the public keys. Hooks: `rotate_keys()` (a new signing key; the old one is gone from
  the set), `sign_next_with_wrong_key()`, `tamper_next(claims)` (override claims of the next token,
  e.g. `aud`, `nonce`, `exp`).

Time comes from `now` (seconds since the epoch), so tests share the app's frozen clock.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from sandbox.base import Imitation, Request, Response, route

#: An authorization code must be redeemed this soon (the spec recommends a short life).
CODE_LIFETIME = 60
ID_TOKEN_LIFETIME = 300


@dataclass
class User:
    email: str
    email_verified: bool = True
    sub: str = ""


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: User
    issued: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OIDCProvider(Imitation):
    """An identity provider with one registered client."""

    name = "oidc"

    def __init__(self, *, client_id: str = "mainland", client_secret: str = "provider-secret-0123456789",
                 redirect_uris: tuple[str, ...] = (), post_logout_redirect_uris: tuple[str, ...] = (),
                 now: Callable[[], float] = time.time, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.client_id = client_id
        self.client_secret = client_secret
        # Empty: any redirect_uri is accepted (tests that do not know the app's address in advance).
        self.redirect_uris = set(redirect_uris)
        # Where /logout may send the browser back to; unlike redirect_uris, empty means nowhere.
        self.post_logout_redirect_uris = set(post_logout_redirect_uris)
        self.offer_end_session = True
        #: The `sub` of each sign-out at /logout (None when no ID token named the user).
        self.signed_out: list[str | None] = []
        self.now = now
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4)})
        # Every key it ever signed with: an ID token from before a rotation is still its own at /logout.
        self._issued_with = [self.key]
        self._wrong_key = False
        self._refuse: str | None = None
        self._claims_override: dict[str, Any] = {}
        self._user: User | None = None
        self._grants: dict[str, _Grant] = {}

    # Test hooks ----------------------------------------------------------------------------------

    def sign_in_as(self, email: str, *, email_verified: bool = True) -> None:
        """Who approves the next authorization requests (until changed)."""
        self._user = User(email, email_verified, sub="sub-" + hashlib.sha256(email.encode()).hexdigest()[:12])

    def refuse_next(self, error: str = "access_denied") -> None:
        """The next /authorize answers with this error, as when the user clicks "Cancel"."""
        self._refuse = error

    def rotate_keys(self) -> None:
        """Sign with a new key from now on; the old public key leaves the JWKS."""
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4)})
        self._issued_with.append(self.key)

    def sign_next_with_wrong_key(self) -> None:
        """The next ID token is signed by a key the JWKS does not hold, under the published `kid`."""
        self._wrong_key = True

    def tamper_next(self, **claims: Any) -> None:
        """Override claims of the next ID token (e.g. aud="someone-else", nonce="x", exp=0)."""
        self._claims_override = dict(claims)

    # Endpoints -----------------------------------------------------------------------------------

    @route("GET", r"/\.well-known/openid-configuration")
    def discovery(self, request: Request) -> Response:
        document = {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
        }
        if self.offer_end_session:
            document["end_session_endpoint"] = f"{self.url}/logout"
        return 200, document

    @route("GET", r"/jwks")
    def jwks(self, request: Request) -> Response:
        return 200, {"keys": [self.key.as_dict(private=False)]}

    @route("GET", r"/authorize")
    def authorize(self, request: Request) -> Response:
        redirect_uri = request.arg("redirect_uri") or ""
        if request.arg("client_id") != self.client_id or not redirect_uri or (
                self.redirect_uris and redirect_uri not in self.redirect_uris):
            # The spec: never redirect to an unverified redirect_uri; tell the user instead.
            return 400, "unknown client or redirect_uri"
        state = request.arg("state")
        error = self._authorize_error(request)
        if error is None and self._refuse:
            error, self._refuse = self._refuse, None
        if error is None and self._user is None:
            error = "login_required"
        if error:
            return 302, "", {"Location": _with_params(redirect_uri, {"error": error, "state": state})}
        code = secrets.token_urlsafe(24)
        with self.lock:
            self._grants[code] = _Grant(self.client_id, redirect_uri, request.arg("code_challenge") or "",
                                        request.arg("nonce"), self._user, self.now())
        return 302, "", {"Location": _with_params(redirect_uri, {"code": code, "state": state})}

    @route("POST", r"/token")
    def token(self, request: Request) -> Response:
        form = request.form()
        client_id, secret = _client_credentials(request, form)
        if client_id != self.client_id or not secrets.compare_digest(secret or "", self.client_secret):
            return 401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="oidc"'}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self.lock:
            grant = self._grants.pop(form.get("code", ""), None)  # single use
        if grant is None or self.now() - grant.issued > CODE_LIFETIME:
            return 400, {"error": "invalid_grant", "error_description": "unknown, used or expired code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        if not grant.challenge or _s256(form.get("code_verifier", "")) != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                     "expires_in": ID_TOKEN_LIFETIME, "id_token": self._id_token(grant)}, {"Cache-Control": "no-store"}

    @route("GET", r"/logout")
    def end_session(self, request: Request) -> Response:
        return self._end_session({k: v[0] for k, v in request.query.items() if v})

    @route("POST", r"/logout")
    def end_session_by_form(self, request: Request) -> Response:
        return self._end_session(request.form())

    def _end_session(self, params: dict[str, str]) -> Response:
        """RP-Initiated Logout 1.0, section 2 and 3."""
        client_id = params.get("client_id")
        claims: dict[str, Any] | None = None
        if params.get("id_token_hint"):
            claims = self._own_id_token(params["id_token_hint"])
            if claims is None:
                return 400, "id_token_hint is not an ID token issued here"
            if client_id is not None and claims.get("aud") != client_id:
                return 400, "client_id differs from the ID token's audience"
            client_id = claims.get("aud")
        with self.lock:
            self.signed_out.append(claims.get("sub") if claims else None)
            self._user = None
        target = params.get("post_logout_redirect_uri")
        if target and client_id == self.client_id and target in self.post_logout_redirect_uris:
            state = params.get("state")
            return 302, "", {"Location": _with_params(target, {"state": state}) if state else target}
        # No (registered) place to go back to: the provider's own page; never an unverified redirect.
        return 200, "You are signed out."

    def _own_id_token(self, token: str) -> dict[str, Any] | None:
        """The claims of an ID token this provider signed (expiry not checked), or None."""
        for key in self._issued_with:
            try:
                claims = jwt.decode(token, KeySet([key])).claims
            except (JoseError, ValueError, TypeError):
                continue
            return claims if claims.get("iss") == self.url else None
        return None

    # Helpers -------------------------------------------------------------------------------------

    def _authorize_error(self, request: Request) -> str | None:
        if request.arg("response_type") != "code":
            return "unsupported_response_type"
        if "openid" not in (request.arg("scope") or "").split():
            return "invalid_scope"
        if not request.arg("code_challenge") or request.arg("code_challenge_method") != "S256":
            return "invalid_request"
        return None

    def _id_token(self, grant: _Grant) -> str:
        now = int(self.now())
        claims: dict[str, Any] = {"iss": self.url, "sub": grant.user.sub, "aud": grant.client_id,
                                  "iat": now, "exp": now + ID_TOKEN_LIFETIME, "email": grant.user.email,
                                  "email_verified": grant.user.email_verified}
        if grant.nonce:
            claims["nonce"] = grant.nonce
        claims.update(self._claims_override)
        self._claims_override = {}
        key = self.key
        if self._wrong_key:
            self._wrong_key = False
            key = RSAKey.generate_key(2048, parameters={"kid": self.key.kid})
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, KeySet([key]))


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
    if auth.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return unquote_plus(client_id), unquote_plus(secret)
    return form.get("client_id"), form.get("client_secret")


def _with_params(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if "?" in uri else "?") + query
