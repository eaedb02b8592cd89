import { effectivePolicy } from '../api/computer-policy.js';

/**
 * The computer's clipboard policy (`policy.clipboard`, gateway/api/computer-policy.ts)
 * as the browser terminal applies it: copy is remote→local (text selected in
 * the terminal out to the person's clipboard), paste is local→remote.
 */
export interface TerminalClipboard {
  copy: boolean;
  paste: boolean;
}

/** The directions the stored policy allows; a value that does not validate allows neither (effectivePolicy's default, `off`). */
export function terminalClipboard(storedPolicy: unknown): TerminalClipboard {
  const mode = effectivePolicy(storedPolicy).clipboard;
  return { copy: mode === 'both' || mode === 'remote-to-local', paste: mode === 'both' || mode === 'local-to-remote' };
}

/**
 * Bracketed paste (xterm control sequences, "Bracketed Paste Mode", DECSET 2004):
 * once the shell asks for it, a terminal sends every paste as `ESC [ 200 ~` text
 * `ESC [ 201 ~`, and xterm.js sends a paste as one websocket frame. That marker is
 * the only thing telling a paste from typing on the terminal's byte stream: text
 * sent as keystrokes without it cannot be told apart, and is input like any other
 * (recorded where the computer records input).
 */
const PASTE_START = Buffer.from('\x1b[200~', 'latin1');

/** Whether an input frame carries a bracketed paste. */
export function isBracketedPaste(frame: Buffer): boolean {
  return frame.includes(PASTE_START);
}
