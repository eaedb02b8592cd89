/**
 * Audit export formats. CSV follows RFC 4180 (CRLF rows; a field holding a
 * comma, quote, CR or LF is quoted and its quotes doubled) and defuses
 * spreadsheet formula injection (OWASP "CSV Injection"): a cell starting
 * with = + - @ (or TAB / CR, which some spreadsheets skip) gets a leading
 * single quote so it is shown as text, never evaluated.
 */
export interface ExportedEvent {
  seq: number;
  at: string;
  type: string;
  actor: string;
  outcome: string;
  sessionId: string | null;
  computer: string | null;
  account: string | null;
  data: unknown;
  prevHash: string;
  hash: string;
}

export const CSV_COLUMNS = ['seq', 'at', 'type', 'actor', 'outcome', 'sessionId', 'computer', 'account', 'data', 'prevHash', 'hash'] as const;

export function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? '' : typeof value === 'string' ? value : typeof value === 'number' ? String(value) : JSON.stringify(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(values: readonly unknown[]): string {
  return `${values.map(csvCell).join(',')}\r\n`;
}

export function csvHeader(): string {
  return csvRow(CSV_COLUMNS);
}

export function csvEvent(e: ExportedEvent): string {
  return csvRow(CSV_COLUMNS.map((c) => e[c]));
}

export function jsonLine(e: ExportedEvent): string {
  return `${JSON.stringify(e)}\n`;
}
