import { useEffect, useRef, useState } from 'preact/hooks';
import { watchersWords } from '../watch-words.js';
import { wsUrl } from '../api.js';
import { LeaseBar } from '../lease.js';
import { closeOutcome } from '../close-reasons.js';
import { SessionEnded, SessionFrame, markEntryUsed, useDeskTab, useEntryUsed } from '../session-page.js';
import { StepUpPrompt } from '../passkeys.js';
import { TerminalKeys, TerminalMenu, type TermClipboard, type TermInput } from '../terminal-controls.js';

type Status =
  | { kind: 'connecting'; step: string }
  /** The person's own account (elevate): the computer's login asks for their password, typed in the terminal. */
  | { kind: 'sign-in'; account: string; computer: string; retry: boolean }
  | { kind: 'ready'; account: string; computer: string; sessionId: string; leaseExpiresAt: number | null; leaseMaxAt: number | null; own: boolean; fileTransfer: boolean; clipboard: TermClipboard }
  | { kind: 'error'; message: string }
  | { kind: 'closed'; message: string; retry: boolean }
  /** The computer wants a fresh passkey/TOTP confirmation (step-up): nothing was provisioned. */
  | { kind: 'step-up'; message: string };

/**
 * Browser SSH terminal over the /terminal websocket: live provisioning progress, resize, errors in words,
 * on-screen keys at mobile width, a side menu for the clipboard (and file transfer where allowed).
 * `accountType`: as asked in the address (`?accountType=`), given by the session desk.
 */
