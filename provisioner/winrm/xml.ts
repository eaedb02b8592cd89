/**
 * A deliberately small XML reader for WS-Man responses: elements,
 * attributes, text, namespaces; no DTDs, no processing instructions beyond
 * skipping the declaration. Entities are limited to the five predefined ones
 * and numeric references (no external entity expansion is possible).
 */

export interface XmlElement {
  /** Local name (without prefix). */
  readonly name: string;
  /** Namespace URI, '' when none. */
  readonly ns: string;
  /** Attributes by qualified name as written (e.g. `Name`, `xml:lang`). */
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  /** Concatenated direct text content. */
  text: string;
}

export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlError';
  }
}

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);/g, (_m, e: string) => {
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'amp') return '&';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    const code = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return String.fromCodePoint(code);
  });
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

const NAME = /^[A-Za-z_][\w.\-:]*/;

export function parseXml(src: string): XmlElement {
  let pos = 0;
  const stack: { el: XmlElement; nsMap: Map<string, string>; qname: string }[] = [];
  let root: XmlElement | null = null;

  const resolve = (qname: string, nsMap: Map<string, string>, isAttr: boolean): { name: string; ns: string } => {
    const i = qname.indexOf(':');
    if (i < 0) return { name: qname, ns: isAttr ? '' : (nsMap.get('') ?? '') };
    const prefix = qname.slice(0, i);
    if (prefix === 'xml') return { name: qname.slice(i + 1), ns: 'http://www.w3.org/XML/1998/namespace' };
    const ns = nsMap.get(prefix);
    if (ns === undefined) throw new XmlError(`undeclared namespace prefix ${prefix}`);
    return { name: qname.slice(i + 1), ns };
  };

  while (pos < src.length) {
    const lt = src.indexOf('<', pos);
    const textEnd = lt < 0 ? src.length : lt;
    if (textEnd > pos) {
      const text = src.slice(pos, textEnd);
      const top = stack[stack.length - 1];
      if (top) top.el.text += decodeEntities(text);
      else if (text.trim() !== '') throw new XmlError('text outside the root element');
    }
    if (lt < 0) break;
    pos = lt;
    if (src.startsWith('<?', pos)) {
      const end = src.indexOf('?>', pos);
      if (end < 0) throw new XmlError('unterminated declaration');
      pos = end + 2;
    } else if (src.startsWith('<!--', pos)) {
      const end = src.indexOf('-->', pos);
      if (end < 0) throw new XmlError('unterminated comment');
      pos = end + 3;
    } else if (src.startsWith('<![CDATA[', pos)) {
      const end = src.indexOf(']]>', pos);
      if (end < 0) throw new XmlError('unterminated CDATA');
      const top = stack[stack.length - 1];
      if (top) top.el.text += src.slice(pos + 9, end);
      pos = end + 3;
    } else if (src.startsWith('<!', pos)) {
      throw new XmlError('DTDs are not accepted');
    } else if (src.startsWith('</', pos)) {
      const end = src.indexOf('>', pos);
      if (end < 0) throw new XmlError('unterminated end tag');
      const qname = src.slice(pos + 2, end).trim();
      const top = stack.pop();
      if (!top || top.qname !== qname) throw new XmlError(`mismatched end tag ${qname}`);
      pos = end + 1;
    } else {
      pos++;
      const m = NAME.exec(src.slice(pos, pos + 200));
      if (!m) throw new XmlError('bad element name');
      const qname = m[0];
      pos += qname.length;
      const rawAttrs: [string, string][] = [];
      for (;;) {
        while (/\s/.test(src[pos] ?? '')) pos++;
        if (src.startsWith('/>', pos) || src[pos] === '>') break;
        const am = NAME.exec(src.slice(pos, pos + 200));
        if (!am) throw new XmlError(`bad attribute in ${qname}`);
        pos += am[0].length;
        while (/\s/.test(src[pos] ?? '')) pos++;
        if (src[pos] !== '=') throw new XmlError('attribute without value');
        pos++;
        while (/\s/.test(src[pos] ?? '')) pos++;
        const q = src[pos];
        if (q !== '"' && q !== "'") throw new XmlError('unquoted attribute');
        const end = src.indexOf(q, pos + 1);
        if (end < 0) throw new XmlError('unterminated attribute');
        rawAttrs.push([am[0], decodeEntities(src.slice(pos + 1, end))]);
        pos = end + 1;
      }
      const selfClose = src.startsWith('/>', pos);
      pos += selfClose ? 2 : 1;
      const parentMap = stack[stack.length - 1]?.nsMap ?? new Map<string, string>();
      const nsMap = new Map(parentMap);
      const attrs: Record<string, string> = {};
      for (const [k, v] of rawAttrs) {
        if (k === 'xmlns') nsMap.set('', v);
        else if (k.startsWith('xmlns:')) nsMap.set(k.slice(6), v);
        else attrs[k] = v;
      }
      const { name, ns } = resolve(qname, nsMap, false);
      const el: XmlElement = { name, ns, attrs, children: [], text: '' };
      const parent = stack[stack.length - 1];
      if (parent) parent.el.children.push(el);
      else if (root) throw new XmlError('more than one root element');
      else root = el;
      if (!selfClose) stack.push({ el, nsMap, qname });
    }
  }
  if (stack.length > 0) throw new XmlError('unclosed element');
  if (!root) throw new XmlError('empty document');
  return root;
}

/** Depth-first search for descendants (and self) matching local name and optional namespace. */
export function findAll(el: XmlElement, name: string, ns?: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement): void => {
    if (e.name === name && (ns === undefined || e.ns === ns)) out.push(e);
    for (const c of e.children) walk(c);
  };
  walk(el);
  return out;
}

export function find(el: XmlElement, name: string, ns?: string): XmlElement | undefined {
  return findAll(el, name, ns)[0];
}
