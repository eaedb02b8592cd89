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
  /** The computer wants a fresh passkey/TOTP confirmation first (JIT_ERR_AUTH_STEP_UP_REQUIRED): nothing was provisioned. */
  onStepUp?(message: string): void;
  /** The session is up: its id and lease end (for the lease bar); `menu`: the policy allows a clipboard or file control. */
  onReady?(info: { sessionId: string; computer: string; leaseExpiresAt: number | null; menu: boolean }): void;
  /** Where the clipboard and file controls go (the session page's side menu); absent → a collapsible menu in `el`. */
  menuHost?: HTMLElement;
  /** Somebody started or stopped watching the session live (the person is always told). */
  onWatchers?(change: { watchers: number; event: string | undefined; by: string | undefined }): void;
  /** Four-eyes: waiting for a moderator, moderated, paused (input held back), ended. */
  onModeration?(status: { state: string; message: string }): void;
  /** Tunnel endpoint; default `/api/v1/rdp` on this origin. */
  tunnelUrl?: string;
}

/**
 * The computer's effective policy as the gateway sends it in its `ready`
 * message (gateway/rdp/rdp-tunnel.ts `viewPolicy`). The side menu offers
 * exactly these controls: nothing the gateway's relay would refuse.
 */
export interface RdpViewPolicy {
  clipboard: 'off' | 'remote-to-local' | 'local-to-remote' | 'both';
  clipboardMaxBytes: number;
  upload: boolean;
  download: boolean;
  fileMaxBytes: number;
  printing: boolean;
  recordKeys: boolean;
}

const NOTHING: RdpViewPolicy = { clipboard: 'off', clipboardMaxBytes: 0, upload: false, download: false, fileMaxBytes: 0, printing: false, recordKeys: false };

/** Read the policy from `ready`; anything missing or malformed counts as not allowed. */
export function parseViewPolicy(json: string | undefined): RdpViewPolicy {
  let v: Partial<Record<keyof RdpViewPolicy, unknown>>;
  try {
    v = JSON.parse(json ?? '') as typeof v;
  } catch {
    return NOTHING;
  }
  if (!v || typeof v !== 'object') return NOTHING;
  const clip = ['off', 'remote-to-local', 'local-to-remote', 'both'].includes(v.clipboard as string) ? (v.clipboard as RdpViewPolicy['clipboard']) : 'off';
  const n = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : 0);
  return {
    clipboard: clip, clipboardMaxBytes: n(v.clipboardMaxBytes), upload: v.upload === true, download: v.download === true,
    fileMaxBytes: n(v.fileMaxBytes), printing: v.printing === true, recordKeys: v.recordKeys === true,
  };
}

function fmtBytes(n: number): string {
  return n >= 1 << 20 ? `${Math.round((n / (1 << 20)) * 10) / 10} MiB` : n >= 1024 ? `${Math.round(n / 1024)} KiB` : `${n} bytes`;
}

