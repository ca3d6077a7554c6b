/**
 * The lines of a UTF-8 body as they arrive, split at CRLF, CR or LF; a last line without an end
 * is yielded too. Leaving early (the consumer broke out or threw, or a read failed) cancels the
 * body, closing the request, so the server's side (a watch, a code cell, a build) ends too
 * rather than run on until the caller's signal aborts.
 */
export async function* readLines(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<string, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ended = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline = buffer.search(/\r\n|\r|\n/);
      // A CR last in what arrived may be the first half of a CRLF: wait for the next piece.
      while (newline >= 0 && (done || newline < buffer.length - 1 || buffer[newline] !== "\r")) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        yield line;
        newline = buffer.search(/\r\n|\r|\n/);
      }
      if (done) {
        ended = true;
        if (buffer) yield buffer;
        return;
      }
    }
  } finally {
    if (ended) reader.releaseLock();
    else await reader.cancel().catch(() => {});
  }
}

/** One JSON value per non-blank line of an NDJSON body; leaving early closes the request. */
export async function* readNdjson(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<unknown, void, undefined> {
  for await (const line of readLines(body)) {
    if (line.trim()) yield JSON.parse(line);
  }
}
