/**
 * The bytes of the on-screen terminal keys (phones have no Ctrl, Esc, Tab or
 * arrows), as a VT100/xterm terminal sends them (xterm ctlseqs: "PC-Style
 * Function Keys", "Cursor keys"). Kept pure so they are tested without a
 * browser; pages/terminal.tsx sends them through the same path as typed keys.
 */
export type ScreenKey = 'esc' | 'tab' | 'up' | 'down' | 'right' | 'left';

const ARROW: Record<'up' | 'down' | 'right' | 'left', string> = { up: 'A', down: 'B', right: 'C', left: 'D' };

/**
 * One on-screen key. `applicationCursor`: the program asked for application
 * cursor keys (DECCKM, e.g. vim, less), arrows then start with ESC O instead
 * of ESC [. With `ctrl` (the sticky modifier) an arrow carries modifier 5
 * (`ESC [1;5A`, as xterm sends Ctrl+Up); Ctrl+Esc and Ctrl+Tab send what
 * Esc and Tab send, as terminals do.
 */
export function screenKeyBytes(key: ScreenKey, o: { ctrl?: boolean; applicationCursor?: boolean } = {}): string {
  if (key === 'esc') return '\x1b';
  if (key === 'tab') return '\t';
  const final = ARROW[key];
  if (o.ctrl) return `\x1b[1;5${final}`;
  return o.applicationCursor ? `\x1bO${final}` : `\x1b[${final}`;
}

/**
 * Typed text after the sticky Ctrl: its first character as the control
 * character (Ctrl+C is 0x03, Ctrl+@ and Ctrl+Space are NUL, Ctrl+? is DEL),
 * the rest unchanged. A character with no control form is sent as typed.
 */
export function withCtrl(data: string): string {
  if (data === '') return data;
  const first = data[0]!;
  const rest = data.slice(1);
  const code = first.toUpperCase().charCodeAt(0);
  if (first === ' ') return `\x00${rest}`;
  if (first === '?') return `\x7f${rest}`;
  // '@' (0x40) … '_' (0x5f): A–Z and @ [ \ ] ^ _ map to 0x00–0x1f
  if (code >= 0x40 && code <= 0x5f) return String.fromCharCode(code & 0x1f) + rest;
  return data;
}
