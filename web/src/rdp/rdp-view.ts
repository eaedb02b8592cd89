import Guacamole from 'guacamole-common-js';

/**
 * The remote desktop view: guacamole-common-js over jitgate's websocket
 * tunnel (`/api/v1/rdp`, docs/rdp.md). The server provisions the account
 * and performs the guacd handshake; this side only draws, sends input and
 * shows progress. It never sees credentials.
 *
 * jitgate's own instructions (opcode `jitgate`) are read by wrapping the
 * tunnel's `oninstruction` that Guacamole.Client installs; the client itself
 * would ignore them (it looks handlers up by opcode and skips unknown ones).
 */

export interface RdpViewOptions {
  computerId: string;
  accountType?: 'domain' | 'local';
  csrf: string;
  onStatus(text: string): void;
  /** `retry`: false when connecting again cannot help (no access, bad request, not signed in). */
  onClosed(reason: string, retry: boolean): void;
  /** The session is up: its id and lease end (for the lease bar). */
  onReady?(info: { sessionId: string; computer: string; leaseExpiresAt: number | null }): void;
  /** Tunnel endpoint; default `/api/v1/rdp` on this origin. */
  tunnelUrl?: string;
}

/** Words for the websocket close codes (docs/api.md) when no jitgate message came first. */
const CLOSE_WORDS: Record<number, string> = {
  0x0301: 'Sign in again to open a remote desktop.',
  0x0303: 'You do not have access to this computer.',
  0x0200: 'The session could not be prepared.',
  0x0208: 'The remote desktop could not be reached.',
  0x020b: 'An administrator ended this session.',
  0x020a: 'The session lease expired.',
  0x0300: 'The remote desktop request was not valid.',
  0x0202: 'The connection to the gateway timed out.',
};

/** Close statuses after which connecting again gives the same answer; their words say it all (no server text echoed). */
const FINAL = new Set([0x0301, 0x0303, 0x0300]);

