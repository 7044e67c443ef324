/**
 * Reproducible randomness for the parser and scanner tests that compare two implementations on
 * random input: the same seed gives the same bytes and the same split, so a failure names its case.
 */

/** A linear congruential generator in [0, 1). */
export function seededRandom(seed: number): () => number {
  let x = seed * 2654435761 + 1;
  return () => (x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

/** `bytes` cut into consecutive chunks of 1 … maxChunk bytes. */
export function splitAtRandom(bytes: Buffer, rnd: () => number, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + Math.floor(rnd() * maxChunk);
    chunks.push(bytes.subarray(i, i + n));
    i += n;
  }
  return chunks;
}
