export {
  type AppliedResult,
  type PublisherOptions,
  RouteTablePublisher,
  type WatcherInfo,
} from './traffic/publisher.js';
