"""Token crypto: key generation and JWK export (RFC 7517/7518/7638), JWS sign and verify (RFC 7515,
RFC 7519), keyed hashing of high-entropy secrets, and envelope encryption of private keys.

This subpackage knows nothing of storage or HTTP; everything here is a pure function of its inputs
(apart from the KMS envelope, which takes its client as an argument).
"""
