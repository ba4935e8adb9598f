/**
 * Synthetic traffic: requests the controller sends through an entry so that a low-traffic lane has
 * data to analyse. Proxies count them in `graylane_synthetic_*` instead of the business metrics, so
 * dashboards and SLOs do not see test load; analysis reads both.
 */
export const SYNTHETIC_HEADER = 'x-graylane-synthetic';

/** Whether a request says it is synthetic (`x-graylane-synthetic: 1`). */
export function isSynthetic(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): boolean {
  return headers[SYNTHETIC_HEADER] === '1';
}
