/**
 * A readable byte stream's chunks, one by one, as they were written into it. A Readable's own
 * async iterator reads in paused mode, where `read()` joins everything buffered into one new
 * Buffer: for a large message arriving faster than a turn of the event loop, that copied nearly
 * every byte once more (a tenth of the inbound SMTP thread's CPU for 1 MB messages). In flowing
 * mode each 'data' event is a chunk as it came.
 *
 * Same contract as the async iterator otherwise: backpressure (the stream is paused while a chunk
 * waits for the consumer), the stream's error is thrown, a stream destroyed before its end throws
 * ERR_STREAM_PREMATURE_CLOSE, and a consumer that stops early destroys the stream.
 */
import { finished, type Readable } from 'node:stream';

export async function* chunksOf(stream: Readable): AsyncGenerator<Buffer, void, undefined> {
  const waiting: Buffer[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let failure: Error | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer) => {
    waiting.push(chunk);
    if (waiting.length > 1) stream.pause();
    notify();
  };
  stream.on('data', onData);
  const stopWatching = finished(stream, { writable: false }, (err) => {
    if (err) failure = err;
    else ended = true;
    notify();
  });
  try {
    for (;;) {
      const chunk = waiting.shift();
      if (chunk) {
        if (!waiting.length && stream.isPaused()) stream.resume();
        yield chunk;
        continue;
      }
      if (failure) throw failure;
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stream.off('data', onData);
    stopWatching();
    if (!ended && !stream.destroyed) stream.destroy();
  }
}
