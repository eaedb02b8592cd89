import Guacamole from 'guacamole-common-js';
import { CodePointParser, KeyTimeline, type TimelineEntry } from '../../../recorder/rdp-key-timeline.js';

/**
 * Replay of a guacd session recording with Guacamole.SessionRecording:
 * play/pause, seek bar, speed.
 *
 * guacd writes instruction lengths in Unicode code points; 1.5.0's
 * StaticHTTPTunnel parses them as UTF-16 units, which breaks on the first
 * astral character (emoji in a window title or clipboard). The recording is
 * therefore fetched by a tunnel of our own that parses code points and
 * hands SessionRecording already-split instructions.
 *
 * SessionRecording 1.5.0 also indexes frames by character offsets
 * (`getElementSize` uses String.length) but later slices its Blob of UTF-8
 * by *byte* offsets, so any non-ASCII text shifts every later frame. Drawing
 * data is base64 (ASCII); the tunnel replaces non-ASCII characters in text
 * arguments (window names, messages) with "?" so seeking stays exact.
 */

function asciiOnly(s: string): string {
  return /[^\x00-\x7f]/u.test(s) ? s.replace(/[^\x00-\x7f]/gu, '?') : s;
}

/**
 * A read-only tunnel that streams a recording over HTTP (same-origin
 * cookies) with code-point parsing. Guacamole.Tunnel assigns its methods
 * in the constructor, so they are replaced on the instance (a subclass's
 * prototype methods would be shadowed).
 */
function recordingTunnel(url: string, onRaw?: (opcode: string, args: string[]) => void): Guacamole.Tunnel {
  const tunnel = new Guacamole.Tunnel();
  let abort: AbortController | null = null;
  tunnel.sendMessage = () => undefined;
  tunnel.disconnect = () => {
    abort?.abort();
    abort = null;
    tunnel.setState(Guacamole.Tunnel.State.CLOSED);
  };
  tunnel.connect = () => {
    tunnel.disconnect();
    tunnel.setState(Guacamole.Tunnel.State.CONNECTING);
    const ac = new AbortController();
    abort = ac;
    const parser = new CodePointParser();
    const decoder = new TextDecoder('utf-8');
    const emit = (op: string, args: string[]): void => {
      // The timeline reads the text as written (before the "?" replacement below).
      onRaw?.(op, args);
      tunnel.oninstruction?.(op, args.map(asciiOnly));
    };
    void (async () => {
      const res = await fetch(url, { credentials: 'same-origin', signal: ac.signal });
      if (!res.ok || !res.body) {
        tunnel.onerror?.(new Guacamole.Status(0x0204, `recording unavailable (HTTP ${res.status})`));
        tunnel.disconnect();
        return;
      }
      tunnel.setState(Guacamole.Tunnel.State.OPEN);
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }), emit);
      }
      parser.push(decoder.decode(), emit);
      tunnel.disconnect();
    })().catch((err: unknown) => {
      if (ac.signal.aborted) return;
      tunnel.onerror?.(new Guacamole.Status(0x0200, err instanceof Error ? err.message : 'recording could not be read'));
      tunnel.disconnect();
    });
  };
  return tunnel;
}

