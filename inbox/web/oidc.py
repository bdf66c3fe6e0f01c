"""Signing in through an OpenID Connect provider (the `oidc` section of the config; off without it).

The flow is the Authorization Code flow with PKCE (S256), `state` and `nonce`, through Authlib:

1. `GET /login/oidc` (the "Sign in with ..." link) reads the provider's discovery document
   (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the configured one), keeps
   state, nonce, PKCE verifier and the time in the session, and redirects to the provider's
   authorization endpoint. A link, not a form: the pages' CSP `form-action 'self'` would stop a
   form's redirect to another site in the browser. Starting a flow changes nothing but the
   visitor's own session; what signs in is the callback, and only with this session's state.
2. `GET /login/oidc/callback` takes the flow out of the session (so it works once), checks that it
   is younger than `FLOW_MAX_AGE` and that `state` matches, redeems the code at the token endpoint
   with the client secret and the verifier, and verifies the ID token against the provider's JWKS
   (signature, `iss`, `aud`, `exp`, `iat`, `nonce`: Authlib's `CodeIDToken`, against Mainland's
   clock). An unknown `kid` fetches the JWKS once more, so a provider's key rotation just works.
3. The agent is the ACTIVE agent whose email is the token's `email`, and only when `email_verified`
   is true. Nobody is created: admins invite people. The session starts as after a password
   (`start_session`, audited `login` with `via: oidc`) but without the TOTP step: the provider's
   own sign-in, with its own second factor, stands in for both (docs/accounts.md).

Signing out (RP-Initiated Logout 1.0): the callback keeps the ID token in the session, for as long as
the session lasts and no longer. Signing out ends our session first; then, when the provider's
discovery document names an `end_session_endpoint`, the browser is sent there with `id_token_hint`,
`client_id` and `post_logout_redirect_uri` (our sign-in page, to be registered at the provider) so
that the provider's session ends too. The sign-out is a form post and the pages' CSP
`form-action 'self'` stops a form's redirect to another site, so the answer is a short page that
moves on by itself (meta refresh, with a link). Without the endpoint, or with the provider
unreachable, the sign-out is local only.

Every refusal (the provider's `error=...`, a wrong state, an old flow, a token that fails a check,
an unknown or disabled agent, an unreachable provider) is a page saying so, audited as
`oidc_refused` with the reason, never a 500; refusals count against the sign-in rate limit.
`oidc.allow_password_sign_in: false` takes the password form away (and refuses its posts).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from inbox import clock
from inbox.i18n import gettext as _
from inbox.store import now_iso
from inbox.web import get_store
from inbox.web.auth import LOGIN_ADDRESS_LIMIT, safe_next, start_session
from inbox.web.security import limiter

log = logging.getLogger(__name__)

bp = Blueprint("oidc", __name__)

#: The user must come back from the provider within this time.
FLOW_MAX_AGE = dt.timedelta(minutes=10)
#: Discovery document and keys are read again after this long (or at once when a `kid` is unknown).
METADATA_MAX_AGE = 3600
#: Where the session keeps the ID token, for `id_token_hint` at sign-out.
ID_TOKEN_KEY = "oidc_id_token"
#: Seconds of clock difference with the provider tolerated on `exp` and `iat`.
LEEWAY = 60
HTTP_TIMEOUT = 10


class Refused(Exception):
    """The sign-in cannot go on; `reason` goes to the audit log, `message` to the person."""

    def __init__(self, reason: str, message: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status


def settings() -> dict[str, Any] | None:
    """The `oidc` section of the config, or None when single sign-on is off."""
    return current_app.config["MAINLAND"].extra.get("oidc") or None


def password_sign_in_allowed() -> bool:
    oidc = settings()
    return oidc is None or bool(oidc.get("allow_password_sign_in", True))


def button_label() -> str | None:
    """What the "Sign in with ..." button names, or None when there is no button."""
    oidc = settings()
    return str(oidc.get("button_label") or _("single sign-on")) if oidc else None


# The provider -----------------------------------------------------------------------------------

def _get_json(url: str) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT, headers={"Accept": "application/json"})
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("OIDC provider unreachable at %s: %s", url, exc)
        raise _unreachable() from exc
    if not isinstance(data, dict):
        raise _unreachable()
    return data


def _unreachable() -> Refused:
    return Refused("provider_unreachable",
                   _("The sign-in service cannot be reached just now. Try again in a minute."), 502)


def _cache() -> dict[str, Any]:
    return current_app.extensions.setdefault("oidc", {})


def metadata(oidc: dict[str, Any]) -> dict[str, Any]:
    """The provider's discovery document, checked (OpenID Connect Discovery 1.0, section 4.3)."""
    issuer = str(oidc["issuer"]).rstrip("/")
    cached = _cache().get("metadata")
    if cached and cached[0] == issuer and time.monotonic() - cached[1] < METADATA_MAX_AGE:
        return cached[2]
    document = _get_json(issuer + "/.well-known/openid-configuration")
    if str(document.get("issuer", "")).rstrip("/") != issuer or not all(
            document.get(k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")):
        log.warning("OIDC discovery document of %s names issuer %r or lacks endpoints", issuer,
                    document.get("issuer"))
        raise _unreachable()
    _cache()["metadata"] = (issuer, time.monotonic(), document)
    _cache().pop("jwks", None)
    return document


def _key_set(document: dict[str, Any], *, fresh: bool = False) -> KeySet:
    cached = _cache().get("jwks")
    if cached and not fresh and time.monotonic() - cached[0] < METADATA_MAX_AGE:
        return cached[1]
    try:
        keys = KeySet.import_key_set(_get_json(document["jwks_uri"]))
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise _unreachable() from exc
    _cache()["jwks"] = (time.monotonic(), keys)
    return keys


def _client(oidc: dict[str, Any]) -> OAuth2Session:
    return OAuth2Session(client_id=str(oidc["client_id"]), client_secret=str(oidc["client_secret"]),
                         scope="openid email", redirect_uri=redirect_uri(), code_challenge_method="S256")


def redirect_uri() -> str:
    """The callback address registered with the provider: the base URL's, not the request's Host."""
    return current_app.config["MAINLAND"].base_url + url_for("oidc.callback")


def verified_claims(oidc: dict[str, Any], document: dict[str, Any], id_token: str, nonce: str) -> CodeIDToken:
    """The ID token's claims, after checking signature, issuer, audience, expiry and nonce."""
    registry = JWSRegistry(algorithms=document.get("id_token_signing_alg_values_supported") or ["RS256"])
    try:
        try:
            token = jwt.decode(id_token, _key_set(document), registry=registry)
        except InvalidKeyIdError:
            # The provider rotated its keys since we last read them.
            token = jwt.decode(id_token, _key_set(document, fresh=True), registry=registry)
        claims = CodeIDToken(token.claims, token.header,
                             {"iss": {"essential": True, "value": document["issuer"]},
                              "aud": {"essential": True, "value": str(oidc["client_id"])}},
                             {"nonce": nonce, "client_id": str(oidc["client_id"])})
        claims.validate(now=int(clock.now().timestamp()), leeway=LEEWAY)
    except (JoseError, ValueError, TypeError) as exc:
        log.warning("OIDC ID token refused: %r", exc)
        raise Refused("invalid_id_token", _("The sign-in service's answer could not be verified.")) from exc
    return claims


# Views --------------------------------------------------------------------------------------------

def _failed(response) -> bool:
    """Only refusals count against the limit: a sign-in or a trip to the provider costs nothing."""
    return response.status_code != 302


def _configured() -> dict[str, Any]:
    oidc = settings()
    if oidc is None:
        abort(404)
    return oidc


@bp.get("/login/oidc")
@limiter.limit(LOGIN_ADDRESS_LIMIT, deduct_when=_failed)
def start():
    oidc = _configured()
    if request.method != "GET":
        abort(405)  # a HEAD (which Flask answers with this view) starts no flow
    try:
        document = metadata(oidc)
    except Refused as refused:
        return _refuse(refused)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    url, _state = _client(oidc).create_authorization_url(document["authorization_endpoint"], state=state,
                                                          code_verifier=verifier, nonce=nonce)
    session["oidc_flow"] = {"state": state, "nonce": nonce, "verifier": verifier,
                            "at": int(clock.now().timestamp()), "next": safe_next(request.args.get("next"))}
    return redirect(url)


@bp.get("/login/oidc/callback")
@limiter.limit(LOGIN_ADDRESS_LIMIT, deduct_when=_failed)
def callback():
    oidc = _configured()
    if request.method != "GET":
        # Flask answers HEAD with this view: a HEAD must not sign anyone in (nor use up the flow).
        abort(405)
    flow = session.pop("oidc_flow", None)
    try:
        agent, id_token = _agent_from_callback(oidc, flow)
    except Refused as refused:
        return _refuse(refused)
    _audit_login(agent["id"])
    start_session(agent)
    # Only for signing out at the provider (end_session_url): it goes with the session.
    session[ID_TOKEN_KEY] = id_token
    return redirect(flow["next"])


def _agent_from_callback(oidc: dict[str, Any], flow: Any) -> tuple[dict[str, Any], str]:
    """The agent the provider signed in, and the ID token that says so."""
    if not isinstance(flow, dict) or clock.now().timestamp() - flow.get("at", 0) > FLOW_MAX_AGE.total_seconds():
        raise Refused("flow_expired", _("This sign-in took too long or was already used. Start again."), 400)
    if not secrets.compare_digest(str(request.args.get("state", "")), flow["state"]):
        raise Refused("wrong_state", _("This sign-in did not start here. Start again."), 400)
    if request.args.get("error"):
        raise Refused("provider:" + request.args["error"][:64],
                      _("The sign-in service did not sign you in. Start again if you want to."))
    code = request.args.get("code")
    if not code:
        raise Refused("no_code", _("The sign-in service's answer was incomplete. Start again."), 400)
    document = metadata(oidc)
    try:
        token = _client(oidc).fetch_token(document["token_endpoint"], grant_type="authorization_code", code=code,
                                          code_verifier=flow["verifier"], timeout=HTTP_TIMEOUT)
    except AuthlibBaseError as exc:
        log.warning("OIDC token endpoint refused the code: %s", exc.error)
        raise Refused("token_refused", _("The sign-in service refused to finish the sign-in. Start again.")) from exc
    except (requests.RequestException, ValueError) as exc:
        raise _unreachable() from exc
    if not token.get("id_token"):
        raise Refused("no_id_token", _("The sign-in service's answer was incomplete. Start again."), 400)
    claims = verified_claims(oidc, document, token["id_token"], flow["nonce"])
    return _agent_for(claims), token["id_token"]


def _agent_for(claims: CodeIDToken) -> dict[str, Any]:
    email = claims.get("email")
    if not isinstance(email, str) or not email or claims.get("email_verified") is not True:
        raise Refused("email_not_verified",
                      _("The sign-in service did not confirm your email address, so it cannot sign you in here."))
    agent = get_store().agent_by_email(email)
    if agent is None or not agent["active"]:
        raise Refused("no_active_agent",
                      _("There is no active account for %(email)s. Ask an administrator for an invitation.",
                        email=email))
    return agent


def end_session_url(id_token: Any) -> str | None:
    """The provider's end-session address for a sign-out (RP-Initiated Logout 1.0, section 2), or None
    when the session did not come from the provider or the provider offers no such endpoint."""
    oidc = settings()
    if oidc is None or not isinstance(id_token, str) or not id_token:
        return None
    try:
        document = metadata(oidc)
    except Refused:
        log.warning("OIDC provider unreachable at sign-out: signed out of Mainland only")
        return None
    endpoint = document.get("end_session_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return None
    query = urlencode({"id_token_hint": id_token, "client_id": str(oidc["client_id"]),
                       "post_logout_redirect_uri": current_app.config["MAINLAND"].base_url + url_for("auth.login")})
    return endpoint + ("&" if "?" in endpoint else "?") + query


def _refuse(refused: Refused):
    store = get_store()
    with store.write():
        store.audit(now_iso(), "anonymous", "oidc_refused", "agent", None, reason=refused.reason,
                    ip=request.remote_addr)
    return render_template("auth/oidc_refused.html", message=refused.message), refused.status


def _audit_login(agent_id: int) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{agent_id}", "login", "agent", agent_id, ip=request.remote_addr, via="oidc")


def _password_sign_in_off():
    # `allow_password_sign_in: false`: the provider is the only way in; a posted password is refused.
    if request.endpoint == "auth.login" and request.method == "POST" and not password_sign_in_allowed():
        return render_template("auth/oidc_refused.html",
                               message=_("Sign in with %(label)s: passwords are not used here.",
                                         label=button_label())), 403
    return None


def init_app(app: Flask) -> None:
    app.before_request(_password_sign_in_off)
    app.jinja_env.globals["oidc_button_label"] = button_label
    app.jinja_env.globals["password_sign_in_allowed"] = password_sign_in_allowed
