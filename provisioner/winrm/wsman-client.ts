/**
 * Windows Remote Shell over WS-Management (MS-WSMV §3.1.4.1.x): create a
 * cmd shell, start one command, feed stdin, receive output until the
 * command is Done, then terminate and delete the shell.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { JitgateError } from '../../core/errors.js';
import { WinRmErrors, WSMAN_TIMED_OUT } from './errors.js';
import {
  commandEnvelope,
  createShellEnvelope,
  decodeClixml,
  deleteShellEnvelope,
  parseCommandId,
  parseEnvelope,
  parseFault,
  parseReceive,
  parseShellId,
  receiveEnvelope,
  sendEnvelope,
  signalEnvelope,
} from './soap.js';
import type { WsmanTransport } from './transport.js';
import type { XmlElement } from './xml.js';

export interface RunResult {
  exitCode: number;
  stdout: Buffer;
  /** stderr as text, CLIXML decoded. */
  stderr: string;
}

export interface WsmanClientOptions {
  transport: WsmanTransport;
  logger: Logger;
  /** w:OperationTimeout sent to the server (seconds); Receive polls this long. */
  operationTimeoutSec?: number;
  /** Upper bound on a whole command, Receive retries included. */
  commandTimeoutMs?: number;
}

export class WsmanClient {
  private readonly opTimeout: number;
  private readonly commandTimeoutMs: number;

  constructor(private readonly opts: WsmanClientOptions) {
    this.opTimeout = opts.operationTimeoutSec ?? 20;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 120_000;
  }

  private base(): { to: string; messageId: string; operationTimeoutSec: number } {
    return { to: this.opts.transport.endpoint, messageId: `uuid:${randomUUID().toUpperCase()}`, operationTimeoutSec: this.opTimeout };
  }

  /** Send one envelope; SOAP faults become JIT_ERR_WINRM_FAULT (w:TimedOut is returned as null). */
  private async call(operation: string, soap: string, allowTimedOut = false): Promise<XmlElement | null> {
    const res = await this.opts.transport.exchange(soap, operation);
    let root: XmlElement;
    try {
      root = parseEnvelope(res.body);
    } catch (err) {
      throw new JitgateError(
        WinRmErrors.JIT_ERR_WINRM_PROTOCOL,
        { reason: `unparseable ${operation} response (HTTP ${res.status})` },
        { cause: err },
      );
    }
    const fault = parseFault(root);
    if (fault) {
      if (allowTimedOut && fault.wsmanCode === WSMAN_TIMED_OUT) return null;
      throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_FAULT, {
        operation,
        wsmanCode: fault.wsmanCode || fault.subcode || fault.code,
        reason: fault.wsmanMessage || fault.reason,
      });
    }
    if (res.status !== 200) {
      throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_PROTOCOL, { reason: `HTTP ${res.status} without a fault during ${operation}` });
    }
    return root;
  }

  async createShell(): Promise<string> {
    const root = await this.call('Create', createShellEnvelope(this.base()));
    const id = root && parseShellId(root);
    if (!id) throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_PROTOCOL, { reason: 'Create response without ShellId' });
    return id;
  }

  async command(shellId: string, command: string, args: readonly string[]): Promise<string> {
    const root = await this.call('Command', commandEnvelope({ ...this.base(), shellId, command, args }));
    const id = root && parseCommandId(root);
    if (!id) throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_PROTOCOL, { reason: 'Command response without CommandId' });
    return id;
  }

  async send(shellId: string, commandId: string, data: Buffer, end: boolean): Promise<void> {
    await this.call('Send', sendEnvelope({ ...this.base(), shellId, commandId, data, end }));
  }

  /** Receive until CommandState is Done; w:TimedOut (2150858793) just means "ask again". */
  async receiveAll(shellId: string, commandId: string): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
    const deadline = Date.now() + this.commandTimeoutMs;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    for (;;) {
      if (Date.now() > deadline) {
        throw new JitgateError(WinRmErrors.JIT_ERR_WINRM_TIMEOUT, { operation: 'Receive', ms: this.commandTimeoutMs });
      }
      const root = await this.call('Receive', receiveEnvelope({ ...this.base(), shellId, commandId }), true);
      if (!root) continue;
      const chunk = parseReceive(root);
      out.push(chunk.stdout);
      err.push(chunk.stderr);
      if (chunk.done) return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), exitCode: chunk.exitCode ?? -1 };
    }
  }

  async signalTerminate(shellId: string, commandId: string): Promise<void> {
    await this.call('Signal', signalEnvelope({ ...this.base(), shellId, commandId }));
  }

  async deleteShell(shellId: string): Promise<void> {
    await this.call('Delete', deleteShellEnvelope({ ...this.base(), shellId }));
  }

  /** Run one command in a fresh shell; the shell is always cleaned up (best effort after a failure). */
  async run(command: string, args: readonly string[], stdin?: Buffer): Promise<RunResult> {
    const shellId = await this.createShell();
    let commandId: string | null = null;
    let failed = false;
    try {
      commandId = await this.command(shellId, command, args);
      if (stdin) await this.send(shellId, commandId, stdin, true);
      const r = await this.receiveAll(shellId, commandId);
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: decodeClixml(r.stderr.toString('utf8')) };
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      await this.cleanup(shellId, commandId, failed);
    }
  }

  private async cleanup(shellId: string, commandId: string | null, afterFailure: boolean): Promise<void> {
    try {
      if (commandId) await this.signalTerminate(shellId, commandId);
      await this.deleteShell(shellId);
    } catch (err) {
      // After a failure the connection may be gone; the shell idles out on the server (IdleTimeout).
      const level = afterFailure ? 'debug' : 'warn';
      this.opts.logger[level]({ err: err instanceof JitgateError ? err.toJSON() : String(err) }, 'winrm shell cleanup failed');
    }
  }

  close(): void {
    this.opts.transport.close();
  }
}
