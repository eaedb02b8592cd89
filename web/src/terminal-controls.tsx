import type { RefObject } from 'preact';
import { useId, useState } from 'preact/hooks';
import type { Terminal } from '@xterm/xterm';
import { Link } from './ui.js';
import { screenKeyBytes, withCtrl, type ScreenKey } from './terminal-keys.js';

/** An open terminal and the way into its session (typed keys go the same way). */
export interface TermInput {
  term: Terminal;
  /** Bytes into the session (or into the computer's login prompt while it asks). */
  send: (data: string) => void;
  /** Set while the sticky Ctrl waits: turns the next typed text into its control form. */
  onTyped?: (data: string) => string;
}

/** The computer's clipboard policy for this terminal (the gateway's `ready` frame): copy is out of the session, paste into it. */
export interface TermClipboard {
  copy: boolean;
  paste: boolean;
}

/** `name`: for the arrows, whose symbol is no name; Esc and Tab are named by what they show. */
const KEYS: { key: ScreenKey; label: string; name?: string }[] = [
  { key: 'esc', label: 'Esc' },
  { key: 'tab', label: 'Tab' },
  { key: 'left', label: '←', name: 'Left arrow' },
  { key: 'up', label: '↑', name: 'Up arrow' },
  { key: 'down', label: '↓', name: 'Down arrow' },
  { key: 'right', label: '→', name: 'Right arrow' },
];

/** Keep the terminal's focus (and a phone's on-screen keyboard) when a key button is pressed. */
const keepFocus = (e: MouseEvent): void => e.preventDefault();

/**
 * The keys a phone's keyboard lacks (issue 17): Ctrl, a sticky modifier for
 * the next key (on-screen or typed), Esc, Tab and the arrows. Shown at mobile
 * width and on touch screens (styles.css `.term-keys`).
 */
export function TerminalKeys({ input }: { input: RefObject<TermInput | null> }) {
  const [ctrl, setCtrl] = useState(false);
  const arm = (on: boolean): void => {
    setCtrl(on);
    const i = input.current;
    if (!i) return;
    i.onTyped = on
      ? (d) => {
          i.onTyped = undefined;
          setCtrl(false);
          return withCtrl(d);
        }
      : undefined;
    i.term.focus();
  };
  const press = (key: ScreenKey): void => {
    const i = input.current;
    if (!i) return;
    i.send(screenKeyBytes(key, { ctrl, applicationCursor: i.term.modes.applicationCursorKeysMode }));
    if (ctrl) arm(false);
    else i.term.focus();
  };
  return (
    <div class="term-keys" role="toolbar" aria-label="Terminal keys" data-testid="term-keys">
      <button type="button" aria-pressed={ctrl} onMouseDown={keepFocus} onClick={() => arm(!ctrl)}>
        Ctrl
      </button>
      {KEYS.map((k) => (
        <button key={k.key} type="button" aria-label={k.name} onMouseDown={keepFocus} onClick={() => press(k.key)}>
          {k.label}
        </button>
      ))}
    </div>
  );
}

/**
 * The terminal's side menu, only what the computer's policy allows (as the
 * remote desktop's). Clipboard: copy the selection out (remote → local), paste
 * text in (local → remote: as a bracketed paste, which the gateway refuses
 * where the policy forbids it; the terminal shows and records it like any
 * input). Files: only where the policy allows SFTP/scp, which go through
 * jitgate's SSH front door, not through this page.
 */
export function TerminalMenu({ input, computer, fileTransfer, clipboard }: { input: RefObject<TermInput | null>; computer: string; fileTransfer: boolean; clipboard: TermClipboard }) {
  const [text, setText] = useState('');
  const [note, setNote] = useState('');
  const pasteId = useId();
  const copy = async (): Promise<void> => {
    const selected = input.current?.term.getSelection() ?? '';
    if (!selected) return setNote('Select text in the terminal first.');
    try {
      await navigator.clipboard.writeText(selected);
      setNote(`Copied ${selected.length} characters to your clipboard.`);
    } catch {
      setNote('Your browser did not allow copying; use its Copy command instead.');
    }
  };
  const paste = (): void => {
    const i = input.current;
    if (!i || !text) return setNote('Nothing to paste.');
    // term.paste: bracketed paste when the shell asked for it, then the same path as typed keys
    i.term.paste(text);
    setNote('Pasted into the terminal.');
    setText('');
    i.term.focus();
  };
  return (
    <>
      {(clipboard.copy || clipboard.paste) && (
        <section class="side-section" data-testid="menu-clipboard">
          <h2>Clipboard</h2>
          {clipboard.copy ? (
            <button type="button" onClick={() => void copy()}>
              Copy selection
            </button>
          ) : (
            <p class="muted">Copying from this computer is not allowed.</p>
          )}
          {clipboard.paste ? (
            <>
              <label for={pasteId}>Text to paste into the terminal</label>
              <textarea id={pasteId} rows={3} value={text} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
              <button type="button" onClick={paste}>
                Paste into terminal
              </button>
            </>
          ) : (
            <p class="muted">Pasting into this computer is not allowed.</p>
          )}
        </section>
      )}
      {fileTransfer && (
        <section class="side-section" data-testid="menu-files">
          <h2>Files</h2>
          <p>
            File transfer (SFTP, scp) is allowed on {computer}. Use an SFTP client through jitgate’s SSH front door, with a key from <Link href="/account">My account</Link>.
          </p>
        </section>
      )}
      <p role="status" class="muted">
        {note}
      </p>
    </>
  );
}
