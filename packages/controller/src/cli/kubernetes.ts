import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { parseDocument } from '../documents/parse.js';
import { ControllerErrors } from '../errors.js';
import { kubernetesTarget } from '../kubernetes/kubeconfig.js';
import { REQUEST_ANNOTATION, type RequestStatus, requestValue } from '../kubernetes/request.js';
import type { ReleaseAction } from '../release/actions.js';
import type { Phase } from '../release/phases.js';
import { initialStatus, type Release } from '../release/status.js';
import { ApiCallError } from './client.js';

const RELEASES = { group: 'graylane.dev', version: 'v1alpha1', plural: 'releases' } as const;

interface ReleaseObject {
  metadata: {
    name: string;
    creationTimestamp?: string | Date;
    annotations?: Record<string, string>;
  };
  spec: unknown;
  status?: Partial<Release['status']> &
    RequestStatus & { conditions?: Array<{ type: string; status: string; message: string }> };
}

/** A Release as the CLI shows it: the document, its status, and the object as stored. */
export type ReleaseView = Release & RequestStatus & { object: ReleaseObject };

/**
 * Releases of Kubernetes mode for the CLI (`--kubernetes`): read from the custom resources, and
 * actions asked for with the request annotation the controller applies. Talks to the API server
 * with the user's kubeconfig; the controller need not be reachable.
 */
export class KubernetesReleases {
  private readonly api: CustomObjectsApi;
  readonly namespace: string;

  constructor(options: { kubeconfig?: string; namespace?: string }) {
    const { kubeConfig, namespace } = kubernetesTarget(options);
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.namespace = namespace;
  }

  async list(): Promise<ReleaseView[]> {
    const list = (await this.call(() =>
      this.api.listNamespacedCustomObject({ ...RELEASES, namespace: this.namespace }),
    )) as { items: ReleaseObject[] };
    return list.items.map(view);
  }

  async get(name: string): Promise<ReleaseView> {
    return view(
      (await this.call(
        () => this.api.getNamespacedCustomObject({ ...RELEASES, namespace: this.namespace, name }),
        name,
      )) as ReleaseObject,
    );
  }

  /** Writes the request annotation with a fresh ID; returns its value. */
  async request(name: string, action: ReleaseAction): Promise<string> {
    const value = requestValue(action);
    await this.call(
      () =>
        this.api.patchNamespacedCustomObject(
          {
            ...RELEASES,
            namespace: this.namespace,
            name,
            body: { metadata: { annotations: { [REQUEST_ANNOTATION]: value } } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      name,
    );
    return value;
  }

  /**
   * Waits until the controller's status says it took the request `value`; throws the refusal as
   * the local API would answer it (GRAYLANE_ERR_INVALID_ACTION), or when `timeoutMs` passes.
   */
  async waitForRequest(name: string, value: string, timeoutMs: number): Promise<ReleaseView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const release = await this.get(name);
      if (release.lastRequest === value) {
        if (release.lastRequestRefused !== undefined)
          throw new ApiCallError(ControllerErrors.invalidAction.code, release.lastRequestRefused);
        return release;
      }
      if (Date.now() > deadline) {
        throw new ApiCallError(
          ControllerErrors.unreachable.code,
          `the controller did not take ${REQUEST_ANNOTATION}=${value} within ${timeoutMs / 1000} s; is it running in namespace ${this.namespace}?`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** An API server error as the CLI reports the controller's: a code and one line. */
  private async call<T>(run: () => Promise<T>, name?: string): Promise<T> {
    try {
      return await run();
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === 404 && name !== undefined) {
        throw new ApiCallError(
          ControllerErrors.notFound.code,
          `release ${name} not found in namespace ${this.namespace}`,
        );
      }
      if (code === 404) {
        throw new ApiCallError(
          ControllerErrors.notFound.code,
          'no Release resource on this cluster: kubectl apply -f deploy/kubernetes/crds.yaml',
        );
      }
      const body = (error as { body?: string }).body;
      const message = body
        ? ((safeJson(body) as { message?: string })?.message ?? body)
        : undefined;
      throw new ApiCallError(
        code === 401 || code === 403
          ? ControllerErrors.unauthorized.code
          : ControllerErrors.unreachable.code,
        `the API server answered ${code ?? (error as Error).message}${message ? `: ${message}` : ''}`,
      );
    }
  }
}

/**
 * The object as a release document. One the controller has not taken yet shows as Pending; one it
 * refused (`Valid=False`) as Invalid, with the reason as its failure.
 */
function view(object: ReleaseObject): ReleaseView {
  const created = Date.parse(String(object.metadata.creationTimestamp ?? new Date().toISOString()));
  let release: Release;
  try {
    const doc = parseDocument(
      { metadata: { name: object.metadata.name }, spec: object.spec },
      'Release',
    );
    release = {
      ...doc,
      status: object.status?.phase
        ? (object.status as Release['status'])
        : initialStatus(doc.spec, created),
    };
  } catch (error) {
    const spec = object.spec as Release['spec'];
    release = {
      apiVersion: 'graylane.dev/v1alpha1',
      kind: 'Release',
      metadata: { name: object.metadata.name },
      spec: { ...spec, services: spec?.services ?? [] },
      status: {
        ...initialStatus({ ...spec, services: [] }, created),
        failure: (error as Error).message,
      },
    };
  }
  const invalid = object.status?.conditions?.find(
    (c) => c.type === 'Valid' && c.status === 'False',
  );
  if (invalid && !object.status?.phase) {
    // Not a phase of the release core: the controller never started it.
    release.status = { ...release.status, phase: 'Invalid' as Phase, failure: invalid.message };
  }
  return {
    ...release,
    ...(object.status?.lastRequest !== undefined ? { lastRequest: object.status.lastRequest } : {}),
    ...(object.status?.lastRequestRefused !== undefined
      ? { lastRequestRefused: object.status.lastRequestRefused }
      : {}),
    object,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
