export * from './baggage.js';
export * from './errors.js';
export * from './lane.js';
export * from './route-table/load.js';
export * from './route-table/schema.js';
export * from './route-table/validate.js';
export * from './served.js';
export * from './tag.js';
