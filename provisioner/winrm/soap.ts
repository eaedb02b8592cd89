/**
 * WS-Management envelopes for the Windows Remote Shell (MS-WSMV §3.1.4.1.x,
 * MS-WSMV §2.2.4 for the shell body elements) and the parsers for their
 * responses. Builders are pure: golden files in test/winrm/golden pin them.
 */
import { escapeXml, find, findAll, parseXml, type XmlElement } from './xml.js';

export const NS = {
  soap: 'http://www.w3.org/2003/05/soap-envelope',
  addressing: 'http://schemas.xmlsoap.org/ws/2004/08/addressing',
  wsman: 'http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd',
  msWsman: 'http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd',
  shell: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell',
  transfer: 'http://schemas.xmlsoap.org/ws/2004/09/transfer',
  wsmanFault: 'http://schemas.microsoft.com/wbem/wsman/1/wsmanfault',
} as const;

export const RESOURCE_CMD = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd';

export const ACTION = {
  create: 'http://schemas.xmlsoap.org/ws/2004/09/transfer/Create',
  delete: 'http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete',
  command: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command',
  send: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send',
  receive: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive',
  signal: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal',
} as const;

export const SIGNAL_TERMINATE = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate';
export const COMMAND_STATE_DONE = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done';
const ANONYMOUS = 'http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous';

export interface HeaderOptions {
  /** The endpoint URL (a:To). */
  to: string;
  /** `uuid:...` */
  messageId: string;
  action: string;
  shellId?: string;
  /** Seconds; WinRM's default MaxTimeoutms is 60 s. */
  operationTimeoutSec: number;
  options?: Record<string, string>;
}

function header(h: HeaderOptions): string {
  const selector = h.shellId
    ? `<w:SelectorSet><w:Selector Name="ShellId">${escapeXml(h.shellId)}</w:Selector></w:SelectorSet>`
    : '';
  const opts = h.options
    ? `<w:OptionSet>${Object.entries(h.options)
        .map(([k, v]) => `<w:Option Name="${escapeXml(k)}">${escapeXml(v)}</w:Option>`)
        .join('')}</w:OptionSet>`
    : '';
  return (
    `<s:Header>` +
    `<a:To>${escapeXml(h.to)}</a:To>` +
    `<a:ReplyTo><a:Address s:mustUnderstand="true">${ANONYMOUS}</a:Address></a:ReplyTo>` +
    `<w:MaxEnvelopeSize s:mustUnderstand="true">153600</w:MaxEnvelopeSize>` +
    `<a:MessageID>${escapeXml(h.messageId)}</a:MessageID>` +
    `<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>` +
    `<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>` +
    `<w:OperationTimeout>PT${h.operationTimeoutSec}S</w:OperationTimeout>` +
    `<w:ResourceURI s:mustUnderstand="true">${RESOURCE_CMD}</w:ResourceURI>` +
    `<a:Action s:mustUnderstand="true">${h.action}</a:Action>` +
    selector +
    opts +
    `</s:Header>`
  );
}

