/**
 * Bit-matrix transpose between the column view of OT extension (one column per base OT, one bit
 * per extended OT) and the row view (one 256-bit row per extended OT). 32x32 blocks are
 * transposed with the recursive block-swap method; bit k of a word is (word >>> k) & 1.
 */

const T32 = new Uint32Array(32);

/** In-place transpose of a 32x32 bit block: afterwards bit c of a[r] is the old bit r of a[c]. */
function transpose32(a: Uint32Array): void {
  let m = 0x0000ffff;
  for (let j = 16; j !== 0; j >>>= 1, m = (m ^ (m << j)) >>> 0) {
    for (let k = 0; k < 32; k = (k + j + 1) & ~j) {
      const t = ((a[k]! >>> j) ^ a[k + j]!) & m;
      a[k] = a[k]! ^ (t << j);
      a[k + j] = a[k + j]! ^ t;
    }
  }
}

/**
 * cols: `nCols` columns of `colWords` words each (column c at cols[c * colWords ..]).
 * Returns the first `nRows` rows (nRows a multiple of 32, nCols a multiple of 32), each nCols / 32
 * words: bit c of row r equals bit r of column c.
 */
export function transposeColumns(cols: Uint32Array, nCols: number, colWords: number, nRows: number): Uint32Array {
  if (nCols % 32 !== 0 || nRows % 32 !== 0 || nRows > colWords * 32) throw new RangeError('transposeColumns: bad shape');
  const rowWords = nCols >>> 5;
  const rows = new Uint32Array(nRows * rowWords);
  const a = T32;
  for (let cb = 0; cb < rowWords; cb++) {
    for (let rb = 0; rb < nRows >>> 5; rb++) {
      for (let k = 0; k < 32; k++) a[k] = cols[(cb * 32 + k) * colWords + rb]!;
      transpose32(a);
      for (let k = 0; k < 32; k++) rows[(rb * 32 + k) * rowWords + cb] = a[k]!;
    }
  }
  return rows;
}