function make<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
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
  // it takes every key while focused: an application (a bare div may not carry aria-label, axe aria-prohibited-attr)
  root.setAttribute('role', 'application');
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
  let stepUp: string | null = null;
  let policy: RdpViewPolicy = NOTHING;
  let menu: HTMLElement | null = null;
  let computerName = '';
  const canCopy = (): boolean => policy.clipboard === 'both' || policy.clipboard === 'remote-to-local';
  const canPaste = (): boolean => policy.clipboard === 'both' || policy.clipboard === 'local-to-remote';

  const finish = (fallback: string): void => {
    if (closed) return;
    closed = true;
    keyboard.reset();
    if (stepUp !== null && !userClosed && opts.onStepUp) return opts.onStepUp(stepUp);
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
      policy = parseViewPolicy(rest[5]);
      menu = buildMenu();
      if (menu) (opts.menuHost ?? el).appendChild(menu);
      // Nothing injected (the person's own account): the Windows login asks, and the page says so plainly.
      const own = rest[6] ?? '';
      opts.onStatus((computerName ? `connected to ${computerName}` : 'connected') + (own ? `: sign in with your own password for ${own} at the Windows login (jitgate does not hold it)` : ''));
      const lease = rest[3] ? Date.parse(rest[3]) : NaN;
      opts.onReady?.({ sessionId: rest[0] ?? '', computer: computerName, leaseExpiresAt: Number.isFinite(lease) ? lease : null, menu: menu !== null });
      root.focus();
    } else if (kind === 'error') {
      errorText = rest[1] ?? rest[0] ?? 'error';
      if (rest[0] === 'JIT_ERR_AUTH_STEP_UP_REQUIRED') stepUp = errorText;
    }
    else if (kind === 'watchers') opts.onWatchers?.({ watchers: Number(rest[0] ?? 0), event: rest[1], by: rest[2] });
    else if (kind === 'moderation') opts.onModeration?.({ state: rest[0] ?? '', message: rest[1] ?? '' });
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

  // Clipboard, each direction only when the computer's policy allows it (the server drops it otherwise anyway).
  let remoteClipboard: HTMLOutputElement | null = null;
  client.onclipboard = (stream, mimetype) => {
    if (!canCopy() || !/^text\//.test(mimetype)) return;
    const reader = new Guacamole.StringReader(stream);
    let text = '';
    reader.ontext = (t) => (text += t);
    reader.onend = () => {
      if (remoteClipboard) remoteClipboard.value = text;
      navigator.clipboard?.writeText(text).catch(() => undefined);
    };
  };
  /** Send text to the remote clipboard; false (nothing sent) when not allowed or over the limit. */
  const sendClipboard = (text: string): boolean => {
    if (!canPaste() || closed || !text) return false;
    if (policy.clipboardMaxBytes && new TextEncoder().encode(text).length > policy.clipboardMaxBytes) return false;
    const writer = new Guacamole.StringWriter(client.createClipboardStream('text/plain'));
    writer.sendText(text);
    writer.sendEnd();
    return true;
  };

  // Files from the redirected drive's Download folder (and print jobs, as PDF files): only when allowed.
  client.onfile = (stream, mimetype, filename) => {
    const isPrint = mimetype === 'application/pdf' && policy.printing;
    if (!policy.download && !isPrint) {
      stream.sendAck('download not allowed', 0x0303);
      return;
    }
    const reader = new Guacamole.BlobReader(stream, mimetype);
    stream.sendAck('OK', 0x0000);
    reader.onprogress = () => stream.sendAck('OK', 0x0000);
    reader.onend = () => {
      const a = make('a', { href: URL.createObjectURL(reader.getBlob()), download: filename || 'download' });
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      note(`Downloaded ${filename}.`);
    };
  };
  let noteEl: HTMLElement | null = null;
  const note = (text: string): void => {
    if (noteEl) noteEl.textContent = text;
  };
  const upload = (file: File): void => {
    if (!policy.upload || closed) return;
    if (policy.fileMaxBytes && file.size > policy.fileMaxBytes) {
      note(`${file.name} is ${fmtBytes(file.size)}; files up to ${fmtBytes(policy.fileMaxBytes)} may be uploaded to this computer.`);
      return;
    }
    const writer = new Guacamole.BlobWriter(client.createFileStream(file.type || 'application/octet-stream', file.name));
    note(`Uploading ${file.name}…`);
    writer.oncomplete = () => {
      writer.sendEnd();
      note(`Uploaded ${file.name} to the jitgate drive.`);
    };
    writer.onerror = () => note(`${file.name} could not be uploaded.`);
    writer.onack = (status) => {
      if (status.isError()) note(`${file.name} was refused: ${status.message ?? 'not allowed'}.`);
    };
    writer.sendBlob(file);
  };

  /** The side menu: only the controls the policy allows; none at all when it allows none. */
  const buildMenu = (): HTMLElement | null => {
    const sections: HTMLElement[] = [];
    if (policy.clipboard !== 'off') {
      const sec = make('section', { className: 'rdp-menu-clipboard' }, make('h3', {}, 'Clipboard'));
      const limit = policy.clipboardMaxBytes ? ` Up to ${fmtBytes(policy.clipboardMaxBytes)}.` : '';
      if (canPaste()) {
        const area = make('textarea', { rows: 3 });
        area.setAttribute('aria-label', 'Text to send to the remote clipboard');
        const msg = make('p', { className: 'muted' }, `Paste into the remote desktop, or send text from here.${limit}`);
        const btn = make('button', { type: 'button', textContent: 'Send to remote clipboard' });
        btn.addEventListener('click', () => {
          msg.textContent = sendClipboard(area.value) ? 'Sent.' : `Not sent: empty or longer than ${fmtBytes(policy.clipboardMaxBytes)}.`;
        });
        sec.append(area, btn, msg);
      }
      if (canCopy()) {
        remoteClipboard = make('output', { className: 'rdp-remote-clipboard' });
        remoteClipboard.setAttribute('aria-label', 'Remote clipboard');
        sec.append(make('p', { className: 'muted' }, `Text copied on the remote desktop comes here and to your clipboard.${limit}`), remoteClipboard);
      }
      if (!canPaste()) sec.append(make('p', { className: 'muted' }, 'Pasting into this computer is not allowed.'));
      if (!canCopy()) sec.append(make('p', { className: 'muted' }, 'Copying from this computer is not allowed.'));
      sections.push(sec);
    }
    if (policy.upload || policy.download || policy.printing) {
      const sec = make('section', { className: 'rdp-menu-files' }, make('h3', {}, 'Files'));
      const limit = policy.fileMaxBytes ? ` (up to ${fmtBytes(policy.fileMaxBytes)} each)` : '';
      if (policy.upload) {
        const input = make('input', { type: 'file', multiple: true });
        input.setAttribute('aria-label', 'Upload files to the remote drive');
        input.addEventListener('change', () => {
          for (const f of Array.from(input.files ?? [])) upload(f);
          input.value = '';
        });
        sec.append(make('label', {}, `Upload to the “jitgate” drive${limit}: `, input));
      }
      if (policy.download) sec.append(make('p', { className: 'muted' }, `Files saved in the Download folder of the “jitgate” drive are downloaded here${limit}.`));
      if (policy.printing) sec.append(make('p', { className: 'muted' }, 'Printing to “jitgate” downloads a PDF here.'));
      sections.push(sec);
    }
    if (policy.recordKeys) sections.push(make('p', { className: 'muted rdp-menu-recorded' }, 'Typed keys are recorded in this session’s recording.'));
    if (sections.length === 0) return null;
    noteEl = make('p', { className: 'rdp-menu-note' });
    noteEl.setAttribute('role', 'status');
    // in the page's side menu, which has its own heading and toggle; on its own, a collapsible menu
    if (opts.menuHost) return make('div', { className: 'rdp-menu' }, ...sections, noteEl);
    return make('details', { className: 'rdp-menu' }, make('summary', {}, 'Clipboard and files'), ...sections, noteEl);
  };
  const onPaste = (e: ClipboardEvent): void => {
    sendClipboard(e.clipboardData?.getData('text/plain') ?? '');
  };
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
      menu?.remove();
    },
  };
}

