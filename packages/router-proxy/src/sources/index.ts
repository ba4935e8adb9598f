import { ControllerRouteTableSource, type ControllerSourceOptions } from './controller.js';
import { FileRouteTableSource } from './file.js';
import type { RouteTableEvents, RouteTableSource } from './source.js';

export {
  ControllerRouteTableSource,
  type ControllerSourceOptions,
  SourceErrorCodes,
} from './controller.js';
export { FileRouteTableSource } from './file.js';
export type { RouteTableEvents, RouteTableSource } from './source.js';

/** An http(s) URL names the controller's route table; anything else is a file. */
export function isRouteTableUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec);
}

/** The source a `--route-table` value names: the controller's watch for a URL, else a watched file. */
export function openRouteTableSource(
  spec: string,
  events: RouteTableEvents,
  options: ControllerSourceOptions,
): RouteTableSource {
  return isRouteTableUrl(spec)
    ? new ControllerRouteTableSource(spec, events, options)
    : new FileRouteTableSource(spec, events);
}
