import { constants, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';

/**
 * Verification of an OIDC back-channel logout token (OpenID Connect
 * Back-Channel Logout 1.0, section 2.6), with node:crypto only: openid-client
 * 6 has no logout-token API. Throws LogoutTokenError(reason); the caller
 * maps it to JIT_ERR_AUTH_LOGOUT_TOKEN_INVALID.
 */
export class LogoutTokenError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface LogoutTokenExpectations {
  issuer: string;
  clientId: string;
  /** The provider's signing keys (jwks_uri); `refresh` after an unknown kid. */
  keys: (refresh: boolean) => Promise<readonly JsonWebKey[]>;
  /** Seconds since the epoch. */
  now: number;
  /** How old `iat` may be (section 2.6 step 5: "recent enough"). */
  maxAgeSeconds?: number;
  /** Clock skew allowed on iat/exp. */
  toleranceSeconds?: number;
}

export interface LogoutClaims {
  jti: string;
  sub?: string;
  sid?: string;
  iat: number;
}

type Verifier = (data: Buffer, key: KeyObject, sig: Buffer) => boolean;
const pss = (hash: string): Verifier => (d, key, sig) =>
  verify(hash, d, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig);
const ec = (hash: string): Verifier => (d, key, sig) => verify(hash, d, { key, dsaEncoding: 'ieee-p1363' }, sig);
const rsa = (hash: string): Verifier => (d, key, sig) => verify(hash, d, key, sig);
/** Asymmetric algorithms only: `none` and HS* (a client secret as key) are refused. */
const ALGS: Record<string, { kty: string; verify: Verifier }> = {
  RS256: { kty: 'RSA', verify: rsa('sha256') }, RS384: { kty: 'RSA', verify: rsa('sha384') }, RS512: { kty: 'RSA', verify: rsa('sha512') },
  PS256: { kty: 'RSA', verify: pss('sha256') }, PS384: { kty: 'RSA', verify: pss('sha384') }, PS512: { kty: 'RSA', verify: pss('sha512') },
  ES256: { kty: 'EC', verify: ec('sha256') }, ES384: { kty: 'EC', verify: ec('sha384') }, ES512: { kty: 'EC', verify: ec('sha512') },
  EdDSA: { kty: 'OKP', verify: (d, key, sig) => verify(null, d, key, sig) },
};

function part(s: string | undefined, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(Buffer.from(s ?? '', 'base64url').toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* reported below */
  }
  throw new LogoutTokenError(`${what} is not a JSON object`);
}

export async function verifyLogoutToken(token: string, x: LogoutTokenExpectations): Promise<LogoutClaims> {
  const parts = token.split('.');
  if (parts.length !== 3 || token.length > 16_384) throw new LogoutTokenError('not a signed JWT');
  const header = part(parts[0], 'header');
  const alg = typeof header['alg'] === 'string' ? ALGS[header['alg']] : undefined;
  if (!alg) throw new LogoutTokenError('unsupported alg');
  // Section 2.6: explicitly typed `logout+jwt`; an untyped token is accepted (older providers), any other type is not.
  const typ = typeof header['typ'] === 'string' ? header['typ'].toLowerCase().replace(/^application\//, '') : undefined;
  if (typ !== undefined && typ !== 'logout+jwt' && typ !== 'jwt') throw new LogoutTokenError('wrong typ');
  const kid = typeof header['kid'] === 'string' ? header['kid'] : undefined;
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2] ?? '', 'base64url');
  const candidates = async (refresh: boolean) =>
    (await x.keys(refresh)).filter((k) => k.kty === alg.kty && (kid === undefined || k.kid === kid) && (k.use === undefined || k.use === 'sig'));
  let keys = await candidates(false);
  if (keys.length === 0) keys = await candidates(true);
  const ok = keys.some((k) => {
    try {
      return alg.verify(data, createPublicKey({ key: k, format: 'jwk' }), sig);
    } catch {
      return false;
    }
  });
  if (!ok) throw new LogoutTokenError('bad signature');

  const c = part(parts[1], 'payload');
  const tol = x.toleranceSeconds ?? 60;
  if (c['iss'] !== x.issuer) throw new LogoutTokenError('wrong iss');
  const aud = c['aud'];
  if (!(aud === x.clientId || (Array.isArray(aud) && aud.includes(x.clientId)))) throw new LogoutTokenError('wrong aud');
  const iat = c['iat'];
  if (typeof iat !== 'number' || iat > x.now + tol || iat < x.now - (x.maxAgeSeconds ?? 300) - tol) throw new LogoutTokenError('iat missing, in the future or too old');
  const exp = c['exp'];
  if (exp !== undefined && (typeof exp !== 'number' || exp + tol <= x.now)) throw new LogoutTokenError('expired');
  const jti = c['jti'];
  if (typeof jti !== 'string' || jti.length === 0) throw new LogoutTokenError('jti missing');
  const events = c['events'];
  const ev = events && typeof events === 'object' ? (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT] : undefined;
  if (!ev || typeof ev !== 'object' || Array.isArray(ev)) throw new LogoutTokenError('events claim without the back-channel logout event');
  // Section 2.4: a nonce is forbidden, so an ID token can never pass as a logout token.
  if ('nonce' in c) throw new LogoutTokenError('nonce present');
  const sub = typeof c['sub'] === 'string' && c['sub'] ? c['sub'] : undefined;
  const sid = typeof c['sid'] === 'string' && c['sid'] ? c['sid'] : undefined;
  if (sub === undefined && sid === undefined) throw new LogoutTokenError('neither sub nor sid');
  return { jti, iat, ...(sub !== undefined ? { sub } : {}), ...(sid !== undefined ? { sid } : {}) };
}
