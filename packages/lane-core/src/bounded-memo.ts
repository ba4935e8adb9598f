/**
 * Answers kept by key on the request path, for keys that come from clients (hosts, peer addresses,
 * lane header values): when it holds `limit` of them it starts afresh, so a client sending new keys
 * cannot grow it.
 */
export class BoundedMemo<K, V> {
  private readonly answers = new Map<K, V>();

  constructor(private readonly limit: number) {}

  /** The answer kept for `key`, or undefined. */
  get(key: K): V | undefined {
    return this.answers.get(key);
  }

  /** Keeps `answer` for `key` and returns it. */
  set(key: K, answer: V): V {
    if (this.answers.size >= this.limit) this.answers.clear();
    this.answers.set(key, answer);
    return answer;
  }

  clear(): void {
    this.answers.clear();
  }
}
