/**
 * A WS-Management (Windows Remote Shell) test server on 127.0.0.1 that speaks
 * the real protocol closely enough for pywinrm and jitgate's client:
 * Basic and NTLM (sealed, MS-WSMV §2.2.9.1.1) authentication, shells,
 * commands, stdin, Receive with w:TimedOut, Signal, Delete, SOAP faults.
 *
 * It runs no PowerShell. A command is "executed" only when it is one the
 * server knows: jitgate's constant account script (recognised by its exact
 * -EncodedCommand, whose stdin JSON is applied to the WindowsModel), or a few
 * canned commands for pywinrm (ipconfig, two run_ps scripts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { ENCRYPTED_CONTENT_TYPE, frameEncrypted, isEncryptedContentType, parseEncrypted } from '../../provisioner/winrm/encrypted-body.js';
import {
  AvId,
  NtlmFlags,
  buildChallenge,
  encodeAvPairs,
  fileTime,
  verifyAuthenticate,
  type NtlmSession,
} from '../../provisioner/winrm/ntlm.js';
import { ENCODED_ACCOUNT_SCRIPT, type ScriptInput } from '../../provisioner/winrm/scripts.js';
import { ACTION, COMMAND_STATE_DONE, NS, RESOURCE_CMD } from '../../provisioner/winrm/soap.js';
import { escapeXml, find, findAll, parseXml, type XmlElement } from '../../provisioner/winrm/xml.js';
import { WindowsModel, interpretAccountScript } from './windows-model.js';

export interface TestServerOptions {
  users: Record<string, string>;
  /** Accept Basic; over plain HTTP only with `allowUnencrypted` (winrm set winrm/config/service @{AllowUnencrypted="true"}). */
  basic?: boolean;
  ntlm?: boolean;
  allowUnencrypted?: boolean;
  tls?: { key: string; cert: string };
  /** Require MsvAvChannelBindings to match the TLS certificate (Extended Protection). */
  requireChannelBinding?: Buffer;
  model?: WindowsModel;
}

/** Fault injection, consumed as it fires. */
export interface Injection {
  /** Answer the next N authenticated requests with 401 (and drop the NTLM context). */
  unauthorized: number;
  /** Answer the next request with this action (e.g. 'Command') with HTTP 500 + SOAP fault. */
  faultOn: string | null;
  /** Answer the first N Receives of each command with the w:TimedOut fault. */
  timedOutReceives: number;
  /** Destroy the connection on the next N Receives (after the command has run). */
  resetOnReceive: number;
  /** Delay the next response to this action by `delayMs`. */
  delayOn: string | null;
  delayMs: number;
}

export interface SeenRequest {
  action: string;
  auth: 'basic' | 'ntlm';
  sealed: boolean;
  user: string;
  commandLine?: string;
}

interface Conn {
  ntlm?: { negotiate: Buffer; challenge: Buffer; serverChallenge: Buffer };
  session?: NtlmSession;
  user?: string;
}

interface Command {
  id: string;
  command: string;
  args: string[];
  stdin: Buffer[];
  stdinDone: boolean;
  result: { stdout: Buffer; stderr: Buffer; exitCode: number } | null;
  timedOutSent: number;
}

interface Shell {
  id: string;
  commands: Map<string, Command>;
}

const ACTION_NAMES: Record<string, string> = {
  [ACTION.create]: 'Create',
  [ACTION.delete]: 'Delete',
  [ACTION.command]: 'Command',
  [ACTION.send]: 'Send',
  [ACTION.receive]: 'Receive',
  [ACTION.signal]: 'Signal',
};

export class WsmanTestServer {
  readonly model: WindowsModel;
  readonly seen: SeenRequest[] = [];
  readonly shells = new Map<string, Shell>();
  readonly inject: Injection = { unauthorized: 0, faultOn: null, timedOutReceives: 0, resetOnReceive: 0, delayOn: null, delayMs: 0 };
  private readonly conns = new WeakMap<Socket, Conn>();
  private readonly sockets = new Set<Socket>();
  private server: http.Server | https.Server | null = null;
  port = 0;

