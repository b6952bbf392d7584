// node-oidc-provider serving client_credentials with ES256 JWT access tokens, for bench/__main__.py.
// Usage: node bench/node_oidc_provider.mjs <port> <client_id> <client_secret>
// Prints "READY <port>" once listening on 127.0.0.1. Uses the provider's default in-memory adapter.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret] = process.argv.slice(2);
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read',
    id_token_signed_response_alg: 'ES256', // the only key is ES256
  }],
  jwks: { keys: [jwk] },
  scopes: ['read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'https://api.example.com',
      getResourceServerInfo: () => ({ scope: 'read', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
    },
  },
});

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`READY ${port}\n`);
});
