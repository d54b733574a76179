// A real OpenID Provider (panva/oidc-provider, OpenID Certified) on loopback, for retentiond's
// sign-in tests. Not for production: in-memory storage, test accounts, plain http.
//
//   node server.mjs CONFIG.json
//
// CONFIG (written by tests/oidc_support.py):
//   port       0 for any free port, or a fixed one (to restart with rotated keys)
//   jwks       {"keys": [private JWKs]}: shared by every tenant, as Entra ID's keys are
//   clients    oidc-provider client metadata (client_id, client_secret, redirect_uris,
//              token_endpoint_auth_method, id_token_signed_response_alg)
//   tenants    [{path, tenant_id, trailing_slash, entra_like, accounts}]: one Provider each,
//              mounted at `path` (e.g. "/<tenant-guid>/v2.0", Entra ID's tenant-specific
//              issuer); entra_like puts the profile claims into the ID token and turns
//              userinfo off, as Entra ID does; otherwise the ID token carries only what the
//              standard says (claims come from userinfo)
//   accounts   {login: {password, claims}}: the claims are synthetic; tid defaults to the
//              tenant's id
//
// Prints one JSON line {"port": N, "issuers": [...]} on stdout once it is listening.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${html(title)}</title></head>
<body><main><h1>${html(title)}</h1>${body}</main></body></html>`;
}

function loginPage(uid, mount, error) {
  return page('Sign in to the test tenant', `
${error ? `<p role="alert">${html(error)}</p>` : ''}
<form method="post" action="${mount}/interaction/${html(uid)}/login">
  <label for="login">Email or user name</label>
  <input id="login" name="login" autocomplete="username" required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>`);
}

function consentPage(uid, mount, clientId, scopes) {
  return page('Let this application know who you are?', `
<p>The application <strong>${html(clientId)}</strong> asks for: ${html(scopes)}.</p>
<form method="post" action="${mount}/interaction/${html(uid)}/confirm">
  <button type="submit">Accept</button>
</form>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

function makeProvider(port, tenant) {
  const issuer = `http://127.0.0.1:${port}${tenant.path}${tenant.trailing_slash ? '/' : ''}`;
  const accounts = tenant.accounts;
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: config.jwks,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    conformIdTokenClaims: !tenant.entra_like,
    claims: {
      openid: ['sub', 'tid', 'oid'],
      profile: ['name', 'preferred_username', 'upn'],
      email: ['email'],
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: !tenant.entra_like },
      rpInitiatedLogout: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `${tenant.path}/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, tid: tenant.tenant_id, ...account.claims };
        },
      };
    },
    ttl: { Session: 600, Interaction: 600, Grant: 600, AccessToken: 300, AuthorizationCode: 60, IdToken: 300 },
  });
  return { provider, issuer };
}

async function interaction(provider, mount, accounts, req, res, rest) {
  const [uid, action] = rest.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Wrong interaction', ''));
  const { prompt, params, session } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') return send(res, 200, loginPage(uid, mount));
    return send(res, 200, consentPage(uid, mount, params.client_id, params.scope));
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const account = accounts[form.get('login')];
    if (!account || account.password !== form.get('password')) {
      return send(res, 200, loginPage(uid, mount, 'The user name or password is wrong.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.get('login') } },
      { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm') {
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
  }
  return send(res, 405, page('Not allowed', ''));
}

const mounts = [];
const server = createServer(async (req, res) => {
  try {
    const found = mounts.find((m) => req.url === m.path || req.url.startsWith(`${m.path}/`));
    if (!found) return send(res, 404, page('No such tenant', ''));
    const rest = req.url.slice(found.path.length) || '/';
    if (rest.startsWith('/interaction/')) {
      return await interaction(found.provider, found.path, found.accounts, req, res,
        rest.slice('/interaction/'.length).split('?')[0]);
    }
    req.originalUrl = req.url;
    req.url = rest;
    return found.callback(req, res);
  } catch (err) {
    process.stderr.write(`oidc test provider: ${err.stack || err}\n`);
    if (!res.headersSent) send(res, 500, page('Provider error', html(err.message)));
    return undefined;
  }
});

server.listen(config.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuers = [];
  for (const tenant of config.tenants) {
    const { provider, issuer } = makeProvider(port, tenant);
    provider.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
    mounts.push({ path: tenant.path, provider, accounts: tenant.accounts, callback: provider.callback() });
    issuers.push(issuer);
  }
  process.stdout.write(`${JSON.stringify({ port, issuers })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
}
