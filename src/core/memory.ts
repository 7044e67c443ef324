/**
 * Bounded memory, and fewer full garbage collections, while large messages stream through. Each
 * chunk of a body is a buffer whose memory V8 releases only when its small JavaScript wrapper is
 * collected; while a big message streams almost nothing else is allocated, so young-generation
 * collections are rare and tens of megabytes of dead buffers could pile up in each thread (the
 * 100 MB-message benchmark grew ~50 MB). V8 also counts buffer memory allocated since the last
 * full collection against the old generation's limit, dead or not, and starts a full collection
 * when it runs out: a minor collection (well under a millisecond) after every 2 MB streamed keeps
 * that count low. At 8 MB the delivery thread still ran about 40 full collections per 1,000
 * messages of 1 MB, with concurrent marking costing more CPU than the collections saved; at 2 MB
 * it runs one or two. Counted per thread, as each has its own heap.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

const EVERY_BYTES = 2 * 1024 * 1024;
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
