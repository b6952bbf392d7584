// An upstream OpenID Connect provider for Latchkey's third-party login tests: node-oidc-provider (npm
// "oidc-provider", installed by `make deps`) on 127.0.0.1 with its built-in development login and
// consent pages.
//
//   node tests/upstream/oidc_provider.mjs --port 4100 --client-id latchkey --client-secret s3cret \
//        --redirect-uri http://127.0.0.1:3000/api/oauth/platforms/node/callback [--redirect-uri ...]
//        [--bad-jwks]
//
// - issuer http://127.0.0.1:<port>; one confidential client (code flow, client_secret_basic, RS256
//   id_tokens, PKCE required); one RS256 signing key generated at start.
// - Accounts: the dev login page takes any login (the password is ignored). The fixed accounts below
//   have their own claims; any other login made of [A-Za-z0-9._-] is an account too, with claims
//   derived from it (so every test can sign in as an upstream user nobody used before).
// - The consent page's "[ Cancel ]" link (/interaction/<uid>/abort) ends the flow with access_denied.
// - --bad-jwks: /jwks serves a different RS256 key under the signing key's kid, so every id_token's
//   signature fails verification (the "wrong signature" case).
// - Prints "READY <issuer>" on stdout once it listens; stops on SIGTERM/SIGINT and when stdin closes.
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string', default: 'latchkey' },
    'client-secret': { type: 'string', default: 'latchkey-upstream-secret' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'bad-jwks': { type: 'boolean', default: false },
  },
});
if (!args.port || args['redirect-uri'].length === 0) {
  console.error('usage: oidc_provider.mjs --port N --redirect-uri URL [--redirect-uri URL ...]');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${args.port}`;

export const ACCOUNTS = {
  ursula: { email: 'ursula@upstream.test', email_verified: true, name: 'Ursula Upstream', preferred_username: 'ursula' },
  victor: { email: 'victor@upstream.test', email_verified: false, name: 'Victor Upstream', preferred_username: 'victor' },
};

function claimsFor(id) {
  const fixed = ACCOUNTS[id];
  if (fixed) return { sub: id, ...fixed };
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) return undefined;
  return { sub: id, email: `${id}@upstream.test`, email_verified: true, name: `Upstream ${id}`, preferred_username: id };
}

async function rsaJwk(kid) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

const signing = await rsaJwk('upstream-rs256');

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    redirect_uris: args['redirect-uri'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signing] },
  cookies: { keys: ['latchkey-tests-upstream-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
  conformIdTokenClaims: false, // the id_token carries the scopes' claims, as most real providers do
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = claimsFor(id);
    if (!claims) return undefined;
    return { accountId: id, async claims() { return claims; } };
  },
});

provider.on('server_error', (ctx, error) => console.error('server_error', error));

if (args['bad-jwks']) {
  const impostor = await rsaJwk(signing.kid);
  const { d, p, q, dp, dq, qi, ...publicPart } = impostor; // eslint-disable-line no-unused-vars
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/jwks') {
      ctx.type = 'application/jwk-set+json';
      ctx.body = { keys: [publicPart] };
      return;
    }
    await next();
  });
}

const server = provider.listen(Number(args.port), '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});

// Started by the tests with a pipe on stdin: when the test process goes away (even killed), so does this.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
  // keep-alive sockets would hold close() open
  process.on(signal, () => setTimeout(() => process.exit(0), 500).unref());
}
