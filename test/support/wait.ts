/** Poll `check` until it returns a value other than undefined/false, or fail after `timeoutMs`. */
export async function waitUntil<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The id of the actor an inspection event is about. */
export const inspectedActorId = (event: { actorRef: unknown }): string =>
  String((event.actorRef as { id?: string }).id ?? '');
