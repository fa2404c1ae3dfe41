/**
 * Reading a report back, for the report tests (Node, CLI, end-to-end): its Markdown tables,
 * its CSVs (RFC 4180), and a well-formedness check of its SVGs that needs no DOM.
 */

/** The first Markdown table after the heading `## title`: header cells and body rows (cells trimmed, `\|` unescaped). */
export function mdTable(md: string, title: string): { header: string[]; rows: string[][] } {
  const at = md.indexOf(`\n## ${title}\n`);
  if (at < 0) throw new Error(`no section "${title}" in the report`);
  const lines = md.slice(at).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const table: string[] = [];
  for (let i = start; i < lines.length && lines[i].startsWith('|'); i++) table.push(lines[i]);
  const cells = (l: string) =>
    l
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, '|'));
  return { header: cells(table[0]), rows: table.slice(2).map(cells) };
}

/** CSV text (RFC 4180: quoted cells, doubled quotes) as rows of cells; the last line break ends the last row. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\n') row.push(cell), rows.push(row), (row = []), (cell = '');
    else cell += c;
  }
  if (cell !== '' || row.length) row.push(cell), rows.push(row);
  return rows;
}

/** CSV rows as objects keyed by the header. */
export function csvRecords(text: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(text);
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

/**
 * Problems that make `svg` not a well-formed standalone SVG document: an XML declaration, then
 * one <svg> root with the SVG namespace, a viewBox and a <title>; every tag closed in order,
 * attributes quoted, `&` only in the five XML entities or numeric references, no `<` in text.
 */
export function svgProblems(svg: string): string[] {
  const problems: string[] = [];
  const body = svg.replace(/^<\?xml [^?]*\?>\s*/, () => '');
  if (body === svg) problems.push('no XML declaration');
  const stack: string[] = [];
  let roots = 0;
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|([^<]+)|(<)/g;
  for (const m of body.matchAll(re)) {
    const [, close, name, , selfClose, textPart, stray] = m;
    if (stray) {
      problems.push(`a stray "<" at ${m.index}`);
      continue;
    }
    if (textPart !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(textPart)) problems.push(`an unescaped "&" in "${textPart.slice(0, 40)}"`);
      if (stack.length === 0 && textPart.trim()) problems.push(`text outside the root: "${textPart.slice(0, 40)}"`);
      continue;
    }
    if (!name) continue;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(m[3] ?? '')) problems.push(`an unescaped "&" in <${name}>'s attributes`);
    if (close) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open}>`);
    } else {
      if (stack.length === 0) roots++;
      if (!selfClose) stack.push(name);
    }
  }
  if (stack.length) problems.push(`unclosed: ${stack.join(' > ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  if (!/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* viewBox="[\d.]+ [\d.]+ [\d.]+ [\d.]+"/.test(body)) problems.push('the root is not <svg xmlns=… viewBox=…>');
  if (!/^<svg[^>]*>\s*<title>[^<]+<\/title>/.test(body)) problems.push('no <title> first in the root');
  return problems;
}
