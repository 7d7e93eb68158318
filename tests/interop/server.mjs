// oidc-provider (panva) on 127.0.0.1, an independent authorization server for reqcc's
// interop tests (tests/interop/test_oidc_provider.py starts it; it is not a fixture of
// the normal suite).
//
//   node server.mjs CONFIG.json
//
// CONFIG.json: {"clients": [oidc-provider client metadata, ...]}. The same clients are
// registered with two providers on one port: issuer http://127.0.0.1:PORT (the root) and
// issuer http://127.0.0.1:PORT/tenant (an issuer with a path, mounted there).
//
// Both providers: client_credentials, introspection, revocation, resource indicators
// (resource https://api.example.test/ gets JWT access tokens; no resource gets opaque
// ones) and DPoP (RFC 9449) with server nonces REQUIRED at the token endpoint.
//
// Plus a small protected resource at /api/... that checks what a resource server must
// (RFC 6750, RFC 9449 §4.3 and §7) with panva's `jose`, a JOSE implementation that
// shares nothing with reqcc:
//   /api/books        Bearer or DPoP tokens (DPoP proof without a nonce is fine)
//   /api/nonce/books  DPoP; demands a resource-server nonce (401 use_dpop_nonce first)
//   /api/strict/books DPoP; uses no nonces and refuses a proof carrying one (a nonce it
//                     never issued: RFC 9449 §9, nonces are accepted only by their issuer)
// Opaque tokens are looked up in the provider's store; JWT ones are verified against the
// provider's JWKS. Every request is recorded; GET /_events returns them.
//
// When listening it prints one JSON line on stdout: {"port": P, "issuer": ..., "tenant_issuer": ...}.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import { calculateJwkThumbprint, createLocalJWKSet, EmbeddedJWK, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider from 'oidc-provider';

const RESOURCE = 'https://api.example.test/';
const SCOPES = ['books.read', 'orders.read', 'orders.write'];

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const events = [];

async function signingKeys() {
  const keys = [];
  for (const [alg, options] of [['RS256', { modulusLength: 2048 }], ['ES256', {}]]) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true, ...options });
    keys.push({ ...(await exportJWK(privateKey)), alg, use: 'sig', kid: `${alg}-1` });
  }
  return { keys };
}

