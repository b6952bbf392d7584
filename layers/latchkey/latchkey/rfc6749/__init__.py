"""The OAuth 2.0 Authorization Framework (RFC 6749, https://www.rfc-editor.org/rfc/rfc6749).

- :mod:`.client_auth`: client authentication at the token, revocation and introspection endpoints
  (§2.3: ``client_secret_basic``, ``client_secret_post``; RFC 7523 ``private_key_jwt``; ``none`` for
  public clients).
- :mod:`.grants`: the grant registry. Each grant declares its ``grant_type``, the parameters it accepts
  and whether public clients may use it; the token endpoint looks it up and drops everything else.
- :mod:`.token_endpoint`: the token endpoint (§3.2) as a readable pipeline, and its metadata (RFC 8414).
- :mod:`.client_credentials`: the client credentials grant (§4.4).

Errors are the §5.2 codes of :mod:`latchkey.errors`, rendered once by :mod:`latchkey.http.render`.
Importing this package registers nothing; importing :mod:`.token_endpoint` registers every grant.
"""

TOKEN_PATH = "/api/oauth/token"
