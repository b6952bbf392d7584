"""Client authentication at the token, revocation and introspection endpoints.

Methods (the names of the IANA "OAuth Token Endpoint Authentication Methods" registry):

- ``client_secret_basic`` (RFC 6749 §2.3.1): ``Authorization: Basic`` with the client id and secret each
  form-urlencoded (Appendix B) before base64 — so they are decoded after it.
- ``client_secret_post`` (§2.3.1): ``client_id`` and ``client_secret`` in the form body.
- ``private_key_jwt`` (RFC 7523 §2.2 and §3, OpenID Connect Core §9): ``client_assertion_type`` =
  ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and a ``client_assertion`` signed (ES256 or
  RS256) with a key of the client's registered ``jwks`` / ``jwks_uri``; ``iss`` = ``sub`` = the client
  id; ``aud`` names this server (issuer, token endpoint or the endpoint called); ``exp`` is required and
  at most :data:`MAX_ASSERTION_LIFETIME` ahead; ``jti`` is required and single use (a conditional write
  that lives until the assertion expires).
- ``none``: a public client sends only ``client_id``.

§2.3: "The client MUST NOT use more than one authentication method in each request": two at once is
``invalid_request``. The method a client registered is the only one it may use. Every failure is
``401 invalid_client`` (§5.2), with ``WWW-Authenticate: Basic`` when the client tried Basic; the public
description never says which check failed (the log does). Secrets are compared as keyed hashes in
constant time, and an unknown client costs the same hash as a known one.

Brute force (issue 9, docs/security.md): a request that presents a secret or an assertion and fails is
counted per client id and per source address (:mod:`latchkey.ratelimit`, ``CLIENT_AUTH_*``). While
either counter is at its limit, such a request is refused *without checking the secret*, with the very
same ``invalid_client`` a wrong secret gets (the same hash work and the same counting write, so neither
the answer nor its cost tells a locked client from a wrong secret). The success path reads no counter of
its own and writes none: when the client record is read from the table, the counter rows come in the
same ``BatchGetItem``; when it comes from the instance's client cache (the warm token endpoint), the
lock is known from this instance's memory, which every failure refreshes from the table. A public
client's bare ``client_id`` guesses nothing and is neither counted nor locked.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from .. import clock, context, ratelimit, services
from ..clients import Client, client_key
from ..crypto.secrets import keyed_hash, verify_keyed_hash
from ..errors import InvalidClient, InvalidRequest
from ..observability import logger
from ..ratelimit import CounterKey
from ..store import ENTITY, PK, SK, TTL_ATTRIBUTE, Compare, ConditionFailed, NotExists, Put, any_of
from . import TOKEN_PATH

METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("ES256", "RS256")  # token_endpoint_auth_signing_alg_values_supported
MAX_ASSERTION_LIFETIME = 300  # seconds an assertion's exp may lie ahead
LEEWAY = 30  # clock skew tolerated on exp / nbf / iat
MAX_ID_LENGTH = 256
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="latchkey"'}
PARAMETERS = frozenset({"client_id", "client_secret", "client_assertion", "client_assertion_type"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presents: the method, the claimed client id and the secret or assertion."""

    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def _basic(authorization: str | None) -> tuple[str, str] | None:
    """RFC 7617 Basic credentials, each part form-urlencoded per RFC 6749 §2.3.1; None without a header."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient(detail=f"unsupported Authorization scheme {scheme[:20]!r}")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        raw_id, colon, raw_secret = decoded.partition(":")
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidRequest("The Authorization header is malformed.") from exc
    if not colon or not client_id or not secret:
        raise InvalidRequest("The Authorization header is malformed.")
    return client_id, secret


def _assertion_subject(assertion: str) -> str:
    """The client id an assertion claims (``sub``), read before its signature can be checked."""
    import jwt  # deferred: PyJWT (X.509, a JWKS client) only for private_key_jwt

    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidClient(detail=f"unreadable client_assertion: {exc}") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidClient(detail="client_assertion has no sub")
    return subject


def credentials(params: Mapping[str, str], authorization: str | None) -> Credentials:
    """The one authentication method the request uses (RFC 6749 §2.3)."""
    basic = _basic(authorization)
    has_secret = "client_secret" in params
    has_assertion = "client_assertion" in params or "client_assertion_type" in params
    if basic is not None and (has_secret or has_assertion) or has_secret and has_assertion:
        raise InvalidRequest("The request uses more than one client authentication method.")
    client_id = params.get("client_id")
    if basic is not None:
        if client_id is not None and client_id != basic[0]:
            raise InvalidRequest("The client_id parameter does not match the Authorization header.")
        return Credentials("client_secret_basic", basic[0], secret=basic[1])
    if has_secret:
        if client_id is None:
            raise InvalidRequest("The client_id parameter is required with client_secret.")
        return Credentials("client_secret_post", client_id, secret=params["client_secret"])
    if has_assertion:
        assertion_type, assertion = params.get("client_assertion_type"), params.get("client_assertion")
        if assertion_type is None or assertion is None:
            raise InvalidRequest("client_assertion and client_assertion_type are both required.")
        if assertion_type != JWT_BEARER:  # RFC 7521 §4.2.1: an unusable assertion is invalid_client
            raise InvalidClient(detail=f"unsupported client_assertion_type {assertion_type[:100]!r}")
        subject = _assertion_subject(assertion)
        if client_id is not None and client_id != subject:
            raise InvalidClient(detail="client_id differs from the assertion's sub")
        return Credentials("private_key_jwt", subject, assertion=assertion)
    if client_id is not None:
        return Credentials("none", client_id)
    raise InvalidClient(detail="no client authentication")


def _problem(client: Client | None, found: Credentials) -> str | None:
    """Why ``found`` does not authenticate as ``client`` (the assertion of private_key_jwt aside)."""
    if client is None:
        if found.secret is not None:
            keyed_hash(services.secret_hash_key(), found.secret)  # the same work as a real comparison
        return "unknown client"
    if client.token_endpoint_auth_method != found.method:
        return f"used {found.method}, registered {client.token_endpoint_auth_method}"
    if found.method in ("client_secret_basic", "client_secret_post"):
        if found.secret is None or not client.secret_hash or \
                not verify_keyed_hash(services.secret_hash_key(), found.secret, client.secret_hash):
            return "wrong secret"
    return None


def authenticate(params: Mapping[str, str], authorization: str | None, *, endpoint: str = TOKEN_PATH) -> Client:
    """The client the request authenticates as, by the method it registered; else ``invalid_client``.

    ``endpoint`` is the path being called: a ``private_key_jwt`` assertion may name its URL as ``aud``.
    """
    return _authenticate(params, authorization, endpoint=endpoint, cached=False)[0]


def authenticate_cached(params: Mapping[str, str], authorization: str | None, *,
                        endpoint: str = TOKEN_PATH) -> tuple[Client, bool]:
    """As :func:`authenticate`, but the record may come from :func:`latchkey.services.client_cache`:
    (the client, whether it did). The token endpoint guards the write of a request authenticated on a
    cached record with :meth:`~latchkey.clients.ClientCache.guard`; a refusal based on a cached record
    is decided again on a fresh read."""
    return _authenticate(params, authorization, endpoint=endpoint, cached=True)


def _authenticate(params: Mapping[str, str], authorization: str | None, *, endpoint: str,
                  cached: bool) -> tuple[Client, bool]:
    found = credentials(params, authorization)
    headers = BASIC_CHALLENGE if found.method == "client_secret_basic" else {}

    def refuse(detail: str) -> InvalidClient:
        return InvalidClient(headers=headers, detail=f"client {found.client_id[:MAX_ID_LENGTH]!r}: {detail}")

    guessing = found.secret is not None or found.assertion is not None  # a credential that can be guessed
    counters = failure_keys(found.client_id) if guessing else ()
    from_cache = cached and found.method != "private_key_jwt" and len(found.client_id) <= MAX_ID_LENGTH
    prefetched = False
    if len(found.client_id) <= MAX_ID_LENGTH and guessing and not (
            from_cache and services.client_cache().holds(found.client_id)):
        # a cold instance reads the client, the secret hashing key and the failure counters in one round trip
        services.prefetch([client_key(found.client_id), *services.pending_secret_hash_key(),
                           *(counter.key for counter in counters)])
        prefetched = True
    if counters and (locked := _locked(counters, read_table=prefetched)):
        if found.secret is not None:
            keyed_hash(services.secret_hash_key(), found.secret)  # the work of a comparison, nothing compared
        _count_failure(counters)
        raise refuse(f"locked out for {locked} s after too many failed authentications")
    if from_cache:
        client, hit = services.client_cache().get(found.client_id)
    else:
        client, hit = services.client_store().get(found.client_id) if len(found.client_id) <= MAX_ID_LENGTH \
            else None, False
    problem = _problem(client, found)
    if problem and hit:
        client, hit = services.client_cache().fresh(found.client_id), False
        problem = _problem(client, found)
    if problem:
        _count_failure(counters)
        raise refuse(problem)
    assert client is not None
    if found.method == "private_key_jwt":
        assert found.assertion is not None
        issuer = services.settings().issuer
        problem = verify_assertion(client, found.assertion,
                                   audiences={issuer, issuer + TOKEN_PATH, issuer + endpoint})
        if problem:
            _count_failure(counters)
            raise refuse(problem)
    return client, hit


# --- brute force: failures per client id and per source address ----------------------------------
MAX_REMEMBERED_LOCKS = 4096
ENTITY_NAME = "client_auth_failures"


def failure_keys(client_id: str, address: str | None = None) -> tuple[CounterKey, CounterKey]:
    """The failure counters a request for ``client_id`` from ``address`` (default: this request's) counts on."""
    source = context.source_ip.get() if address is None else address
    return (CounterKey(f"CLIENTAUTHFAIL#CLIENT#{ratelimit.digest(client_id)}", "CLIENTAUTHFAIL", ENTITY_NAME),
            CounterKey(f"CLIENTAUTHFAIL#ADDR#{ratelimit.address_part(source)}", "CLIENTAUTHFAIL", ENTITY_NAME))


def _limits() -> tuple[int, int]:
    settings = services.settings()
    return settings.client_auth_max_failures, settings.client_auth_max_address_failures


def _remembered() -> dict[str, int]:
    """Locks this instance has seen: counter key -> the end of its window (cleared with the services)."""
    return services.cached("client_auth_locks", dict)


def _remember(pk: str, until: int, now: int) -> None:
    locks = _remembered()
    if until > now:
        locks[pk] = until
        if len(locks) > MAX_REMEMBERED_LOCKS:
            for stale in [key for key, end in locks.items() if end <= now] or [next(iter(locks))]:
                locks.pop(stale, None)
    else:
        locks.pop(pk, None)


def _locked(counters: tuple[CounterKey, ...], *, read_table: bool) -> int:
    """Seconds until the client id and the address may authenticate again (0: now). ``read_table``: the
    counter rows are in this request's read ahead; else only this instance's memory of locks is used."""
    now, locks = clock.now(), _remembered()
    wait = 0
    for counter_key, limit in zip(counters, _limits(), strict=True):
        if read_table:
            locked = ratelimit.locked_for(ratelimit.read(counter_key, now), limit, now)
            _remember(counter_key.pk, now + locked if locked else 0, now)
        else:
            locked = max(0, locks.get(counter_key.pk, 0) - now)
        wait = max(wait, locked)
    return wait


def _count_failure(counters: tuple[CounterKey, ...]) -> None:
    if not counters:
        return
    now = clock.now()
    after = ratelimit.record(counters, window=services.settings().client_auth_failure_window, now=now)
    for counter_key, limit in zip(counters, _limits(), strict=True):
        counter = after[counter_key]
        _remember(counter_key.pk, counter.window_ends if counter.failures >= limit else 0, now)


# --- private_key_jwt (RFC 7523) -------------------------------------------------------------------
def verify_assertion(client: Client, assertion: str, *, audiences: set[str], now: int | None = None) -> str | None:
    """Check a client assertion completely and consume its ``jti``; the reason it fails, or None."""
    import jwt  # deferred, as above

    moment = clock.now() if now is None else now
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        return f"malformed assertion header: {exc}"
    alg = header.get("alg")
    if alg not in ASSERTION_ALGS:  # never "none", never HMAC with a public key (RFC 8725 §3.1)
        return f"assertion alg {alg!r} is not accepted"
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    keys = _client_keys(client, alg, kid)
    if not keys and client.jwks_uri and kid is not None:
        keys = _client_keys(client, alg, kid, refresh=True)  # the client may have rotated its keys
    if not keys:
        return f"no registered {alg} key{f' with kid {kid!r}' if kid else ''}"
    claims: dict[str, Any] | None = None
    failure = "signature does not verify"
    for key in keys:
        try:
            claims = jwt.decode(assertion, key, algorithms=[alg], audience=sorted(audiences),
                                issuer=client.client_id, leeway=LEEWAY,
                                options={"require": ["iss", "sub", "aud", "exp", "jti"]})
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            failure = str(exc)
            break
    if claims is None:
        return f"assertion invalid: {failure}"
    if claims["sub"] != client.client_id:
        return "assertion sub is not the client id"
    exp = int(claims["exp"])  # PyJWT has checked that it is a number and not past
    if exp > moment + MAX_ASSERTION_LIFETIME + LEEWAY:
        return "assertion exp is too far in the future"
    if isinstance(claims.get("iat"), int | float) and claims["iat"] > moment + LEEWAY:
        return "assertion issued in the future"
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_ID_LENGTH:
        return "assertion jti is missing or too long"
    if not _consume_jti(client.client_id, jti, expires_at=exp + LEEWAY, now=moment):
        return f"assertion jti {jti!r} was already used"
    return None


def _consume_jti(client_id: str, jti: str, *, expires_at: int, now: int) -> bool:
    """Single use is a condition (CONVENTIONS §5): the write succeeds only for an unseen (or expired) jti."""
    row = {PK: f"JTI#{client_id}#{jti}", SK: "JTI", ENTITY: "client_assertion_jti", TTL_ATTRIBUTE: expires_at}
    try:
        services.item_store().write(Put(row, condition=any_of(NotExists(), Compare(TTL_ATTRIBUTE, "<", now))))
    except ConditionFailed:
        return False
    return True


def _client_keys(client: Client, alg: str, kid: str | None, *, refresh: bool = False) -> list[Any]:
    """The client's public keys usable for ``alg`` (and ``kid`` when the header names one)."""
    if client.jwks is not None:
        document: Any = client.jwks
    elif client.jwks_uri:
        try:
            document = fetch_jwks(client.jwks_uri, refresh=refresh)
        except (OSError, ValueError) as exc:
            logger.warning("jwks_uri fetch failed", extra={"client_id": client.client_id, "error": str(exc)[:200]})
            return []
    else:
        return []
    import jwt  # deferred, as above

    kty = "EC" if alg == "ES256" else "RSA"
    keys = []
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != kty or jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("alg", alg) != alg or (kid is not None and jwk.get("kid") != kid):
            continue
        if kty == "EC" and jwk.get("crv") != "P-256":
            continue
        try:
            keys.append(jwt.PyJWK(jwk, algorithm=alg).key)
        except jwt.PyJWTError:
            continue
    return keys


# --- jwks_uri: a small cached fetch ---------------------------------------------------------------
JWKS_URI_CACHE_TTL = 300  # seconds a fetched client JWK Set is reused
JWKS_URI_MIN_REFRESH = 30  # a kid miss refetches at most this often per URI
JWKS_URI_TIMEOUT = 3.0
JWKS_URI_MAX_BYTES = 64 * 1024
_jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks_lock = threading.Lock()


def fetch_jwks(uri: str, *, refresh: bool = False) -> dict[str, Any]:
    """The JWK Set at ``uri``, cached per process; raises ``OSError`` / ``ValueError`` on failure."""
    moment = time.monotonic()
    with _jwks_lock:
        cached = _jwks_cache.get(uri)
    if cached is not None:
        age = moment - cached[0]
        if age < JWKS_URI_CACHE_TTL and not (refresh and age >= JWKS_URI_MIN_REFRESH):
            return cached[1]
    if urlsplit(uri).scheme not in ("https", "http"):  # registration allows only https
        raise ValueError("jwks_uri must be an http(s) URL")
    import urllib.request  # deferred: only private_key_jwt clients with a jwks_uri need it

    accept = {"Accept": "application/jwk-set+json, application/json", "User-Agent": "latchkey"}
    request = urllib.request.Request(uri, headers=accept)  # noqa: S310 (the scheme is checked above)
    with urllib.request.urlopen(request, timeout=JWKS_URI_TIMEOUT) as response:  # noqa: S310
        body = response.read(JWKS_URI_MAX_BYTES + 1)
    if len(body) > JWKS_URI_MAX_BYTES:
        raise ValueError("the JWK Set is too large")
    try:
        document = json.loads(body)
    except RecursionError as exc:
        raise ValueError("the JWK Set is nested too deeply") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    with _jwks_lock:
        _jwks_cache[uri] = (moment, document)
    return document