  constructor(readonly opts: TestServerOptions) {
    this.model = opts.model ?? new WindowsModel();
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.port}/wsman`;
  }

  async start(): Promise<this> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.handle(req, res, Buffer.concat(chunks)).catch((err: unknown) => {
          res.statusCode = 500;
          res.end(String(err));
        });
      });
    };
    this.server = this.opts.tls ? https.createServer({ key: this.opts.tls.key, cert: this.opts.tls.cert }, handler) : http.createServer(handler);
    this.server.keepAliveTimeout = 60_000;
    this.server.on(this.opts.tls ? 'secureConnection' : 'connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private conn(req: http.IncomingMessage): Conn {
    const s = req.socket;
    let c = this.conns.get(s);
    if (!c) {
      c = {};
      this.conns.set(s, c);
    }
    return c;
  }

  private challengeHeaders(): string[] {
    const h: string[] = [];
    if (this.opts.ntlm) h.push('Negotiate');
    if (this.opts.basic) h.push('Basic realm="WSMAN"');
    return h;
  }

  private unauthorized(res: http.ServerResponse): void {
    res.writeHead(401, { 'WWW-Authenticate': this.challengeHeaders(), 'Content-Length': '0' });
    res.end();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/wsman') {
      res.writeHead(404, { 'Content-Length': '0' }).end();
      return;
    }
    const conn = this.conn(req);
    const authz = req.headers.authorization ?? '';
    let auth: 'basic' | 'ntlm';
    let user: string;

    const ntlmTok = /^(?:Negotiate|NTLM)\s+(\S+)$/i.exec(authz);
    if (ntlmTok?.[1] && this.opts.ntlm) {
      const tok = Buffer.from(ntlmTok[1], 'base64');
      const type = tok.length >= 12 ? tok.readUInt32LE(8) : 0;
      if (type === 1) {
        const serverChallenge = randomBytes(8);
        const challenge = buildChallenge({
          flags:
            (tok.readUInt32LE(12) &
              (NtlmFlags.UNICODE | NtlmFlags.SIGN | NtlmFlags.SEAL | NtlmFlags.ALWAYS_SIGN | NtlmFlags.EXTENDED_SESSIONSECURITY |
                NtlmFlags.F128 | NtlmFlags.KEY_EXCH | NtlmFlags.F56 | NtlmFlags.VERSION | NtlmFlags.NTLM)) |
            NtlmFlags.TARGET_INFO |
            NtlmFlags.TARGET_TYPE_SERVER |
            NtlmFlags.REQUEST_TARGET,
          serverChallenge,
          targetName: this.model.computerName,
          targetInfo: encodeAvPairs([
            { id: AvId.NbDomainName, value: Buffer.from(this.model.computerName, 'utf16le') },
            { id: AvId.NbComputerName, value: Buffer.from(this.model.computerName, 'utf16le') },
            { id: AvId.DnsComputerName, value: Buffer.from('wintest.local', 'utf16le') },
            { id: AvId.Timestamp, value: fileTime() },
          ]),
        });
        conn.ntlm = { negotiate: tok, challenge, serverChallenge };
        conn.session = undefined;
        res.writeHead(401, { 'WWW-Authenticate': `Negotiate ${challenge.toString('base64')}`, 'Content-Length': '0' });
        res.end();
        return;
      }
      if (type === 3 && conn.ntlm) {
        try {
          const acc = verifyAuthenticate({
            ...conn.ntlm,
            authenticate: tok,
            passwordFor: (u) => this.opts.users[u],
          });
          if (this.opts.requireChannelBinding && !acc.channelBindings?.equals(this.opts.requireChannelBinding)) {
            throw new Error('channel binding mismatch');
          }
          conn.session = acc.session;
          conn.user = acc.user;
        } catch {
          conn.ntlm = undefined;
          this.unauthorized(res);
          return;
        }
        conn.ntlm = undefined;
        if (body.length === 0) {
          res.writeHead(200, { 'Content-Length': '0' }).end();
          return;
        }
      } else {
        this.unauthorized(res);
        return;
      }
    }

    const basic = /^Basic\s+(\S+)$/i.exec(authz);
    if (basic?.[1] && this.opts.basic) {
      if (!this.opts.tls && !this.opts.allowUnencrypted) {
        this.unauthorized(res);
        return;
      }
      const [u, ...rest] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
      if (!u || this.opts.users[u] === undefined || this.opts.users[u] !== rest.join(':')) {
        this.unauthorized(res);
        return;
      }
      auth = 'basic';
      user = u;
    } else if (conn.session && conn.user !== undefined) {
      auth = 'ntlm';
      user = conn.user;
    } else {
      this.unauthorized(res);
      return;
    }

    if (this.inject.unauthorized > 0) {
      this.inject.unauthorized--;
      conn.session = undefined;
      this.unauthorized(res);
      return;
    }

    let soap: Buffer;
    const sealed = isEncryptedContentType(req.headers['content-type']);
    if (auth === 'ntlm') {
      if (!sealed) {
        // WinRM refuses unencrypted messages on HTTP unless AllowUnencrypted.
        if (!this.opts.tls && !this.opts.allowUnencrypted) {
          res.writeHead(400, { 'Content-Length': '0' }).end();
          return;
        }
        soap = body;
      } else {
        const p = parseEncrypted(body);
        soap = (conn.session as NtlmSession).unseal(p.sealed, p.signature);
      }
    } else {
      soap = body;
    }

    const { status, xml, action, commandLine, reset } = this.dispatch(soap.toString('utf8'));
    this.seen.push({ action, auth, sealed, user, ...(commandLine ? { commandLine } : {}) });
    if (reset) {
      req.socket.destroy();
      return;
    }
    if (this.inject.delayOn === action && this.inject.delayMs > 0) {
      this.inject.delayOn = null;
      await new Promise((r) => setTimeout(r, this.inject.delayMs));
      if (req.socket.destroyed) return;
    }
    const out = Buffer.from(xml, 'utf8');
    if (auth === 'ntlm' && sealed) {
      const w = (conn.session as NtlmSession).seal(out);
      const framed = frameEncrypted(w.sealed, w.signature, out.length);
      res.writeHead(status, { 'Content-Type': ENCRYPTED_CONTENT_TYPE, 'Content-Length': String(framed.length) });
      res.end(framed);
    } else {
      res.writeHead(status, { 'Content-Type': 'application/soap+xml;charset=UTF-8', 'Content-Length': String(out.length) });
      res.end(out);
    }
  }

  private dispatch(text: string): { status: number; xml: string; action: string; commandLine?: string; reset?: boolean } {
    let root: XmlElement;
    try {
      root = parseXml(text);
    } catch {
      return { status: 500, xml: fault('', 's:Sender', 'w:InvalidMessageInformation', '2150858817', 'Bad XML'), action: 'invalid' };
    }
    const header = find(root, 'Header', NS.soap);
    const body = find(root, 'Body', NS.soap);
    const actionUri = (header && find(header, 'Action', NS.addressing)?.text.trim()) ?? '';
    const messageId = (header && find(header, 'MessageID', NS.addressing)?.text.trim()) ?? '';
    const resource = (header && find(header, 'ResourceURI', NS.wsman)?.text.trim()) ?? '';
    const action = ACTION_NAMES[actionUri] ?? actionUri;
    const shellId = header ? findAll(header, 'Selector', NS.wsman).find((s) => s.attrs['Name'] === 'ShellId')?.text.trim() : undefined;
    if (resource !== RESOURCE_CMD) {
      return { status: 500, xml: fault(messageId, 's:Sender', 'w:DestinationUnreachable', '2150858770', 'The WS-Management service cannot process the request because the resource URI is not supported.'), action };
    }
    if (this.inject.faultOn === action) {
      this.inject.faultOn = null;
      return { status: 500, xml: fault(messageId, 's:Receiver', 'w:InternalError', '2147943418', 'The service is shutting down (injected).'), action };
    }
    const shell = shellId ? this.shells.get(shellId) : undefined;
    if (action !== 'Create' && !shell) {
      return { status: 500, xml: fault(messageId, 's:Sender', 'w:InvalidSelectors', '2150858843', 'The request for the Windows Remote Shell with ShellId failed because the shell was not found on the server.'), action };
    }
    switch (action) {
      case 'Create': {
        const id = randomUUID().toUpperCase();
        this.shells.set(id, { id, commands: new Map() });
        return {
          status: 200,
          action,
          xml: response(messageId, 'http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse',
            `<x:ResourceCreated><a:Address>${this.url}</a:Address><a:ReferenceParameters><w:ResourceURI>${RESOURCE_CMD}</w:ResourceURI>` +
              `<w:SelectorSet><w:Selector Name="ShellId">${id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>` +
              `<rsp:Shell><rsp:ShellId>${id}</rsp:ShellId><rsp:ResourceUri>${RESOURCE_CMD}</rsp:ResourceUri><rsp:State>Connected</rsp:State></rsp:Shell>`),
        };
      }
      case 'Command': {
        const line = body && find(body, 'CommandLine', NS.shell);
        const command = (line && find(line, 'Command', NS.shell)?.text.trim()) ?? '';
        const args = line ? findAll(line, 'Arguments', NS.shell).map((a) => a.text) : [];
        const id = randomUUID().toUpperCase();
        (shell as Shell).commands.set(id, { id, command, args, stdin: [], stdinDone: false, result: null, timedOutSent: 0 });
        return {
          status: 200,
          action,
          commandLine: [command, ...args].join(' '),
          xml: response(messageId, 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse',
            `<rsp:CommandResponse><rsp:CommandId>${id}</rsp:CommandId></rsp:CommandResponse>`),
        };
      }
      case 'Send': {
        const stream = body && find(body, 'Stream', NS.shell);
        const cmd = stream ? (shell as Shell).commands.get(stream.attrs['CommandId'] ?? '') : undefined;
        if (!stream || !cmd) return { status: 500, xml: fault(messageId, 's:Sender', 'w:InvalidParameter', '2150858882', 'Unknown CommandId'), action };
        cmd.stdin.push(Buffer.from(stream.text.trim(), 'base64'));
        if (stream.attrs['End'] === 'true') cmd.stdinDone = true;
        return { status: 200, action, xml: response(messageId, 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse', '<rsp:SendResponse/>') };
      }
      case 'Receive': {
        const ds = body && find(body, 'DesiredStream', NS.shell);
        const cmd = ds ? (shell as Shell).commands.get(ds.attrs['CommandId'] ?? '') : undefined;
        if (!cmd) return { status: 500, xml: fault(messageId, 's:Sender', 'w:InvalidParameter', '2150858882', 'Unknown CommandId'), action };
        if (cmd.timedOutSent < this.inject.timedOutReceives) {
          cmd.timedOutSent++;
          return {
            status: 500,
            action,
            xml: fault(messageId, 's:Receiver', 'w:TimedOut', '2150858793', 'The WS-Management service cannot complete the operation within the time specified in OperationTimeout.'),
          };
        }
        cmd.result ??= this.execute(cmd);
        if (this.inject.resetOnReceive > 0) {
          this.inject.resetOnReceive--;
          return { status: 0, xml: '', action, reset: true };
        }
        const r = cmd.result;
        const streams =
          (r.stdout.length ? `<rsp:Stream Name="stdout" CommandId="${cmd.id}">${r.stdout.toString('base64')}</rsp:Stream>` : '') +
          `<rsp:Stream Name="stdout" CommandId="${cmd.id}" End="true"></rsp:Stream>` +
          (r.stderr.length ? `<rsp:Stream Name="stderr" CommandId="${cmd.id}">${r.stderr.toString('base64')}</rsp:Stream>` : '') +
          `<rsp:Stream Name="stderr" CommandId="${cmd.id}" End="true"></rsp:Stream>`;
        return {
          status: 200,
          action,
          xml: response(messageId, 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse',
            `<rsp:ReceiveResponse>${streams}<rsp:CommandState CommandId="${cmd.id}" State="${COMMAND_STATE_DONE}"><rsp:ExitCode>${r.exitCode}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>`),
        };
      }
      case 'Signal': {
        const sig = body && find(body, 'Signal', NS.shell);
        (shell as Shell).commands.delete(sig?.attrs['CommandId'] ?? '');
        return { status: 200, action, xml: response(messageId, 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse', '<rsp:SignalResponse/>') };
      }
      case 'Delete': {
        this.shells.delete((shell as Shell).id);
        return { status: 200, action, xml: response(messageId, 'http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse', '') };
      }
      default:
        return { status: 500, action, xml: fault(messageId, 's:Sender', 'a:ActionNotSupported', '2150858754', 'The action is not supported by the service.') };
    }
  }

  /** Run a known command against the model; unknown ones fail like cmd.exe does. */
  private execute(cmd: Command): { stdout: Buffer; stderr: Buffer; exitCode: number } {
    const ok = (stdout: string): { stdout: Buffer; stderr: Buffer; exitCode: number } => ({ stdout: Buffer.from(stdout), stderr: Buffer.alloc(0), exitCode: 0 });
    const words = [cmd.command, ...cmd.args].join(' ').trim().split(/\s+/);
    const exe = (words[0] ?? '').toLowerCase().replace(/^"|"$/g, '');
    if (exe === 'ipconfig') {
      return ok('\r\nWindows IP Configuration\r\n\r\n\r\nEthernet adapter Ethernet:\r\n\r\n   IPv4 Address. . . . . . . . . . . : 127.0.0.1\r\n');
    }
    if (exe === 'powershell' || exe === 'powershell.exe') {
      const i = words.findIndex((w) => /^-enc(odedcommand)?$/i.test(w));
      const encoded = i >= 0 ? words[i + 1] : undefined;
      if (encoded === ENCODED_ACCOUNT_SCRIPT) {
        let input: ScriptInput;
        try {
          input = JSON.parse(Buffer.from(Buffer.concat(cmd.stdin).toString('latin1').trim(), 'base64').toString('utf8')) as ScriptInput;
        } catch {
          return ok(Buffer.from(JSON.stringify({ ok: false, error: 'bad_input', detail: 'stdin' })).toString('base64'));
        }
        const out = interpretAccountScript(this.model, input);
        return ok(Buffer.from(JSON.stringify(out), 'utf8').toString('base64'));
      }
      const script = encoded ? Buffer.from(encoded, 'base64').toString('utf16le').trim() : '';
      if (script === '$env:COMPUTERNAME') return ok(`${this.model.computerName}\r\n`);
      if (script === "Write-Error 'boom'") {
        const clixml =
          '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">Write-Error \'boom\' : boom_x000D__x000A_</S>' +
          '<S S="Error">    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException_x000D__x000A_</S></Objs>';
        return { stdout: Buffer.alloc(0), stderr: Buffer.from(clixml), exitCode: 1 };
      }
      return { stdout: Buffer.alloc(0), stderr: Buffer.from('unknown script (the test server runs no PowerShell)\r\n'), exitCode: 1 };
    }
    return {
      stdout: Buffer.alloc(0),
      stderr: Buffer.from(`'${words[0] ?? ''}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n`),
      exitCode: 1,
    };
  }
}