export interface RdpWatchOptions {
  sessionId: string;
  csrf: string;
  onStatus(text: string): void;
  onClosed(reason: string): void;
  /** Tunnel endpoint; default `/api/v1/rdp/watch` on this origin. */
  tunnelUrl?: string;
}

/**
 * Watch a live RDP session read-only (an admin or auditor): the gateway
 * joins guacd's connection read-only and forwards nothing but frame
 * acknowledgements from here, so this view attaches no keyboard, mouse or
 * clipboard at all.
 */
export function watchRdp(el: HTMLElement, opts: RdpWatchOptions): { disconnect(): void } {
  const root = document.createElement('div');
  root.className = 'jitgate-rdp watch';
  root.setAttribute('aria-label', 'Remote desktop, watched read-only');
  Object.assign(root.style, { position: 'relative', width: '100%', height: '100%', overflow: 'hidden' });
  el.appendChild(root);
  const tunnel = new Guacamole.WebSocketTunnel(opts.tunnelUrl ?? '/api/v1/rdp/watch');
  const client = new Guacamole.Client(tunnel);
  const display = client.getDisplay();
  root.appendChild(display.getElement());
  const rescale = (): void => {
    const w = display.getWidth();
    const h = display.getHeight();
    if (w && h) display.scale(Math.min(root.clientWidth / w, root.clientHeight / h, 1));
  };
  display.onresize = rescale;
  const observer = new ResizeObserver(rescale);
  observer.observe(root);
  let closed = false;
  let why: string | null = null;
  const clientHandler = tunnel.oninstruction;
  tunnel.oninstruction = (opcode, args) => {
    if (opcode !== 'jitgate') return clientHandler?.(opcode, args);
    const [kind, ...rest] = args;
    if (kind === 'watching') opts.onStatus(`watching ${rest[2] ?? ''} on ${rest[1] ?? ''} (read-only)`);
    else if (kind === 'error') why = rest[1] ?? rest[0] ?? 'error';
    else if (kind === 'closed') why ??= rest[0] === 'the session ended' ? 'The session ended.' : (rest[0] ?? null);
  };
  tunnel.onerror = (status) => {
    why ??= CLOSE_WORDS[status.code] ?? status.message ?? 'The connection was lost.';
  };
  tunnel.onstatechange = (state) => {
    if (state !== Guacamole.Tunnel.State.CLOSED || closed) return;
    closed = true;
    opts.onClosed(why ?? 'Watching stopped.');
  };
  const pixelRatio = window.devicePixelRatio || 1;
  opts.onStatus('connecting…');
  client.connect(
    new URLSearchParams({
      session: opts.sessionId, csrf: opts.csrf,
      width: String(Math.max(64, Math.round((root.clientWidth || 1024) * pixelRatio))),
      height: String(Math.max(64, Math.round((root.clientHeight || 768) * pixelRatio))),
      dpi: String(Math.round(96 * pixelRatio)),
    }).toString(),
  );
  return {
    disconnect(): void {
      closed = true;
      observer.disconnect();
      client.disconnect();
      root.remove();
    },
  };
}
