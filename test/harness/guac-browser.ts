import { expect } from 'vitest';
import WebSocket from 'ws';

/**
 * The browser's side of the RDP tunnel for tests: a real websocket client
 * whose frames are parsed by guacamole-common-js's own Guacamole.Parser
 * (UTF-16 lengths, as in the browser), and that sends instructions the way
 * its WebSocketTunnel.sendMessage does.
 */

interface GuacParser {
  oninstruction: ((opcode: string, args: string[]) => void) | null;
  receive(s: string): void;
}
const guacModule = 'guacamole-common-js';
const Guacamole = ((await import(guacModule)) as { default: { Parser: new () => GuacParser } }).default;

/** guacamole-common-js WebSocketTunnel.sendMessage: lengths are String.length (UTF-16 units). */
export function browserEncode(...elements: string[]): string {
  return elements.map((e) => `${e.length}.${e}`).join(',') + ';';
}

export interface GuacBrowser {
  ws: WebSocket;
  /** Text frames as received. */
  frames: string[];
  instructions: string[][];
  closed: Promise<{ code: number; reason: string }>;
  send(...elements: string[]): void;
}

export async function openGuacBrowser(wsUrl: string, query: Record<string, string>, headers: Record<string, string> = {}): Promise<GuacBrowser> {
  const ws = new WebSocket(`${wsUrl}?${new URLSearchParams(query).toString()}`, 'guacamole', { headers });
  const frames: string[] = [];
  const instructions: string[][] = [];
  const parser = new Guacamole.Parser();
  parser.oninstruction = (op, args) => instructions.push([op, ...args]);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(false);
    const t = data.toString('utf8');
    frames.push(t);
    parser.receive(t);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, frames, instructions, closed, send: (...els) => ws.send(browserEncode(...els)) };
}

/** Poll (every 20 ms) until `fn` returns something other than undefined/false/null. */
export async function until<T>(fn: () => T | undefined | false | null, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
