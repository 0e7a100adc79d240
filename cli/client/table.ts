/**
 * Plain-text tables like `docker ps`: columns padded to their widest cell,
 * two spaces apart, a header row, no borders. Why no library: the common
 * ones (cli-table3, columnify, table) draw boxes or wrap cells, which breaks
 * `grep`/`awk` over the output, and each brings dependencies for what is
 * twenty lines here.
 */

export type Color = 'green' | 'yellow' | 'red' | 'dim' | 'bold';

const SGR: Record<Color, [number, number]> = { green: [32, 39], yellow: [33, 39], red: [31, 39], dim: [2, 22], bold: [1, 22] };

export function paint(text: string, color: Color | undefined, enabled: boolean): string {
  if (!enabled || !color || !text) return text;
  const [on, off] = SGR[color];
  return `\u001b[${on}m${text}\u001b[${off}m`;
}

/**
 * Colors only for a person at a terminal: not when stdout is a pipe or a
 * file, and not when NO_COLOR is set (https://no-color.org).
 */
export function colorWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR;
}

export interface Column<R> {
  header: string;
  value(row: R): string;
  color?(row: R): Color | undefined;
  align?: 'left' | 'right';
}

/** The table as lines; no line ends in spaces (an empty last cell included). */
export function renderTable<R>(rows: R[], columns: Column<R>[], opts: { color: boolean }): string {
  const cells = rows.map((r) => columns.map((c) => c.value(r)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (texts: string[], colors: Array<Color | undefined>) =>
    texts
      .map((text, i) => {
        const last = i === texts.length - 1;
        const pad = ' '.repeat(widths[i]! - text.length);
        const shown = paint(text, colors[i], opts.color);
        if (columns[i]!.align === 'right') return pad + shown;
        return last ? shown : shown + pad;
      })
      .join('  ')
      .replace(/ +$/, '');
  return [
    line(columns.map((c) => c.header), columns.map(() => 'bold' as const)),
    ...rows.map((r, j) => line(cells[j]!, columns.map((c) => c.color?.(r)))),
  ].join('\n');
}

/** `label  value` pairs, labels padded, for one object (`omega sandbox get`). */
export function renderFields(fields: Array<[string, string, Color?]>, opts: { color: boolean }): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value, color]) => `${paint(label.padEnd(width), 'dim', opts.color)}  ${paint(value, color, opts.color)}`).join('\n');
}

/** `1h5m`, `45s`, `3d4h`: the largest unit and the next one (when not zero), for ages and time left. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const units: Array<[string, number]> = [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]];
  const i = units.findIndex(([, size]) => s >= size);
  if (i < 0) return '0s';
  const [name, size] = units[i]!;
  let out = `${Math.floor(s / size)}${name}`;
  const next = units[i + 1];
  if (next && Math.floor((s % size) / next[1]) > 0) out += `${Math.floor((s % size) / next[1])}${next[0]}`;
  return out;
}