function fmt(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

const SPEEDS = [0.5, 1, 2, 4, 8];

/** `startAtMs`: open at that moment (a search hit, an audit event) instead of the first frame. */
export function mountRdpReplay(el: HTMLElement, opts: { url: string; startAtMs?: number }): { dispose(): void } {
  const root = document.createElement('div');
  root.className = 'jitgate-rdp-replay';
  const screen = document.createElement('div');
  Object.assign(screen.style, { position: 'relative', overflow: 'hidden', width: '100%', minHeight: '200px' });
  const bar = document.createElement('div');
  bar.className = 'replay-controls';
  const playBtn = document.createElement('button');
  playBtn.type = 'button';
  playBtn.textContent = 'Play';
  const seek = document.createElement('input');
  seek.type = 'range';
  seek.min = '0';
  seek.max = '0';
  seek.value = '0';
  seek.setAttribute('aria-label', 'Position');
  const time = document.createElement('span');
  time.textContent = 'loading…';
  const speed = document.createElement('select');
  speed.setAttribute('aria-label', 'Speed');
  for (const s of SPEEDS) {
    const o = document.createElement('option');
    o.value = String(s);
    o.textContent = `${s}×`;
    if (s === 1) o.selected = true;
    speed.appendChild(o);
  }
  bar.append(playBtn, seek, time, speed);
  const player = document.createElement('div');
  Object.assign(player.style, { flex: '3 1 420px', minWidth: '0' });
  player.append(screen, bar);
  // Typed keys and clipboard beside the player (recordings made with the recordInput policy); hidden when there are none.
  const aside = document.createElement('aside');
  aside.className = 'replay-timeline';
  aside.setAttribute('aria-label', 'Typed keys and clipboard');
  Object.assign(aside.style, { flex: '1 1 220px', maxHeight: '480px', overflow: 'auto', display: 'none' });
  Object.assign(root.style, { display: 'flex', flexWrap: 'wrap', gap: '1rem', alignItems: 'flex-start' });
  root.append(player, aside);
  el.appendChild(root);

  const timeline = new KeyTimeline();
  const recording = new Guacamole.SessionRecording(recordingTunnel(opts.url, (op, args) => timeline.push(op, args)));
  const display = recording.getDisplay();
  screen.appendChild(display.getElement());
  const rescale = (): void => {
    const w = display.getWidth();
    const h = display.getHeight();
    if (!w || !h) return;
    const s = Math.min(screen.clientWidth / w, 1);
    display.scale(s);
    screen.style.height = `${Math.round(h * s)}px`;
  };
  display.onresize = rescale;
  const observer = new ResizeObserver(rescale);
  observer.observe(screen);

  // Speed other than 1×: SessionRecording 1.5.0 plays in real time only, so drive it by seeking.
  let rate = 1;
  let fastTimer: number | undefined;
  let fastPlaying = false;
  let disposed = false;
  const showTime = (): void => {
    const pos = recording.getPosition();
    seek.value = String(pos);
    time.textContent = `${fmt(pos)} / ${fmt(recording.getDuration())}`;
  };
  const stopFast = (): void => {
    fastPlaying = false;
    window.clearTimeout(fastTimer);
  };
  const stepFast = (): void => {
    if (!fastPlaying || disposed) return;
    const target = Math.min(recording.getDuration(), recording.getPosition() + 100 * rate);
    recording.seek(target, () => {
      showTime();
      if (target >= recording.getDuration()) {
        stopFast();
        playBtn.textContent = 'Play';
        return;
      }
      fastTimer = window.setTimeout(stepFast, 100);
    });
  };
  const playing = (): boolean => fastPlaying || recording.isPlaying();
  const play = (): void => {
    if (rate === 1) recording.play();
    else {
      recording.pause();
      fastPlaying = true;
      stepFast();
    }
    playBtn.textContent = 'Pause';
  };
  const pause = (): void => {
    stopFast();
    recording.pause();
    playBtn.textContent = 'Play';
  };

  playBtn.addEventListener('click', () => (playing() ? pause() : play()));
  seek.addEventListener('input', () => {
    const wasPlaying = playing();
    pause();
    recording.seek(Number(seek.value), () => {
      showTime();
      if (wasPlaying) play();
    });
  });
  speed.addEventListener('change', () => {
    const wasPlaying = playing();
    pause();
    rate = Number(speed.value) || 1;
    if (wasPlaying) play();
  });

  const KIND_WORDS: Record<TimelineEntry['kind'], string> = { text: 'typed', key: 'key', clipboard: 'clipboard' };
  let shown = -1;
  const renderTimeline = (): void => {
    const entries = timeline.entries;
    if (entries.length === shown) return;
    shown = entries.length;
    aside.style.display = entries.length ? '' : 'none';
    const list = document.createElement('ol');
    list.className = 'timeline-list';
    for (const e of entries) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `timeline-entry ${e.kind}`;
      b.dataset.at = String(e.at);
      const when = document.createElement('time');
      when.textContent = fmt(e.at);
      const what = document.createElement('span');
      what.textContent = `${KIND_WORDS[e.kind]}: `;
      const text = document.createElement('code');
      text.textContent = e.text;
      b.append(when, ' ', what, text);
      b.setAttribute('aria-label', `${fmt(e.at)} ${KIND_WORDS[e.kind]} ${e.text}: play from here`);
      b.addEventListener('click', () => {
        const wasPlaying = playing();
        pause();
        recording.seek(Math.min(e.at, recording.getDuration()), () => {
          showTime();
          if (wasPlaying) play();
        });
      });
      const li = document.createElement('li');
      li.appendChild(b);
      list.appendChild(li);
    }
    const h = document.createElement('h3');
    h.textContent = 'Typed keys and clipboard';
    aside.replaceChildren(h, list);
  };

  recording.onprogress = (duration) => {
    seek.max = String(duration);
    showTime();
    renderTimeline();
  };
  recording.onload = () => {
    renderTimeline();
    seek.max = String(recording.getDuration());
    // SessionRecording draws nothing before a seek or play; frames are seekable once the data is in its Blob.
    if (!playing() && recording.getPosition() === 0) recording.seek(Math.min(opts.startAtMs ?? 0, recording.getDuration()), showTime);
    else showTime();
  };
  recording.onseek = () => showTime();
  recording.onplay = () => (playBtn.textContent = 'Pause');
  recording.onpause = () => {
    if (!fastPlaying) playBtn.textContent = 'Play';
  };
  recording.onerror = (message) => {
    time.textContent = `cannot play: ${message}`;
  };
  const ticker = window.setInterval(() => {
    if (recording.isPlaying()) showTime();
  }, 250);
  recording.connect();

  return {
    dispose(): void {
      disposed = true;
      stopFast();
      window.clearInterval(ticker);
      observer.disconnect();
      recording.pause();
      recording.abort();
      root.remove();
    },
  };
}
