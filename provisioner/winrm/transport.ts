/**
 * HTTP transport for WS-Management with pluggable authentication.
 *
 * - NTLM over HTTP(S) with message sealing (MS-WSMV §2.2.9.1.1). NTLM
 *   authenticates a TCP connection, not a request, so the transport owns a
 *   dedicated keep-alive agent with a single socket and redoes the handshake
 *   whenever that socket is replaced.
 * - Basic over HTTPS only (Basic over HTTP would send the password and every
 *   command in clear; Windows refuses it by default: AllowUnencrypted=false).
 * - Kerberos is left as an `AuthScheme` seam.
 */
import { createHash, X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { JitgateError } from '../../core/errors.js';
import { ENCRYPTED_CONTENT_TYPE, frameEncrypted, isEncryptedContentType, parseEncrypted } from './encrypted-body.js';
import { WinRmErrors } from './errors.js';
import { NtlmClient, NtlmError, type NtlmSession } from './ntlm.js';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP POST on the transport's connection. */
export type PostFn = (headers: Record<string, string>, body: Buffer) => Promise<HttpResult & { socket: Socket }>;

/**
 * An authentication scheme. `ensureAuthenticated` runs any connection
 * handshake; `prepare` and `open` wrap/unwrap each SOAP message.
 */
export interface AuthScheme {
  readonly name: 'ntlm' | 'basic' | 'kerberos';
  /** True when message bodies are encrypted by the scheme itself (NTLM/Kerberos sealing). */
  readonly sealsMessages: boolean;
  /** Run the handshake if the connection `socket` is not yet authenticated (null: none yet). */
  ensureAuthenticated(post: PostFn, socket: Socket | null): Promise<void>;
  /** Forget the connection state (socket closed, error mid-message). */
  reset(): void;
  prepare(soap: Buffer): { headers: Record<string, string>; body: Buffer };
  open(res: HttpResult): Buffer;
}

const SOAP_CONTENT_TYPE = 'application/soap+xml;charset=UTF-8';

export class BasicAuth implements AuthScheme {
  readonly name = 'basic';
  readonly sealsMessages = false;
  private readonly header: string;

  constructor(username: string, password: string) {
    this.header = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
  }

  async ensureAuthenticated(): Promise<void> {}
  reset(): void {}

  prepare(soap: Buffer): { headers: Record<string, string>; body: Buffer } {
    return { headers: { Authorization: this.header, 'Content-Type': SOAP_CONTENT_TYPE }, body: soap };
  }

  open(res: HttpResult): Buffer {
    return res.body;
  }
}

/** Hash of the server certificate for `tls-server-end-point` (RFC 5929 §4.1). */
export function certificateBindingHash(der: Buffer): Buffer {
  // The hash is the certificate's signature hash, except MD5/SHA-1 → SHA-256.
  const alg = signatureHashOf(der);
  return createHash(alg).update(der).digest();
}

function signatureHashOf(der: Buffer): 'sha256' | 'sha384' | 'sha512' {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, ... }
  try {
    const readLen = (at: number): [number, number] => {
      const first = der[at] as number;
      if (first < 0x80) return [first, at + 1];
      const n = first & 0x7f;
      let len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (der[at + 1 + i] as number);
      return [len, at + 1 + n];
    };
    const [, inner] = readLen(1); // outer SEQUENCE
    const [tbsLen, tbsBody] = readLen(inner + 1);
    const algSeq = tbsBody + tbsLen;
    const [, algBody] = readLen(algSeq + 1);
    const [oidLen, oidBody] = readLen(algBody + 1);
    const oid = der.subarray(oidBody, oidBody + oidLen).toString('hex');
    const map: Record<string, 'sha384' | 'sha512'> = {
      '2a864886f70d01010c': 'sha384', // sha384WithRSAEncryption
      '2a864886f70d01010d': 'sha512', // sha512WithRSAEncryption
      '2a8648ce3d040303': 'sha384', // ecdsa-with-SHA384
      '2a8648ce3d040304': 'sha512', // ecdsa-with-SHA512
    };
    return map[oid] ?? 'sha256';
  } catch {
    return 'sha256';
  }
}

export interface NtlmAuthOptions {
  username: string;
  password: string;
  domain?: string;
  logger: Logger;
}

export class NtlmAuth implements AuthScheme {
  readonly name = 'ntlm';
  readonly sealsMessages = true;
  private session: NtlmSession | null = null;
  private socket: Socket | null = null;