function makeProvider(issuer, jwks) {
  const provider = new Provider(issuer, {
    clients: structuredClone(config.clients),
    jwks,
    scopes: SCOPES,
    enabledJWA: { dPoPSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'] },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      dPoP: {
        enabled: true,
        nonceSecret: crypto.randomBytes(32),
        requireNonce: () => true,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: SCOPES.join(' '),
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    ttl: { ClientCredentials: 600 },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  });
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  return provider;
}

// -- the protected resource ----------------------------------------------------------

const seenJti = new Set();
const rsNonces = new Set();

function deny(res, scheme, error, description, extra = {}) {
  const challenge = `${scheme} error="${error}", error_description="${description}"`
    + (scheme === 'DPoP' ? ', algs="ES256 RS256 PS256 EdDSA"' : '');
  res.writeHead(401, { 'WWW-Authenticate': challenge, 'Content-Type': 'application/json', ...extra });
  res.end(JSON.stringify({ error, error_description: description }));
  return { status: 401, error, description };
}

async function findToken(providers, value) {
  if (value.split('.').length === 3) {
    for (const provider of providers) {
      try {
        const { payload } = await jwtVerify(value, provider.jwksLocal, { issuer: provider.issuer, audience: RESOURCE });
        return { format: 'jwt', clientId: payload.client_id, scope: payload.scope, jkt: payload.cnf?.jkt };
      } catch {
        // not this provider's
      }
    }
    return undefined;
  }
  for (const provider of providers) {
    const token = await provider.ClientCredentials.find(value);
    if (token && !token.isExpired) {
      return { format: 'opaque', clientId: token.clientId, scope: token.scope, jkt: token.jkt };
    }
  }
  return undefined;
}

async function api(req, res, url, providers) {
  const requireNonce = url.pathname.startsWith('/api/nonce/');
  const refuseNonce = url.pathname.startsWith('/api/strict/');
  const authorization = req.headers.authorization || '';
  const [scheme, value] = authorization.split(/ +/, 2);
  if (!value) {
    return deny(res, 'DPoP', 'invalid_request', 'no access token');
  }
  const token = await findToken(providers, value);
  if (scheme.toLowerCase() === 'bearer') {
    if (!token) return deny(res, 'Bearer', 'invalid_token', 'unknown or expired token');
    if (token.jkt) return deny(res, 'DPoP', 'invalid_token', 'a DPoP-bound token sent as Bearer');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ scheme: 'Bearer', ...token }));
    return { status: 200 };
  }
  if (scheme.toLowerCase() !== 'dpop') {
    return deny(res, 'DPoP', 'invalid_request', 'unknown scheme');
  }
  const proofs = req.headersDistinct?.dpop ?? [];
  if (proofs.length !== 1) {
    return deny(res, 'DPoP', 'invalid_dpop_proof', 'exactly one DPoP header is required');
  }
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(proofs[0], EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519'],
    }));
  } catch (error) {
    return deny(res, 'DPoP', 'invalid_dpop_proof', `proof rejected: ${error.code || error.message}`);
  }
  const expectedHtu = `http://${req.headers.host}${url.pathname}`;
  const problems = [];
  if (typeof payload.jti !== 'string' || !payload.jti) problems.push('jti');
  if (payload.htm !== req.method) problems.push('htm');
  if (payload.htu !== expectedHtu) problems.push(`htu ${payload.htu} != ${expectedHtu}`);
  if (typeof payload.iat !== 'number' || Math.abs(Date.now() / 1000 - payload.iat) > 60) problems.push('iat');
  if (payload.ath !== crypto.hash('sha256', value, 'base64url')) problems.push('ath');
  if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in protectedHeader.jwk)) problems.push('private jwk');
  if (problems.length) {
    return deny(res, 'DPoP', 'invalid_dpop_proof', `bad claims: ${problems.join(', ')}`);
  }
  if (seenJti.has(payload.jti)) {
    return deny(res, 'DPoP', 'invalid_dpop_proof', 'jti replayed');
  }
  seenJti.add(payload.jti);
  if (refuseNonce && payload.nonce !== undefined) {
    return deny(res, 'DPoP', 'invalid_dpop_proof', 'this resource server issued no nonce');
  }
  if (requireNonce && !rsNonces.has(payload.nonce)) {
    const nonce = crypto.randomBytes(16).toString('base64url');
    rsNonces.add(nonce);
    return deny(res, 'DPoP', 'use_dpop_nonce', 'resource server requires nonce in DPoP proof', { 'DPoP-Nonce': nonce });
  }
  if (!token) return deny(res, 'DPoP', 'invalid_token', 'unknown or expired token');
  const thumbprint = await calculateJwkThumbprint(protectedHeader.jwk);
  if (token.jkt !== thumbprint) {
    return deny(res, 'DPoP', 'invalid_token', 'token not bound to the proof key');
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ scheme: 'DPoP', thumbprint, nonce: payload.nonce ?? null, ...token }));
  return { status: 200 };
}

// -- wiring ---------------------------------------------------------------------------

const server = http.createServer();
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const tenantIssuer = `${issuer}/tenant`;
  const jwks = await signingKeys();
  const publicJwks = { keys: jwks.keys.map(({ kty, crv, x, y, n, e, alg, use, kid }) => ({ kty, crv, x, y, n, e, alg, use, kid })) };
  const root = makeProvider(issuer, jwks);
  const tenant = makeProvider(tenantIssuer, jwks);
  for (const provider of [root, tenant]) {
    provider.jwksLocal = createLocalJWKSet(publicJwks);
  }
  const rootCallback = root.callback();
  const tenantCallback = tenant.callback();

  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const event = {
      method: req.method,
      path: url.pathname,
      dpop: Boolean(req.headers.dpop),
      authorization_scheme: (req.headers.authorization || '').split(' ')[0] || null,
    };
    res.on('finish', () => {
      event.status = res.statusCode;
      event.dpop_nonce = res.getHeader('dpop-nonce') ?? null;
      if (url.pathname !== '/_events') events.push(event);
    });
    try {
      if (url.pathname === '/_events') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(events));
      } else if (url.pathname.startsWith('/api/')) {
        await api(req, res, url, [root, tenant]);
      } else if (url.pathname === '/tenant' || url.pathname.startsWith('/tenant/')) {
        req.originalUrl = req.url;
        req.url = req.url.slice('/tenant'.length) || '/';
        tenantCallback(req, res);
      } else {
        rootCallback(req, res);
      }
    } catch (error) {
      console.error(error);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  process.stdout.write(`${JSON.stringify({ port, issuer, tenant_issuer: tenantIssuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
// The test's pipe closing (the test process died) ends the server too.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