export function TerminalPage({ computerId, accountType: askedType }: { computerId: string; accountType?: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>({ kind: 'connecting', step: 'connecting to the gateway…' });
  const [progress, setProgress] = useState<string[]>([]);
  const [attempt, setAttempt] = useState(0);
  const [watched, setWatched] = useState<string | null>(null);
  /** Four-eyes: "waiting for a moderator", "moderated by …", "paused: …" (docs/access-requests.md). */
  const [moderation, setModeration] = useState<{ state: string; message: string } | null>(null);
  const endRef = useRef<(() => void) | null>(null);
  /** The open terminal and where its input goes (typed keys, on-screen keys, the side menu's paste). */
  const inputRef = useRef<TermInput | null>(null);
  /** The computer's clipboard policy (nothing allowed until the gateway says otherwise): the browser's own copy and paste follow it too. */
  const clipRef = useRef<TermClipboard>({ copy: false, paste: false });
  /** Why the last copy or paste did not happen (policy), in words. */
  const [clipNote, setClipNote] = useState<string | null>(null);
  // Back/Forward to an entry whose session already ran: ask, never open a new JIT account silently.
  const used = useEntryUsed();
  const live = status.kind === 'connecting' || status.kind === 'sign-in' || status.kind === 'ready';
  const idle = used && attempt === 0;
  // the computer's name once the gateway said it, kept after the session ended (the tab keeps its name)
  const [computerName, setComputerName] = useState<string | null>(null);
  const title = computerName ? `SSH · ${computerName}` : 'SSH terminal';
  const active = useDeskTab(title, live && !idle);
  // the tab shown again: its terminal takes the keys (its size follows by itself: createTerminal observes the element)
  useEffect(() => {
    if (active) inputRef.current?.term.focus();
  }, [active]);
  // The browser's own copy and paste (keyboard, context menu) into and out of the terminal: only where the policy allows.
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const guard = (dir: 'copy' | 'paste') => (e: ClipboardEvent) => {
      if (clipRef.current[dir]) return;
      // capture phase, before xterm.js's own listeners on its textarea
      e.preventDefault();
      e.stopPropagation();
      setClipNote(dir === 'paste' ? 'Pasting into this computer is not allowed.' : 'Copying from this computer is not allowed.');
    };
    const onCopy = guard('copy');
    const onPaste = guard('paste');
    el.addEventListener('copy', onCopy, true);
    el.addEventListener('paste', onPaste, true);
    return () => {
      el.removeEventListener('copy', onCopy, true);
      el.removeEventListener('paste', onPaste, true);
    };
  }, [idle]);
  useEffect(() => {
    if (idle) return;
    markEntryUsed();
    let cleanup: (() => void) | null = null;
    let cancelled = false;
    // xterm.js is loaded with this page only, keeping the sign-in page small
    void import('../term.js').then(({ createTerminal }) => {
      if (cancelled) return;
      cleanup = connect(createTerminal(host.current!));
    });
    return () => {
      cancelled = true;
      cleanup?.();
    };
  }, [computerId, attempt]);

  function connect({ term, fit, dispose }: ReturnType<typeof import('../term.js').createTerminal>): () => void {
    setProgress([]);
    clipRef.current = { copy: false, paste: false };
    setClipNote(null);
    setStatus({ kind: 'connecting', step: 'connecting to the gateway…' });
    const accountType = askedType ?? new URLSearchParams(location.search).get('accountType') ?? undefined;
    fit.fit();
    const ws = new WebSocket(wsUrl('/terminal', { computer: computerId, accountType, cols: term.cols, rows: term.rows }));
    ws.binaryType = 'arraybuffer';
    let lastError: string | null = null;
    let lastCode: string | null = null;
    let endedByPerson = false;
    const enc = new TextEncoder();
    endRef.current = () => {
      endedByPerson = true;
      ws.close(1000);
    };
    setWatched(null);
    /**
     * The computer's login prompt (the person's own account): typed here, answered in one `answer` frame.
     * Keystrokes stay in this page until Enter; nothing is echoed unless the computer asked for echo.
     */
    let prompt: { prompts: { prompt: string; echo: boolean }[]; answers: string[]; line: string } | null = null;
    let own = false;
    const nextPrompt = (): void => {
      const p = prompt!;
      const q = p.prompts[p.answers.length];
      if (q) return void term.write(q.prompt.replace(/\r?\n/g, '\r\n'));
      ws.send(JSON.stringify({ type: 'answer', answers: p.answers }));
      prompt = null;
    };
    const typeIntoPrompt = (d: string): void => {
      const p = prompt!;
      const echo = p.prompts[p.answers.length]?.echo === true;
      for (const c of d) {
        if (c === '\r' || c === '\n') {
          term.write('\r\n');
          p.answers.push(p.line);
          p.line = '';
          return nextPrompt();
        }
        if (c === '\x7f' || c === '\b') {
          if (p.line.length > 0 && echo) term.write('\b \b');
          p.line = p.line.slice(0, -1);
        } else if (c >= ' ') {
          p.line += c;
          if (echo) term.write(c);
        }
      }
    };

    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        term.write(new Uint8Array(ev.data as ArrayBuffer));
        return;
      }
      let msg: { type: string; fileTransfer?: boolean; clipboard?: { copy?: unknown; paste?: unknown }; state?: string; instructions?: string; prompts?: { prompt: string; echo: boolean }[]; attempt?: number; step?: string; sessionId?: string; account?: string; computer?: string; code?: string; message?: string; reason?: string; leaseExpiresAt?: string; leaseMaxAt?: string; watchers?: number; event?: string; by?: string };
      try {
        msg = JSON.parse(ev.data) as typeof msg;
      } catch {
        return;
      }
      if (msg.type === 'progress' && msg.step) {
        const step = msg.step;
        setProgress((p) => [...p, step]);
        setStatus({ kind: 'connecting', step });
        // cyan, not dim: dim text on the dark background fails WCAG contrast (axe color-contrast)
        term.write(`\x1b[36m› ${step}\x1b[0m\r\n`);
      } else if (msg.type === 'prompt' && Array.isArray(msg.prompts)) {
        own = true;
        const retry = (msg.attempt ?? 1) > 1;
        setStatus({ kind: 'sign-in', account: msg.account ?? '', computer: msg.computer ?? computerId, retry });
        term.write(retry ? `\r\n\x1b[33m${msg.computer ?? 'The computer'} refused that password; try again.\x1b[0m\r\n` : `\r\nSign in with your own password for ${msg.account ?? 'your account'}:\r\n`);
        if (msg.instructions) term.write(`${msg.instructions.replace(/\r?\n/g, '\r\n')}\r\n`);
        prompt = { prompts: msg.prompts, answers: [], line: '' };
        nextPrompt();
        term.focus();
      } else if (msg.type === 'ready') {
        const lease = msg.leaseExpiresAt ? Date.parse(msg.leaseExpiresAt) : NaN;
        const max = msg.leaseMaxAt ? Date.parse(msg.leaseMaxAt) : NaN;
        const clipboard = { copy: msg.clipboard?.copy === true, paste: msg.clipboard?.paste === true };
        clipRef.current = clipboard;
        setStatus({ kind: 'ready', account: msg.account ?? '', computer: msg.computer ?? computerId, sessionId: msg.sessionId ?? '', leaseExpiresAt: Number.isFinite(lease) ? lease : null, leaseMaxAt: Number.isFinite(max) ? max : null, own, fileTransfer: msg.fileTransfer === true, clipboard });
        setComputerName(msg.computer ?? null);
        term.focus();
      } else if (msg.type === 'error') {
        lastError = msg.message ?? msg.code ?? 'error';
        lastCode = msg.code ?? null;
        // shown once, in the status bar, when the socket closes (closeOutcome); not echoed into the terminal
        setStatus({ kind: 'error', message: lastError });
      } else if (msg.type === 'watchers' && typeof msg.watchers === 'number') {
        // The person is told whenever somebody starts or stops watching their session live.
        setWatched(watchersWords({ watchers: msg.watchers, event: msg.event, by: msg.by }));
      } else if (msg.type === 'moderation' && typeof msg.state === 'string' && typeof msg.message === 'string') {
        setModeration({ state: msg.state, message: msg.message });
        if (msg.state === 'ended') lastError = `The session ended: ${msg.message}.`;
      } else if (msg.type === 'refused' && msg.message) {
        // the gateway dropped input the policy forbids (a paste): said beside the status, the session goes on
        setClipNote(`Not sent: ${msg.message}.`);
      } else if (msg.type === 'closed') {
        lastError = lastError ?? (msg.reason ? `The session ended: ${msg.reason}.` : null);
      }
    };
    ws.onclose = (ev) => {
      if (!endedByPerson && lastCode === 'JIT_ERR_AUTH_STEP_UP_REQUIRED') {
        setStatus({ kind: 'step-up', message: lastError ?? 'This computer asks you to confirm it is you before connecting.' });
        term.options.disableStdin = true;
        return;
      }
      const outcome = endedByPerson ? { message: 'You ended the session.', retry: true } : closeOutcome(ev.code, lastError);
      setStatus({ kind: 'closed', ...outcome });
      term.options.disableStdin = true;
    };
    const send = (d: string): void => {
      if (prompt) return typeIntoPrompt(d);
      if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    };
    const input: TermInput = { term, send };
    inputRef.current = input;
    const onData = term.onData((d) => send(input.onTyped?.(d) ?? d));
    const onResize = term.onResize(({ cols, rows }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
    return () => {
      endRef.current = null;
      if (inputRef.current === input) inputRef.current = null;
      onData.dispose();
      onResize.dispose();
      ws.onclose = null;
      ws.close(1000);
      dispose();
    };
  }

  const end = () => {
    if (confirm('End this session? The just-in-time account is removed.')) endRef.current?.();
  };
  if (idle)
    return (
      <SessionFrame title={title} live={false} onEnd={end}>
        <SessionEnded onStart={() => setAttempt((n) => n + 1)} />
      </SessionFrame>
    );
  // the side menu only when the policy allows something in it (copy, paste, file transfer)
  const hasMenu = status.kind === 'ready' && (status.clipboard.copy || status.clipboard.paste || status.fileTransfer);
  const menu = hasMenu ? <TerminalMenu input={inputRef} computer={status.computer} fileTransfer={status.fileTransfer} clipboard={status.clipboard} /> : undefined;
  return (
    <SessionFrame title={title} live={live} onEnd={end} menu={menu}>
      <div class="session-bar" role="status" aria-live="polite" data-testid="terminal-status">
        {status.kind === 'connecting' && <span>Preparing session: {status.step}</span>}
        {status.kind === 'sign-in' && (
          <span data-testid="own-password">
            {status.retry ? `${status.computer} refused that password. ` : ''}
            Sign in with your own password for <strong>{status.account}</strong>: type it in the terminal below. jitgate does not hold it; it goes only to {status.computer} and is not recorded.
          </span>
        )}
        {status.kind === 'ready' && (
          <span>
            Connected to <strong>{status.computer}</strong> as <strong data-testid="jit-account">{status.account}</strong>
            {status.own && ' (your own account, with admin rights for this session)'}
            {status.leaseExpiresAt !== null && <LeaseBar sessionId={status.sessionId} leaseExpiresAt={status.leaseExpiresAt} maxAt={status.leaseMaxAt} />}
          </span>
        )}
        {status.kind === 'error' && <span class="error-text">{status.message}</span>}
        {clipNote && status.kind === 'ready' && (
          <span class="muted" data-testid="clipboard-note">
            {' '}
            {clipNote}
          </span>
        )}
        {status.kind === 'closed' && (
          <>
            <span data-testid="close-reason">{status.message}</span>
            {status.retry && (
              <button type="button" onClick={() => setAttempt((n) => n + 1)}>
                Start a new session
              </button>
            )}
          </>
        )}
        {progress.length > 0 && status.kind === 'connecting' && <span class="muted"> ({progress.length} steps)</span>}
      </div>
      {status.kind === 'step-up' && <StepUpPrompt message={status.message} onDone={() => setAttempt((n) => n + 1)} />}
      {moderation && (
        <p class="watch-banner" role="status" aria-live="polite" data-testid="moderation-banner" data-state={moderation.state}>
          {moderation.message}
        </p>
      )}
      {watched && (
        <p class="watch-banner" role="alert" data-testid="watch-banner">
          {watched}
        </p>
      )}
      {/* every provisioning step, in order, as the gateway reported it (also kept for screen readers after connecting) */}
      <ol class="progress-steps sr-only" aria-label="Connection steps" data-testid="progress-steps">
        {progress.map((p, i) => (
          <li key={i}>{p}</li>
        ))}
      </ol>
      <div class="terminal-host" ref={host} data-testid="terminal" />
      {live && <TerminalKeys input={inputRef} />}
    </SessionFrame>
  );
}
