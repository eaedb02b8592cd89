/**
 * The RDP view and replay live in src/rdp/ (written separately). They are
 * loaded through import.meta.glob so the app builds — and says so in words —
 * while those modules do not exist yet.
 */
export interface RdpHandle {
  disconnect(): void;
}
export interface RdpOptions {
  computerId: string;
  accountType?: 'domain' | 'local';
  csrf: string;
  onStatus: (status: string) => void;
  onClosed: (reason: string, retry: boolean) => void;
  onStepUp?: (message: string) => void;
  onReady?: (info: { sessionId: string; computer: string; leaseExpiresAt: number | null; menu: boolean }) => void;
  /** Where the clipboard and file controls go (the session page's side menu). */
  menuHost?: HTMLElement;
  onWatchers?: (change: { watchers: number; event: string | undefined; by: string | undefined }) => void;
  onModeration?: (status: { state: string; message: string }) => void;
}
export interface RdpReplayHandle {
  dispose(): void;
}

export interface RdpWatchOptions {
  sessionId: string;
  csrf: string;
  onStatus: (status: string) => void;
  onClosed: (reason: string) => void;
}
type ViewModule = { mountRdp: (el: HTMLElement, opts: RdpOptions) => RdpHandle; watchRdp: (el: HTMLElement, opts: RdpWatchOptions) => RdpHandle };
type ReplayModule = { mountRdpReplay: (el: HTMLElement, opts: { url: string; startAtMs?: number }) => RdpReplayHandle };

const views = import.meta.glob<ViewModule>('./rdp/rdp-view.ts');
const replays = import.meta.glob<ReplayModule>('./rdp/rdp-replay.ts');

export async function loadRdpView(): Promise<ViewModule | null> {
  const load = views['./rdp/rdp-view.ts'];
  return load ? load() : null;
}

/**
 * Fetch the RDP code ahead of need (the sessions page calls it when idle):
 * a click on "Remote desktop" then waits for no cold module load.
 */
export function preloadRdpView(): void {
  void loadRdpView().catch(() => undefined);
}

// Opened straight on an RDP page (the new tab a click opens): fetch the RDP code while the app asks who is
// signed in, not after (saves one round of module loading before the websocket opens).
if (typeof location !== 'undefined' && location.pathname.startsWith('/rdp/')) preloadRdpView();

export async function loadRdpReplay(): Promise<ReplayModule | null> {
  const load = replays['./rdp/rdp-replay.ts'];
  return load ? load() : null;
}
