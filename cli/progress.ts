/** A progress bar on stderr: redrawn in place on a terminal, one line per update otherwise (logs, CI). */
export function progress(label: string, total: number, quiet = false): (done: number) => void {
  const tty = process.stderr.isTTY;
  const width = 30;
  let last = -1;
  return (done) => {
    if (quiet || done === last) return;
    last = done;
    const bar = '#'.repeat(Math.round((done / Math.max(total, 1)) * width)).padEnd(width, '.');
    process.stderr.write(`${tty ? '\r' : ''}${label} [${bar}] ${done}/${total}${tty ? '' : '\n'}`);
    if (tty && done >= total) process.stderr.write('\n');
  };
}
