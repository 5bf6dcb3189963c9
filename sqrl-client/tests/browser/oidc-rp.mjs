// A relying party built on `openid-client` (an OpenID Certified library),
// for the end-to-end test of sqrl-server's OpenID Connect provider
// (main.rs, `a_relying_party_signs_the_person_in_with_openid_client`).
//
//   node oidc-rp.mjs <issuer> <port> <client-id> <client-secret>
//
// Prints {"event":"listening"} once it serves http://127.0.0.1:<port>:
//   GET /login[/]  starts a code flow (PKCE S256, state, nonce) and sends the
//                  browser to the provider;
//   GET /callback  finishes it as a site would, then exercises what a site
//                  does later, and shows every result as JSON in
//                  <pre id="result">:
//     - the code exchanged (client_secret_basic), the ID token validated by
//       the library: its signature against the published keys
//       (non-repudiation checks on), iss, aud, exp, nonce, and the
//       authorization response's iss (RFC 9207);
//     - userinfo for the same subject;
//     - a refresh, its new ID token validated;
//     - a refresh whose ID token is tampered with on the way (one claim
//       changed, the signature kept): the library must refuse it;
//     - introspection of the access token (active), its revocation by the
//       refresh token (RFC 7009), then userinfo refused and introspection
//       inactive.
// Every failure is reported in the page too, never swallowed.

import { createServer } from "node:http";
import * as client from "openid-client";

const [issuer, port, clientId, clientSecret] = process.argv.slice(2);
if (!issuer || !port || !clientId || !clientSecret) {
  console.error("usage: node oidc-rp.mjs <issuer> <port> <client-id> <client-secret>");
  process.exit(2);
}
const base = `http://127.0.0.1:${port}`;
const redirectUri = `${base}/callback`;

// When set, the next token response's ID token has its subject replaced.
let tamperNext = false;

const config = await client.discovery(
  new URL(issuer),
  clientId,
  // Nothing about algorithms: the library expects RS256, OpenID Connect's
  // default, which the client is registered for at the provider.
  { client_secret: clientSecret },
  client.ClientSecretBasic(clientSecret),
  // The test provider is plain HTTP on 127.0.0.1.
  { execute: [client.allowInsecureRequests] },
);
client.enableNonRepudiationChecks(config);
config[client.customFetch] = async (url, options) => {
  const response = await fetch(url, options);
  if (!tamperNext || !String(url).endsWith("/oidc/token")) {
    return response;
  }
  tamperNext = false;
  const body = await response.json();
  const [header, payload, signature] = body.id_token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  claims.sub = "someone-else";
  body.id_token = [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
  return new Response(JSON.stringify(body), {
    status: response.status,
    headers: { "content-type": "application/json" },
  });
};

// One person at a time: the flow's secrets, kept between /login and /callback.
let pending = null;

async function finish(currentUrl) {
  const result = {};
  const step = async (name, work) => {
    try {
      result[name] = await work();
    } catch (error) {
      result[name] = { error: `${error.name}: ${error.message}`, code: error.code ?? null };
    }
    return result[name];
  };
  const tokens = await client.authorizationCodeGrant(config, currentUrl, {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  result.idToken = {
    sub: claims.sub,
    nonce: claims.nonce,
    amr: claims.amr,
    acr: claims.acr,
    auth_time: claims.auth_time,
    aud: claims.aud,
    iss: claims.iss,
  };
  result.expectedNonce = pending.nonce;
  await step("userinfo", () => client.fetchUserInfo(config, tokens.access_token, claims.sub));
  const refreshed = await step("refresh", async () => {
    const next = await client.refreshTokenGrant(config, tokens.refresh_token);
    return { sub: next.claims().sub, access_token: next.access_token, refresh_token: next.refresh_token };
  });
  await step("tampered", async () => {
    tamperNext = true;
    await client.refreshTokenGrant(config, refreshed.refresh_token);
    return "accepted";
  });
  await step("introspectedBefore", async () =>
    (await client.tokenIntrospection(config, refreshed.access_token)).active);
  await step("revoked", async () => {
    await client.tokenRevocation(config, refreshed.refresh_token);
    return true;
  });
  await step("userinfoAfterRevocation", () =>
    client.fetchUserInfo(config, refreshed.access_token, claims.sub));
  await step("introspectedAfter", async () =>
    (await client.tokenIntrospection(config, refreshed.access_token)).active);
  delete refreshed.access_token;
  delete refreshed.refresh_token;
  return result;
}

function page(res, status, body) {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!DOCTYPE html><title>Relying party</title>${body}`);
}

const escape = (text) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;");

createServer(async (req, res) => {
  const url = new URL(req.url, base);
  try {
    // The app's "Log in" (the browser driver opens it with a trailing /).
    if (["/login", "/login/"].includes(url.pathname)) {
      const verifier = client.randomPKCECodeVerifier();
      pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
      const target = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: "openid sqrl",
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state: pending.state,
        nonce: pending.nonce,
      });
      res.writeHead(302, { location: target.href });
      res.end();
    } else if (url.pathname === "/callback") {
      const result = await finish(url);
      page(res, 200, `<h1>Signed in</h1><pre id="result">${escape(JSON.stringify(result))}</pre>`);
    } else {
      page(res, 404, "<p>not found</p>");
    }
  } catch (error) {
    page(res, 500, `<h1>Failed</h1><pre id="result">${escape(JSON.stringify({
      failed: `${error.name}: ${error.message}`,
      code: error.code ?? null,
      cause: String(error.cause ?? ""),
    }))}</pre>`);
  }
}).listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ event: "listening" }) + "\n");
});
