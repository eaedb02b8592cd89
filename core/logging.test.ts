import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from './logging.js';
import { Secret } from './secret.js';

function capture(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

describe('logging', () => {
  it('redacts passwords, tokens and Secret objects', () => {
    const { stream, lines } = capture();
    const log = createLogger({ destination: stream });
    log.info({ password: 'hunter2', account: { name: 'alice_x', password: 'p@ss' }, s: new Secret('topsecret'), token: 'tok' }, 'account created');
    const out = lines().join('\n');
    expect(out).toContain('alice_x');
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('p@ss');
    expect(out).not.toContain('topsecret');
    expect(out).not.toContain('"tok"');
    expect(out).toContain('[redacted]');
  });
});
