import module from 'node:module';
import { Hook as ImportHook } from 'import-in-the-middle';
import { Hook as RequireHook } from 'require-in-the-middle';
import { internalError } from '../log.js';
import { shared } from '../state.js';
import { separateBatchLanes } from './dataloader.js';
import { bindQueueJobs } from './p-queue.js';

/**
 * Libraries that pool work from many requests and run it in the wrong request's context, patched when
 * the app loads them: by `require-in-the-middle` for `require` and by `import-in-the-middle`'s loader
 * (limited to these packages) for `import`, the way OpenTelemetry's instrumentations hook modules.
 * Each patch takes the module's default export (the class) and changes its prototype.
 */
const LIBRARIES: Record<string, (exported: unknown) => void> = {
  'p-queue': bindQueueJobs,
  dataloader: separateBatchLanes,
};

function defaultExport(exported: unknown): unknown {
  const ns = exported as { default?: unknown } | undefined;
  return typeof exported === 'function' ? exported : ns?.default;
}

function patch(name: string, exported: unknown): void {
  try {
    LIBRARIES[name]?.(defaultExport(exported));
  } catch (err) {
    internalError(`library:${name}`, err);
  }
}

/**
 * Installs the module hooks once per process. `loaderParent` is the URL the loader hook resolves from
 * (this package's); without one (a CommonJS bundle) only `require` is hooked.
 */
export function installLibraryHooks(loaderParent: string | undefined): () => void {
  if (shared.libraryHooks) return () => {};
  shared.libraryHooks = true;
  const names = Object.keys(LIBRARIES);
  const requireHook = new RequireHook(names, (exported, name) => {
    patch(name, exported);
    return exported;
  });
  let importHook: ImportHook | undefined;
  if (loaderParent !== undefined && typeof module.register === 'function') {
    module.register('import-in-the-middle/hook.mjs', loaderParent, { data: { include: names } });
    importHook = new ImportHook(names, (exported, name) => {
      patch(name, exported);
    });
  }
  return () => {
    requireHook.unhook();
    importHook?.unhook();
    shared.libraryHooks = false;
  };
}