function envelope(h: HeaderOptions, body: string): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?>\n` +
    `<s:Envelope xmlns:s="${NS.soap}" xmlns:a="${NS.addressing}" xmlns:w="${NS.wsman}" xmlns:p="${NS.msWsman}" xmlns:rsp="${NS.shell}">` +
    header(h) +
    (body ? `<s:Body>${body}</s:Body>` : '<s:Body/>') +
    `</s:Envelope>`
  );
}

type Base = Omit<HeaderOptions, 'action' | 'shellId' | 'options'>;

export function createShellEnvelope(b: Base): string {
  return envelope(
    { ...b, action: ACTION.create, options: { WINRS_NOPROFILE: 'TRUE', WINRS_CODEPAGE: '65001' } },
    `<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>`,
  );
}

export function commandEnvelope(b: Base & { shellId: string; command: string; args: readonly string[] }): string {
  const args = b.args.map((a) => `<rsp:Arguments>${escapeXml(a)}</rsp:Arguments>`).join('');
  return envelope(
    {
      ...b,
      action: ACTION.command,
      options: { WINRS_CONSOLEMODE_STDIN: 'TRUE', WINRS_SKIP_CMD_SHELL: 'TRUE' },
    },
    `<rsp:CommandLine><rsp:Command>${escapeXml(b.command)}</rsp:Command>${args}</rsp:CommandLine>`,
  );
}

export function sendEnvelope(b: Base & { shellId: string; commandId: string; data: Buffer; end: boolean }): string {
  return envelope(
    { ...b, action: ACTION.send },
    `<rsp:Send><rsp:Stream Name="stdin" CommandId="${escapeXml(b.commandId)}"${b.end ? ' End="true"' : ''}>` +
      `${b.data.toString('base64')}</rsp:Stream></rsp:Send>`,
  );
}

export function receiveEnvelope(b: Base & { shellId: string; commandId: string }): string {
  return envelope(
    { ...b, action: ACTION.receive },
    `<rsp:Receive><rsp:DesiredStream CommandId="${escapeXml(b.commandId)}">stdout stderr</rsp:DesiredStream></rsp:Receive>`,
  );
}

export function signalEnvelope(b: Base & { shellId: string; commandId: string }): string {
  return envelope(
    { ...b, action: ACTION.signal },
    `<rsp:Signal CommandId="${escapeXml(b.commandId)}"><rsp:Code>${SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>`,
  );
}

export function deleteShellEnvelope(b: Base & { shellId: string }): string {
  return envelope({ ...b, action: ACTION.delete }, '');
}

export interface SoapFault {
  /** e.g. `s:Receiver`. */
  code: string;
  subcode: string;
  reason: string;
  /** WSManFault Code attribute (decimal string), '' when absent. */
  wsmanCode: string;
  /** WSManFault Message text, '' when absent. */
  wsmanMessage: string;
}

/** The SOAP fault in a response body, or null. */
export function parseFault(root: XmlElement): SoapFault | null {
  const fault = find(root, 'Fault', NS.soap);
  if (!fault) return null;
  const code = find(fault, 'Code', NS.soap);
  const values = code ? findAll(code, 'Value', NS.soap) : [];
  const reason = find(fault, 'Text', NS.soap)?.text.trim() ?? '';
  const wf = find(fault, 'WSManFault', NS.wsmanFault);
  const msg = wf ? find(wf, 'Message', NS.wsmanFault) : undefined;
  const msgText = msg ? collectText(msg).trim() : '';
  return {
    code: values[0]?.text.trim() ?? '',
    subcode: values[1]?.text.trim() ?? '',
    reason,
    wsmanCode: wf?.attrs['Code'] ?? '',
    wsmanMessage: msgText,
  };
}

function collectText(e: XmlElement): string {
  return e.text + e.children.map(collectText).join('');
}

export function parseEnvelope(xml: string): XmlElement {
  const root = parseXml(xml);
  if (root.name !== 'Envelope' || root.ns !== NS.soap) throw new Error('not a SOAP 1.2 envelope');
  return root;
}

export function parseShellId(root: XmlElement): string | null {
  const sel = findAll(root, 'Selector', NS.wsman).find((e) => e.attrs['Name'] === 'ShellId');
  if (sel) return sel.text.trim();
  return find(root, 'ShellId', NS.shell)?.text.trim() ?? null;
}

export function parseCommandId(root: XmlElement): string | null {
  return find(root, 'CommandId', NS.shell)?.text.trim() ?? null;
}

export interface ReceiveChunk {
  stdout: Buffer;
  stderr: Buffer;
  done: boolean;
  exitCode: number | null;
}

export function parseReceive(root: XmlElement): ReceiveChunk {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  for (const s of findAll(root, 'Stream', NS.shell)) {
    const data = Buffer.from(s.text.trim(), 'base64');
    if (s.attrs['Name'] === 'stdout') stdout.push(data);
    else if (s.attrs['Name'] === 'stderr') stderr.push(data);
  }
  const state = find(root, 'CommandState', NS.shell);
  const done = state?.attrs['State'] === COMMAND_STATE_DONE;
  const exit = state ? find(state, 'ExitCode', NS.shell) : undefined;
  return {
    stdout: Buffer.concat(stdout),
    stderr: Buffer.concat(stderr),
    done,
    exitCode: exit ? Number.parseInt(exit.text.trim(), 10) : null,
  };
}

/**
 * PowerShell writes error records to stderr as CLIXML (`#< CLIXML` then an
 * `<Objs>` document whose `<S S="Error">` strings hold the text, with
 * `_xHHHH_` escapes for control characters). Returns plain text; anything
 * that is not CLIXML comes back unchanged.
 */
export function decodeClixml(stderr: string): string {
  const marker = '#< CLIXML';
  if (!stderr.startsWith(marker)) return stderr;
  const body = stderr.slice(marker.length).trim();
  try {
    const root = parseXml(body);
    const lines = findAll(root, 'S')
      .filter((s) => s.attrs['S'] === 'Error')
      .map((s) => s.text.replace(/_x([0-9A-Fa-f]{4})_/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
    return lines.join('').trim();
  } catch {
    return stderr;
  }
}