const ENVELOPE_OPEN =
  `<s:Envelope xml:lang="en-US" xmlns:s="${NS.soap}" xmlns:a="${NS.addressing}" xmlns:x="${NS.transfer}" ` +
  `xmlns:w="${NS.wsman}" xmlns:rsp="${NS.shell}" xmlns:p="${NS.msWsman}">`;

function response(relatesTo: string, action: string, body: string): string {
  return (
    ENVELOPE_OPEN +
    `<s:Header><a:Action>${action}</a:Action><a:MessageID>uuid:${randomUUID().toUpperCase()}</a:MessageID>` +
    `<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>${escapeXml(relatesTo)}</a:RelatesTo></s:Header>` +
    (body ? `<s:Body>${body}</s:Body>` : '<s:Body></s:Body>') +
    `</s:Envelope>`
  );
}

export function fault(relatesTo: string, code: string, subcode: string, wsmanCode: string, message: string): string {
  return response(
    relatesTo,
    'http://schemas.dmtf.org/wbem/wsman/1/wsman/fault',
    `<s:Fault><s:Code><s:Value>${code}</s:Value><s:Subcode><s:Value>${subcode}</s:Value></s:Subcode></s:Code>` +
      `<s:Reason><s:Text xml:lang="en-US">${escapeXml(message)} </s:Text></s:Reason>` +
      `<s:Detail><f:WSManFault xmlns:f="${NS.wsmanFault}" Code="${wsmanCode}" Machine="127.0.0.1"><f:Message>${escapeXml(message)} </f:Message></f:WSManFault></s:Detail></s:Fault>`,
  );
}
