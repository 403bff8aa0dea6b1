/**
 * Hex dumps for -x/--hex: every chunk, marked with its direction, 16 bytes a line:
 *   > 00000000  68 65 6c 6c 6f 0a                                 |hello.|
 */

/** Formats one chunk; `offset` is the running byte count of that direction before this chunk. */
export function hexdump(chunk: Buffer, marker: string, offset = 0): string {
  const lines: string[] = [];
  for (let i = 0; i < chunk.length; i += 16) {
    const row = chunk.subarray(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${marker} ${(offset + i).toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|`);
  }
  return lines.join('\n') + '\n';
}

/** Keeps a running offset per direction and writes dumps to `out`. */
export function hexDumper(out: NodeJS.WritableStream, markers: Record<string, string>) {
  const offsets: Record<string, number> = {};
  return (direction: string, chunk: Buffer) => {
    const offset = offsets[direction] ?? 0;
    offsets[direction] = offset + chunk.length;
    out.write(hexdump(chunk, markers[direction] ?? direction, offset));
  };
}
