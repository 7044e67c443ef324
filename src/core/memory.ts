/**
 * Bounded memory while large messages stream through. Each chunk of a body is a buffer whose
 * memory V8 releases only when its small JavaScript wrapper is collected; while a big message
 * streams almost nothing else is allocated, so young-generation collections are rare and tens of
 * megabytes of dead buffers could pile up in each thread before V8's external-memory trigger
 * fires (the 100 MB-message benchmark grew ~50 MB). A minor collection after every 8 MB streamed
 * (about a millisecond) keeps that garbage small. Counted per thread, as each has its own heap.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

const EVERY_BYTES = 8 * 1024 * 1024;
let collect: ((options: { type: 'minor' | 'major' }) => void) | null | undefined;
let streamed = 0;

function collector(): typeof collect {
  if (collect === undefined) {
    try {
      // `gc` exists only in contexts created after --expose-gc is set; the process's own global
      // scope stays as it was.
      v8.setFlagsFromString('--expose-gc');
      collect = vm.runInNewContext('gc') as typeof collect;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/** Notes `bytes` of message body passing through this thread. */
export function noteStreamed(bytes: number): void {
  streamed += bytes;
  if (streamed < EVERY_BYTES) return;
  streamed = 0;
  collector()?.({ type: 'minor' });
}
