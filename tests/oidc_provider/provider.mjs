// A real OpenID Provider for Credencia's sign-in tests: panva/oidc-provider (OpenID Certified),
// on loopback only, with one confidential client for the tests and a few accounts.
//
// Started by tests/support/oidc.py with, in the environment:
//   OP_PORT      the loopback port (the issuer is http://127.0.0.1:<port>)
//   OP_CLIENT    JSON {client_id, client_secret}
//   OP_ACCOUNTS  JSON {"<login>": {claims...}} — any password signs in (devInteractions)
// It prints "listening <issuer> <kid>" when ready. A fresh signing key every start: starting it
// again on the same port is how the tests rotate the provider's key.
//
// Test controls (never in a real provider), POST /__test/next-token with JSON {mode}: the next
// token response is altered once, so the tests can show what Credencia refuses:
//   expired       the provider's clock runs two hours behind while it issues the ID token
//   audience      the ID token re-signed by the provider's key for another audience
//   issuer        the ID token re-signed by the provider's key with another issuer
//   signature     the ID token signed by another key under the provider's key id
//   replay        the ID token of the previous sign-in, sent again (its nonce already used)
import { randomUUID } from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const client = JSON.parse(process.env.OP_CLIENT);
const accounts = JSON.parse(process.env.OP_ACCOUNTS || '{}');

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
const signingKey = await jose.importJWK(jwk, 'RS256');
const { privateKey: strangerKey } = await jose.generateKeyPair('RS256');

const configuration = {
  clients: [
    {
      client_id: client.client_id,
      client_secret: client.client_secret,
      // Any loopback port: the app under test listens where the system puts it.
      redirect_uris: ['http://127.0.0.1/placeholder'],
      post_logout_redirect_uris: ['http://127.0.0.1/placeholder'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomUUID()] },
  pkce: { required: () => true, methods: ['S256'] },
  scopes: ['openid', 'email', 'profile', 'govbr_confiabilidades'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
    govbr_confiabilidades: ['reliability_info'],
  },
  // Scope claims go in the ID token too (as gov.br and Keycloak do).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!doctype html><html lang="en"><head><title>Sign out</title></head><body>
          ${form}<p>Sign out of the test provider?</p>
          <button form="op.logoutForm" type="submit" name="logout" value="yes">Yes, sign me out</button>
          </body></html>`;
      },
    },
  },
  async findAccount(ctx, id) {
    const known = accounts[id] || {};
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...known };
      },
    };
  },
  // No consent screen: the test client is first-party.
  async loadExistingGrant(ctx) {
    const grantId =
      ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      existing.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
      await existing.save();
      return existing;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);
const loopback = (uri) => {
  try {
    const url = new URL(uri);
    return url.protocol === 'http:' && url.hostname === '127.0.0.1';
  } catch {
    return false;
  }
};
provider.Client.prototype.redirectUriAllowed = loopback;
provider.Client.prototype.postLogoutRedirectUriAllowed = loopback;

let nextMode = null;
let previousIdToken = null;

async function resign(idToken, changes, key) {
  const claims = { ...jose.decodeJwt(idToken), ...changes };
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid }).sign(key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/next-token' && ctx.method === 'POST') {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    nextMode = JSON.parse(Buffer.concat(chunks).toString() || '{}').mode || null;
    ctx.body = { mode: nextMode };
    return;
  }
  if (ctx.path !== '/token' || !nextMode) {
    await next();
    if (ctx.path === '/token' && ctx.body && ctx.body.id_token) previousIdToken = ctx.body.id_token;
    return;
  }
  const mode = nextMode;
  nextMode = null;
  const realNow = Date.now;
  if (mode === 'expired') Date.now = () => realNow() - 2 * 3600 * 1000;
  try {
    await next();
  } finally {
    Date.now = realNow;
  }
  if (!ctx.body || !ctx.body.id_token) return;
  const token = ctx.body.id_token;
  if (mode === 'audience') ctx.body.id_token = await resign(token, { aud: 'another-app' }, signingKey);
  if (mode === 'issuer') ctx.body.id_token = await resign(token, { iss: 'http://127.0.0.1:9/elsewhere' }, signingKey);
  if (mode === 'signature') ctx.body.id_token = await resign(token, {}, strangerKey);
  if (mode === 'replay' && previousIdToken) ctx.body.id_token = previousIdToken;
  previousIdToken = token;
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer} ${jwk.kid}`);
});
