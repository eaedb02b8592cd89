import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';

/** An xterm.js terminal filling `el`, refitted when the element resizes. */
export function createTerminal(el: HTMLElement, opts: { readOnly?: boolean } = {}): { term: Terminal; fit: FitAddon; dispose: () => void } {
  const term = new Terminal({
    cursorBlink: !opts.readOnly,
    disableStdin: opts.readOnly ?? false,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    // at 1.0 the DOM renderer clips underscores of DejaVu Sans Mono (JIT account names are full of them)
    lineHeight: 1.2,
    scrollback: 5000,
    theme: { background: '#101418', foreground: '#e6e6e6' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  try {
    if (!opts.readOnly) fit.fit();
  } catch {
    // element not laid out yet; the observer fits it
  }
  const ro = new ResizeObserver(() => {
    // A read-only (watching) terminal keeps the watched person's size; its page scales the font instead.
    if (opts.readOnly) return;
    try {
      fit.fit();
    } catch {
      // detached
    }
  });
  ro.observe(el);
  return {
    term,
    fit,
    dispose: () => {
      ro.disconnect();
      term.dispose();
    },
  };
}
