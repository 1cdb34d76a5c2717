export interface Frame {
  id?: number;
  event?: string;
  data?: unknown;
}

/** An open /events stream, read and parsed frame by frame as it arrives. */
export async function openStream(url: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const frames: Frame[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  let bytes = 0;
  let ended = false;
  const reading = (async () => {
    const reader = res.body!.getReader();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) {
        ended = true;
        return;
      }
      bytes += value.byteLength;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const frame: Frame = {};
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) frame.id = Number(line.slice(4));
          else if (line.startsWith('event: ')) frame.event = line.slice(7);
          else if (line.startsWith('data: ')) frame.data = JSON.parse(line.slice(6));
        }
        if (frame.event) frames.push(frame);
      }
    }
  })();
  return {
    res,
    frames,
    trackerFrames: () => frames.filter((f) => f.event === 'tracker'),
    /** Bytes received so far. */
    bytes: () => bytes,
    /** Whether the server ended the stream. */
    ended: () => ended,
    async close() {
      abort.abort();
      await reading;
    },
  };
}
