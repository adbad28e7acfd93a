// A real OpenID provider (the npm package oidc-provider) for wardgate's interop tests.
//
// Usage: node provider.js [PORT]   (PORT 0 or absent: a free port)
// Listens on 127.0.0.1 only, prints one JSON line {"issuer": ..., "clients": [...]} on stdout
// once it accepts requests, and exits when its stdin closes, so it never outlives the test that
// started it. It issues RFC 9068 JWT access tokens (typ at+jwt) by client_credentials:
//   - resource indicators are on; every token is for exactly one resource server, whose URI
//     becomes the `aud` claim (default: urn:wardgate:gateway);
//   - a `groups` claim is added to access tokens from the client's metadata;
//   - client `agent-rs` gets RS256 tokens, client `agent-es` ES256 tokens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const GATEWAY_RESOURCE = 'urn:wardgate:gateway';
const OTHER_RESOURCE = 'urn:example:other-service';
const RESOURCES = new Set([GATEWAY_RESOURCE, OTHER_RESOURCE]);

const CLIENTS = [
  {
    client_id: 'agent-rs',
    client_secret: randomBytes(24).toString('base64url'),
    groups: ['ci', 'db-readers'],
    alg: 'RS256',
  },
  {
    client_id: 'agent-es',
    client_secret: randomBytes(24).toString('base64url'),
    groups: 'oncall db-admins',  // a space-separated string, as some IdPs emit
    alg: 'ES256',
  },
];

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rs-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `es-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'ES256' },
  ];
}

function configuration() {
  const byId = new Map(CLIENTS.map((c) => [c.client_id, c]));
  return {
    clients: CLIENTS.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'db:read db:write',
    })),
    jwks: { keys: signingKeys() },
    scopes: ['db:read', 'db:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => GATEWAY_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator, client) => {
          if (!RESOURCES.has(resourceIndicator)) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: 'db:read db:write',
            audience: resourceIndicator,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: byId.get(client.clientId)?.alg ?? 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => {
      const client = byId.get(token.clientId);
      return client ? { groups: client.groups } : undefined;
    },
  };
}

const port = Number.parseInt(process.argv[2] ?? '0', 10);
const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  server.on('request', provider.callback());
  const clients = CLIENTS.map(({ client_id, client_secret, groups }) => ({ client_id, client_secret, groups }));
  process.stdout.write(`${JSON.stringify({ issuer, clients, resource: GATEWAY_RESOURCE, other_resource: OTHER_RESOURCE })}\n`);
});

// The parent test holds our stdin; when it ends (normally or not) we go too.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