  constructor(private readonly opts: NtlmAuthOptions) {}

  reset(): void {
    this.session = null;
    this.socket = null;
  }

  async ensureAuthenticated(post: PostFn, socket: Socket | null): Promise<void> {
    if (this.session && socket && socket === this.socket && !socket.destroyed) return;
    this.reset();
    const client = new NtlmClient({
      username: this.opts.username,
      password: this.opts.password,
      domain: this.opts.domain ?? '',
    });
    const first = await post(
      { Authorization: `Negotiate ${client.negotiate().toString('base64')}`, 'Content-Length': '0' },
      Buffer.alloc(0),
    );
    const challenge = tokenFrom(first.headers['www-authenticate']);
    if (first.status !== 401 || !challenge) {
      throw new NtlmError(`expected an NTLM challenge, got HTTP ${first.status}`, 'auth');
    }
    let certHash: Buffer | undefined;
    const tls = first.socket as TLSSocket;
    if (typeof tls.getPeerCertificate === 'function') {
      const raw = tls.getPeerCertificate(false)?.raw;
      // Channel binding token for Extended Protection (MS-NLMP §3.1.5.1.2).
      if (raw) certHash = certificateBindingHash(new X509Certificate(raw).raw);
    }
    client.setCertHash(certHash);
    const msg3 = client.authenticate(challenge);
    const third = await post(
      { Authorization: `Negotiate ${msg3.toString('base64')}`, 'Content-Length': '0' },
      Buffer.alloc(0),
    );
    if (third.status === 401) throw new NtlmError('credentials rejected', 'auth');
    if (third.status >= 300) throw new NtlmError(`unexpected HTTP ${third.status} after AUTHENTICATE`);
    if (third.socket !== first.socket) throw new NtlmError('the server closed the connection during the handshake');
    this.session = client.session;
    this.socket = third.socket;
    this.opts.logger.debug({ scheme: 'ntlm' }, 'winrm ntlm context established');
  }

  prepare(soap: Buffer): { headers: Record<string, string>; body: Buffer } {
    if (!this.session) throw new NtlmError('no NTLM session');
    const { sealed, signature } = this.session.seal(soap);
    return { headers: { 'Content-Type': ENCRYPTED_CONTENT_TYPE }, body: frameEncrypted(sealed, signature, soap.length) };
  }

  open(res: HttpResult): Buffer {
    if (!this.session) throw new NtlmError('no NTLM session');
    if (res.body.length === 0) return res.body;
    if (!isEncryptedContentType(res.headers['content-type'])) {
      // A sealed exchange must stay sealed; an unencrypted reply is a downgrade.
      throw new NtlmError('the server answered a sealed request without encryption');
    }
    const p = parseEncrypted(res.body);
    return this.session.unseal(p.sealed, p.signature);
  }
}

function tokenFrom(header: string | undefined): Buffer | null {
  if (!header) return null;
  for (const part of header.split(',')) {
    const m = /^\s*(?:Negotiate|NTLM)\s+([A-Za-z0-9+/=]+)\s*$/i.exec(part);
    if (m?.[1]) return Buffer.from(m[1], 'base64');
  }
  return null;
}

export interface TransportOptions {
  endpoint: string;
  auth: AuthScheme;
  /** PEM CA bundle trusted for HTTPS (default: Node's roots). */
  caCert?: string;
  timeoutMs: number;
  logger: Logger;
}

