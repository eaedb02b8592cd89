import { describe, expect, it } from 'vitest';
import { isBracketedPaste, terminalClipboard } from './terminal-clipboard.js';

describe('the browser terminal clipboard policy', () => {
  it('reads the directions of policy.clipboard; default, unknown and malformed values allow nothing', () => {
    expect(terminalClipboard({})).toEqual({ copy: false, paste: false });
    expect(terminalClipboard(null)).toEqual({ copy: false, paste: false });
    expect(terminalClipboard({ clipboard: 'sideways' })).toEqual({ copy: false, paste: false });
    expect(terminalClipboard({ clipboard: 'remote-to-local' })).toEqual({ copy: true, paste: false });
    expect(terminalClipboard({ clipboard: 'local-to-remote' })).toEqual({ copy: false, paste: true });
    expect(terminalClipboard({ clipboard: 'both' })).toEqual({ copy: true, paste: true });
    // earlier policies stored a boolean
    expect(terminalClipboard({ clipboard: true })).toEqual({ copy: true, paste: true });
    expect(terminalClipboard({ clipboard: false })).toEqual({ copy: false, paste: false });
  });

  it('tells a bracketed paste from typed input', () => {
    expect(isBracketedPaste(Buffer.from('\x1b[200~rm -rf /tmp/x\x1b[201~'))).toBe(true);
    expect(isBracketedPaste(Buffer.from('ls\r'))).toBe(false);
    expect(isBracketedPaste(Buffer.from('\x1b[A'))).toBe(false);
    expect(isBracketedPaste(Buffer.from('\x1b[20'))).toBe(false);
  });
});
