import type { Page } from 'playwright-core';

/**
 * What a person on a phone notices at once, measured in Chromium (issue 17,
 * "browser-tested at desktop and mobile width"): the page scrolling
 * sideways, a button or link pushed off the screen or clipped by a box, a
 * table wider than the screen without a scrolling box of its own. Page-side
 * code as a string: the test project's TypeScript has no DOM library.
 */
const LAYOUT = `(() => {
  const W = window.innerWidth;
  const out = [];
  const name = (el) => {
    const t = (el.getAttribute('aria-label') || el.textContent || el.getAttribute('name') || el.id || '').replace(/\\s+/g, ' ').trim().slice(0, 40);
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (t ? ' "' + t + '"' : '') + (el.className && typeof el.className === 'string' ? ' .' + el.className.trim().split(/\\s+/).join('.') : '');
  };
  const scroller = (el) => {
    const s = getComputedStyle(el).overflowX;
    return s === 'auto' || s === 'scroll';
  };
  const clips = (el) => {
    const s = getComputedStyle(el);
    return s.overflowX === 'hidden' || s.overflowX === 'clip' || s.overflowY === 'hidden' || s.overflowY === 'clip';
  };
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return false;
    return getComputedStyle(el).visibility !== 'hidden';
  };
  const se = document.scrollingElement;
  if (se.scrollWidth > W) {
    // the widest things past the right edge, to name the culprit
    const inScroller = (el) => { for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) if (scroller(a)) return true; return false; };
    const wide = [...document.body.querySelectorAll('*')].filter((el) => shown(el) && el.getBoundingClientRect().right > W + 1 && !inScroller(el)).slice(-3).map(name);
    out.push('the page scrolls sideways: ' + se.scrollWidth + ' px wide on a ' + W + ' px screen (past the edge: ' + wide.join('; ') + ')');
  }
  // every control can be reached: inside the screen, or inside a box that scrolls; never cut off by a box that hides overflow
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')) {
    if (el.closest('.sr-only, .skip, .xterm-helper-textarea, [aria-hidden="true"]') || !shown(el)) continue;
    let r = el.getBoundingClientRect();
    let bad = '';
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const ar = a.getBoundingClientRect();
      if (scroller(a)) { r = ar; continue; }
      if (clips(a) && (r.right <= ar.left + 1 || r.left >= ar.right - 1 || r.bottom <= ar.top + 1 || r.top >= ar.bottom - 1)) { bad = 'cut off by ' + name(a); break; }
    }
    if (!bad && (r.left < -1 || r.right > W + 1)) bad = 'off the screen (' + Math.round(r.left) + '..' + Math.round(r.right) + ' of ' + W + ' px)';
    if (bad) out.push(name(el) + ' cannot be reached: ' + bad);
  }
  // tables fit the screen, or scroll inside their own box
  for (const t of document.querySelectorAll('table')) {
    if (!shown(t)) continue;
    const r = t.getBoundingClientRect();
    if (r.left >= -1 && r.right <= W + 1) continue;
    let box = null;
    for (let a = t.parentElement; a && a !== document.body; a = a.parentElement) if (scroller(a)) { box = a; break; }
    const br = box && box.getBoundingClientRect();
    if (!br || br.left < -1 || br.right > W + 1) out.push(name(t) + ' is ' + Math.round(r.width) + ' px wide on a ' + W + ' px screen and has no scrolling box of its own');
  }
  return out;
})()`;

/** The layout problems of the page as it is now, each prefixed with `where`. */
export async function layoutProblems(page: Page, where: string): Promise<string[]> {
  return (await page.evaluate<string[]>(LAYOUT)).map((p) => `${where}: ${p}`);
}