/** A sealed/authenticated SOAP exchange: returns the (unwrapped) response body and HTTP status. */
export class WsmanTransport {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private lastSocket: Socket | null = null;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: TransportOptions) {
    this.url = new URL(opts.endpoint);
    const secure = this.url.protocol === 'https:';
    if (!secure && this.url.protocol !== 'http:') {
      throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_INSECURE, {
        auth: opts.auth.name,
        scheme: this.url.protocol,
        reason: 'the endpoint must be http: or https:',
      });
    }
    if (!secure && !opts.auth.sealsMessages) {
      throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_INSECURE, {
        auth: opts.auth.name,
        scheme: 'http',
        reason: 'use https (port 5986) or an authentication that seals messages',
      });
    }
    // NTLM is bound to one TCP connection: one socket, kept alive (MS-WSMV §3.1.4.1.1).
    const agentOpts = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1, keepAliveMsecs: 30_000 };
    this.agent = secure
      ? new https.Agent({ ...agentOpts, ...(opts.caCert ? { ca: opts.caCert } : {}) })
      : new http.Agent(agentOpts);
  }

  get endpoint(): string {
    return this.opts.endpoint;
  }

  private post: PostFn = (headers, body) =>
    new Promise((resolve, reject) => {
      const mod = this.url.protocol === 'https:' ? https : http;
      const req = mod.request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            ...headers,
            'Content-Length': String(body.length),
            Connection: 'Keep-Alive',
            'User-Agent': 'jitgate WinRM client',
          },
          timeout: this.opts.timeoutMs,
        },
        (res) => {
          // Keep-alive agents detach the socket at 'end'; remember it now.
          const socket = res.socket;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            this.lastSocket = socket;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), socket });
          });
        },
      );
      req.on('timeout', () => req.destroy(new TimeoutError()));
      req.on('error', reject);
      req.end(body);
    });

  /**
   * POST one SOAP envelope. Returns status and plaintext body for 200 and
   * for 500 (SOAP faults); throws typed errors for everything else.
   */
  exchange(soap: string, operation: string): Promise<{ status: number; body: string }> {
    // One exchange at a time: the NTLM handshake and the per-direction RC4
    // streams and sequence numbers only work in strict request order.
    const run = this.queue.then(() => this.exchangeNow(soap, operation));
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async exchangeNow(soap: string, operation: string): Promise<{ status: number; body: string }> {
    const plain = Buffer.from(soap, 'utf8');
    for (let attempt = 0; ; attempt++) {
      try {
        await this.opts.auth.ensureAuthenticated(this.post, this.liveSocket());
        const { headers, body } = this.opts.auth.prepare(plain);
        const res = await this.post(headers, body);
        if (res.status === 401) {
          this.opts.auth.reset();
          // The connection was replaced under a connection-bound scheme: redo the handshake once.
          if (this.opts.auth.sealsMessages && attempt === 0) continue;
          throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_AUTH, { endpoint: this.opts.endpoint, reason: 'HTTP 401' });
        }
        if (res.status !== 200 && res.status !== 500) {
          this.opts.auth.reset();
          const err = res.status === 503 || res.status === 502 ? WinRmErrors.JIT_ERR_WINRM_TRANSPORT : WinRmErrors.JIT_ERR_WINRM_PROTOCOL;
          throw new JitgateError(err, { endpoint: this.opts.endpoint, reason: `HTTP ${res.status} during ${operation}` });
        }
        return { status: res.status, body: this.opts.auth.open(res).toString('utf8') };
      } catch (err) {
        throw this.translate(err, operation);
      }
    }
  }

  private liveSocket(): Socket | null {
    const s = this.lastSocket;
    return s && !s.destroyed ? s : null;
  }

  private translate(err: unknown, operation: string): JitgateError {
    if (err instanceof JitgateError) return err;
    // Any failure mid-message desynchronises the RC4 streams: start over on a new connection.
    this.opts.auth.reset();
    this.destroySockets();
    if (err instanceof TimeoutError) {
      return new JitgateError(WinRmErrors.JIT_ERR_WINRM_TIMEOUT, { operation, ms: this.opts.timeoutMs }, { cause: err });
    }
    if (err instanceof NtlmError) {
      const isAuth = err.kind === 'auth';
      return new JitgateError(
        isAuth ? WinRmErrors.JIT_ERR_WINRM_AUTH : WinRmErrors.JIT_ERR_WINRM_PROTOCOL,
        isAuth ? { endpoint: this.opts.endpoint, reason: err.message } : { reason: err.message },
        { cause: err },
      );
    }
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      return new JitgateError(WinRmErrors.JIT_ERR_WINRM_AUTH, { endpoint: this.opts.endpoint, reason: `TLS: ${code}` }, { cause: err });
    }
    const reason = code || (err instanceof Error ? err.message : String(err));
    return new JitgateError(WinRmErrors.JIT_ERR_WINRM_TRANSPORT, { endpoint: this.opts.endpoint, reason }, { cause: err });
  }

  private destroySockets(): void {
    this.lastSocket?.destroy();
    this.lastSocket = null;
  }

  close(): void {
    this.opts.auth.reset();
    this.destroySockets();
    this.agent.destroy();
  }
}

class TimeoutError extends Error {
  constructor() {
    super('request timed out');
    this.name = 'TimeoutError';
  }
}