export function mountRdp(el: HTMLElement, opts: RdpViewOptions): { disconnect(): void } {
  const root = document.createElement('div');
  root.className = 'jitgate-rdp';
  root.tabIndex = 0;
  root.setAttribute('aria-label', 'Remote desktop');
  Object.assign(root.style, { position: 'relative', width: '100%', height: '100%', overflow: 'hidden', outline: 'none' });
  el.appendChild(root);

  const tunnel = new Guacamole.WebSocketTunnel(opts.tunnelUrl ?? '/api/v1/rdp');
  const client = new Guacamole.Client(tunnel);
  const display = client.getDisplay();
  const displayEl = display.getElement();
  root.appendChild(displayEl);

  let closed = false;
  // Why it ended, most specific first: a jitgate error, guacd's error, the close status, the server's closing words.
  let errorText: string | null = null;
  let guacdError: string | null = null;
  let statusText: string | null = null;
  let finalCode: number | null = null;
  let closedText: string | null = null;
  let userClosed = false;
  let clipboardAllowed = false;
  let computerName = '';

  const finish = (fallback: string): void => {
    if (closed) return;
    closed = true;
    keyboard.reset();
    if (finalCode !== null && !userClosed) return opts.onClosed(CLOSE_WORDS[finalCode]!, false);
    opts.onClosed(userClosed ? 'You closed the session.' : (errorText ?? guacdError ?? statusText ?? closedText ?? fallback), true);
  };

  // jitgate instructions before (and around) the remote desktop.
  const clientHandler = tunnel.oninstruction;
  tunnel.oninstruction = (opcode, args) => {
    if (opcode !== 'jitgate') return clientHandler?.(opcode, args);
    const [kind, ...rest] = args;
    if (kind === 'progress') opts.onStatus(rest[0] ?? '');
    else if (kind === 'ready') {
      computerName = rest[1] ?? '';
      clipboardAllowed = rest[2] === '1';
      opts.onStatus(computerName ? `connected to ${computerName}` : 'connected');
      const lease = rest[3] ? Date.parse(rest[3]) : NaN;
      opts.onReady?.({ sessionId: rest[0] ?? '', computer: computerName, leaseExpiresAt: Number.isFinite(lease) ? lease : null });
      root.focus();
    } else if (kind === 'error') errorText = rest[1] ?? rest[0] ?? 'error';
    else if (kind === 'closed') closedText = rest[0] === 'remote desktop closed' ? 'The remote desktop closed the session.' : (rest[0] ?? null);
  };
  tunnel.onerror = (status) => {
    statusText = CLOSE_WORDS[status.code] ?? status.message ?? 'The connection was lost.';
    if (FINAL.has(status.code)) finalCode = status.code;
  };
  tunnel.onstatechange = (state) => {
    if (state === Guacamole.Tunnel.State.CLOSED) finish('The session ended.');
  };
  client.onerror = (status) => {
    // An `error` instruction from guacd (e.g. the computer refused the login).
    guacdError = status.message ? `Remote desktop error: ${status.message}` : 'The remote desktop reported an error.';
  };

  // Display scaled to the element, never above 1:1.
  const rescale = (): void => {
    const w = display.getWidth();
    const h = display.getHeight();
    if (!w || !h) return;
    display.scale(Math.min(root.clientWidth / w, root.clientHeight / h, 1));
  };
  display.onresize = rescale;
  const pixelRatio = window.devicePixelRatio || 1;
  const optimal = (): { width: number; height: number } => ({
    width: Math.max(64, Math.min(8192, Math.round((root.clientWidth || 1024) * pixelRatio))),
    height: Math.max(64, Math.min(8192, Math.round((root.clientHeight || 768) * pixelRatio))),
  });
  let resizeTimer: number | undefined;
  const observer = new ResizeObserver(() => {
    rescale();
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => {
      if (closed) return;
      const { width, height } = optimal();
      client.sendSize(width, height);
    }, 300);
  });
  observer.observe(root);

  // Mouse and keyboard: only while the view has focus, so the rest of the page keeps its keys.
  const mouse = new Guacamole.Mouse(displayEl);
  mouse.onEach(['mousedown', 'mouseup', 'mousemove'], (e) => {
    if (e.state && !closed) client.sendMouseState(e.state, true);
  });
  displayEl.addEventListener('mousedown', () => root.focus());
  display.oncursor = (canvas, x, y) => {
    mouse.setCursor(canvas, x, y);
  };
  const keyboard = new Guacamole.Keyboard(root);
  keyboard.onkeydown = (keysym) => {
    if (!closed) client.sendKeyEvent(1, keysym);
    return false;
  };
  keyboard.onkeyup = (keysym) => {
    if (!closed) client.sendKeyEvent(0, keysym);
  };

  // Clipboard, only when the computer's policy allows it (the server drops it otherwise anyway).
  client.onclipboard = (stream, mimetype) => {
    if (!clipboardAllowed || !/^text\//.test(mimetype)) return;
    const reader = new Guacamole.StringReader(stream);
    let text = '';
    reader.ontext = (t) => (text += t);
    reader.onend = () => {
      navigator.clipboard?.writeText(text).catch(() => undefined);
    };
  };
  const sendClipboard = (text: string): void => {
    if (!clipboardAllowed || closed || !text) return;
    const writer = new Guacamole.StringWriter(client.createClipboardStream('text/plain'));
    writer.sendText(text);
    writer.sendEnd();
  };
  const onPaste = (e: ClipboardEvent): void => sendClipboard(e.clipboardData?.getData('text/plain') ?? '');
  root.addEventListener('paste', onPaste);

  const { width, height } = optimal();
  const query = new URLSearchParams({
    computer: opts.computerId,
    width: String(width),
    height: String(height),
    dpi: String(Math.round(96 * pixelRatio)),
    csrf: opts.csrf,
  });
  if (opts.accountType === 'domain' || opts.accountType === 'local') query.set('accountType', opts.accountType);
  opts.onStatus('connecting…');
  client.connect(query.toString());

  return {
    disconnect(): void {
      userClosed = !closed;
      observer.disconnect();
      window.clearTimeout(resizeTimer);
      root.removeEventListener('paste', onPaste);
      client.disconnect();
      finish('You closed the session.');
      root.remove();
    },
  };
}
