/**
 * State kept per endpoint of a service, found through a map per service: a lookup on the request
 * path builds and hashes no `service + endpoint` key string (issue 21).
 */
export class EndpointMap<V> {
  private readonly byService = new Map<string, Map<string, V>>();

  get(service: string, endpoint: string): V | undefined {
    return this.byService.get(service)?.get(endpoint);
  }

  set(service: string, endpoint: string, value: V): void {
    let endpoints = this.byService.get(service);
    if (!endpoints) {
      endpoints = new Map();
      this.byService.set(service, endpoints);
    }
    endpoints.set(endpoint, value);
  }

  delete(service: string, endpoint: string): void {
    const endpoints = this.byService.get(service);
    if (!endpoints) return;
    endpoints.delete(endpoint);
    if (endpoints.size === 0) this.byService.delete(service);
  }

  /** Every entry as [service, endpoint, value]; deleting the current one while iterating is safe. */
  *entries(): IterableIterator<[string, string, V]> {
    for (const [service, endpoints] of this.byService) {
      for (const [endpoint, value] of endpoints) yield [service, endpoint, value];
    }
  }

  *values(): IterableIterator<V> {
    for (const endpoints of this.byService.values()) yield* endpoints.values();
  }

  clear(): void {
    this.byService.clear();
  }
}
