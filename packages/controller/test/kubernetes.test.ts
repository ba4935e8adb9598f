import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { CoordinationV1Api, type V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, freePort, sleep, until } from './graylane.js';
import { applyYaml, deployFile, type KubeEnv, startKube } from './kube-env.js';

/**
 * Kubernetes mode against a real kube-apiserver + etcd. There is no kubelet or controller-manager:
 * the test plays their part (it creates the Pods a Deployment would run and sets Deployment status),
 * and says so. The controller runs as the shipped ServiceAccount with exactly the shipped Role.
 */
const NS = 'shop';
const GROUP = { group: 'graylane.dev', version: 'v1alpha1', namespace: NS };
let podIp = 10;

describe('Kubernetes mode on a real API server', () => {
  let env: KubeEnv;
  let saKubeconfig: string;
  const controllers: ChildProcess[] = [];

  async function deployment(name: string, image: string): Promise<void> {
    const body: V1Deployment = {
      metadata: { name, namespace: NS },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name, team: 'shop' } },
          spec: { containers: [{ name: 'app', image, ports: [{ containerPort: 8080 }] }] },
        },
      },
    };
    await env.apps.createNamespacedDeployment({ namespace: NS, body });
    await env.core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name },
        spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    await runPods(name);
  }

  /** What the Deployment controller and a kubelet would do: a Ready pod per replica, status rolled out. */
  async function runPods(name: string): Promise<string> {
    const d = await env.apps.readNamespacedDeployment({ name, namespace: NS });
    const podName = `${name}-${d.metadata!.generation}-${podIp}`;
    const ip = `10.1.0.${podIp++}`;
    await env.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: podName, labels: d.spec!.template.metadata!.labels },
        spec: d.spec!.template.spec!,
      },
    });
    const pod = await env.core.readNamespacedPod({ name: podName, namespace: NS });
    pod.status = { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] };
    await env.core.replaceNamespacedPodStatus({ name: podName, namespace: NS, body: pod });
    d.status = {
      observedGeneration: d.metadata!.generation,
      replicas: 1,
      updatedReplicas: 1,
      readyReplicas: 1,
      availableReplicas: 1,
    };
    await env.apps.replaceNamespacedDeploymentStatus({ name, namespace: NS, body: d });
    return ip;
  }

  const release = async (name: string) =>
    (await env.custom.getNamespacedCustomObject({ ...GROUP, plural: 'releases', name })) as {
      metadata: { uid: string; annotations?: Record<string, string> };
      status?: {
        phase?: string;
        weight?: number;
        conditions?: Array<{ type: string; status: string; message: string }>;
      };
    };
  const deploymentOrUndefined = (name: string) =>
    env.apps.readNamespacedDeployment({ name, namespace: NS }).catch(() => undefined);
  const annotate = (name: string, value: string) =>
    env.custom.patchNamespacedCustomObject({
      ...GROUP,
      plural: 'releases',
      name,
      body: [
        { op: 'add', path: '/metadata/annotations', value: { 'graylane.dev/request': value } },
      ],
    });

  function startControllerProcess(port: number): ChildProcess {
    const child = spawn(
      process.execPath,
      [
        BIN,
        'controller',
        '--kubernetes',
        '--kubeconfig',
        saKubeconfig,
        '--namespace',
        NS,
        '--listen',
        `127.0.0.1:${port}`,
        '--lease-duration',
        '3s',
        '--log-level',
        'warn',
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    controllers.push(child);
    return child;
  }

  beforeAll(async () => {
    env = await startKube();
    await applyYaml(env, deployFile('crds.yaml'));
    for (const name of ['releases.graylane.dev', 'entrypoints.graylane.dev']) {
      await until(
        () =>
          env.objects.read({
            apiVersion: 'apiextensions.k8s.io/v1',
            kind: 'CustomResourceDefinition',
            metadata: { name },
          }),
        (crd) =>
          (
            (crd as { status?: { conditions?: Array<{ type: string; status: string }> } }).status
              ?.conditions ?? []
          ).some((c) => c.type === 'Established' && c.status === 'True'),
      );
    }
    await env.core.createNamespace({ body: { metadata: { name: NS } } });
    await applyYaml(env, deployFile('rbac.yaml'), NS);
    const token = await env.core.createNamespacedServiceAccountToken({
      name: 'graylane-controller',
      namespace: NS,
      body: { spec: { expirationSeconds: 3600 } },
    });
    const cluster = env.kc.getCurrentCluster()!;
    saKubeconfig = `${env.dir}/controller.kubeconfig`;
    writeFileSync(
      saKubeconfig,
      `apiVersion: v1\nkind: Config\nclusters: [{ name: test, cluster: { server: "${cluster.server}", insecure-skip-tls-verify: true } }]\nusers: [{ name: controller, user: { token: "${token.status!.token}" } }]\ncontexts: [{ name: test, context: { cluster: test, user: controller, namespace: ${NS} } }]\ncurrent-context: test\n`,
    );
    await deployment('backend', 'backend:1');
    await deployment('frontend', 'frontend:1');
    await env.custom.createNamespacedCustomObject({
      ...GROUP,
      plural: 'entrypoints',
      body: {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Entrypoint',
        metadata: { name: 'shop' },
        spec: { service: 'frontend' },
      },
    });
  }, 1_800_000);

  afterAll(async () => {
    for (const child of controllers) child.kill('SIGKILL');
    await env?.stop();
  });

  it('refuses a Release the CRD schema rejects, and reports one whose references are wrong as a condition', async () => {
    const invalid = env.custom.createNamespacedCustomObject({
      ...GROUP,
      plural: 'releases',
      body: {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Release',
        metadata: { name: 'bad' },
        spec: {
          lane: 'gray',
          entrypoint: 'shop',
          services: [
            { name: 'backend', canary: { version: 'v2', image: 'b:2', endpoints: ['http://x:1'] } },
          ],
          steps: [{ weight: 150 }],
        },
      },
    });
    await expect(invalid).rejects.toMatchObject({ code: 422 });
    const port = await freePort();
    startControllerProcess(port);
    await env.custom.createNamespacedCustomObject({
      ...GROUP,
      plural: 'releases',
      body: {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Release',
        metadata: { name: 'ghost' },
        spec: {
          lane: 'blue',
          entrypoint: 'shop',
          services: [{ name: 'payments', canary: { version: 'v2', image: 'p:2' } }],
          steps: [{ weight: 10 }],
        },
      },
    });
    const reported = await until(
      () => release('ghost'),
      (r) => (r.status?.conditions ?? []).some((c) => c.type === 'Valid' && c.status === 'False'),
      30_000,
    );
    expect(reported.status?.conditions?.[0]?.message).toContain(
      'spec.services[0].name: no Deployment "payments"',
    );
    await env.custom.deleteNamespacedCustomObject({ ...GROUP, plural: 'releases', name: 'ghost' });
  });

  it('deploys canary Deployments bottom-up, routes the lane to their pods, promotes through the user Deployments', async () => {
    await env.custom.createNamespacedCustomObject({
      ...GROUP,
      plural: 'releases',
      body: {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Release',
        metadata: { name: 'checkout-v2' },
        spec: {
          lane: 'gray',
          entrypoint: 'shop',
          services: [
            { name: 'backend', canary: { version: 'v2', image: 'backend:2' } },
            { name: 'frontend', canary: { version: 'v2', image: 'frontend:2' } },
          ],
          steps: [{ weight: 20 }, { pause: {} }],
        },
      },
    });
    const owner = await release('checkout-v2');
    const backendCanary = await until(
      () => deploymentOrUndefined('backend-gray'),
      (d) => d !== undefined,
      30_000,
    );
    expect(backendCanary!.metadata?.labels).toMatchObject({
      'graylane.dev/lane': 'gray',
      'graylane.dev/service': 'backend',
      'graylane.dev/version': 'v2',
    });
    expect(backendCanary!.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Release',
      name: 'checkout-v2',
      uid: owner.metadata.uid,
    });
    expect(backendCanary!.spec?.template.metadata?.labels?.app).toBeUndefined();
    // Bottom-up: the frontend's canary waits until the backend's is available.
    await sleep(1_000);
    expect(await deploymentOrUndefined('frontend-gray')).toBeUndefined();
    const backendIp = await runPods('backend-gray');
    await until(
      () => deploymentOrUndefined('frontend-gray'),
      (d) => d !== undefined,
      30_000,
    );
    await runPods('frontend-gray');
    const paused = await until(
      () => release('checkout-v2'),
      (r) => r.status?.phase === 'Paused',
      30_000,
    );
    expect(paused.status?.weight).toBe(20);
    // The route table (mirrored in a ConfigMap before it is served) sends gray to the canary pods.
    const mirror = await env.core.readNamespacedConfigMap({
      name: 'graylane-routetable',
      namespace: NS,
    });
    const table = JSON.parse(mirror.data!['routetable.json']!) as {
      services: Record<string, { lanes: Record<string, { endpoints: string[] }> }>;
    };
    expect(table.services.backend?.lanes.gray?.endpoints).toEqual([`http://${backendIp}:8080`]);
    await annotate('checkout-v2', 'approve:1');
    // Promotion: the user's Deployments take the canary template; the test rolls them out.
    const patched = await until(
      () => env.apps.readNamespacedDeployment({ name: 'frontend', namespace: NS }),
      (d) => d.spec?.template.spec?.containers[0]?.image === 'frontend:2',
      30_000,
    );
    expect(patched.spec?.template.metadata?.labels).toMatchObject({
      app: 'frontend',
      team: 'shop',
      'graylane.dev/version': 'v2',
    });
    await runPods('frontend');
    await until(
      () => env.apps.readNamespacedDeployment({ name: 'backend', namespace: NS }),
      (d) => d.spec?.template.spec?.containers[0]?.image === 'backend:2',
      30_000,
    );
    await runPods('backend');
    const done = await until(
      () => release('checkout-v2'),
      (r) => r.status?.phase === 'Succeeded',
      30_000,
    );
    expect(done.status?.phase).toBe('Succeeded');
    expect(await deploymentOrUndefined('backend-gray')).toBeUndefined();
    expect(await deploymentOrUndefined('frontend-gray')).toBeUndefined();
    const events = await env.core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: 'involvedObject.name=checkout-v2',
    });
    expect(events.items.map((e) => e.reason)).toEqual(
      expect.arrayContaining(['CanaryReady', 'Approved', 'Finalised']),
    );
  });

  it('hands the release to the other replica when the leader dies, and it goes on from the status', async () => {
    const second = startControllerProcess(await freePort());
    await env.custom.createNamespacedCustomObject({
      ...GROUP,
      plural: 'releases',
      body: {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Release',
        metadata: { name: 'checkout-v3' },
        spec: {
          lane: 'gray',
          entrypoint: 'shop',
          services: [{ name: 'backend', canary: { version: 'v3', image: 'backend:3' } }],
          steps: [{ pause: {} }],
        },
      },
    });
    await until(
      () => deploymentOrUndefined('backend-gray'),
      (d) => d !== undefined,
      30_000,
    );
    await runPods('backend-gray');
    await until(
      () => release('checkout-v3'),
      (r) => r.status?.phase === 'Paused',
      30_000,
    );
    const leader = controllers[0]!;
    leader.kill('SIGKILL');
    const killedAt = Date.now();
    const lease = await until(
      () =>
        env.kc
          .makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ name: 'graylane-controller', namespace: NS }),
      (l) =>
        l.spec?.holderIdentity !== undefined && !l.spec.holderIdentity.endsWith(`-${leader.pid}`),
      30_000,
    );
    const takeover = Date.now() - killedAt;
    expect(lease.spec?.holderIdentity).toMatch(new RegExp(`-${second.pid}$`));
    // The lease (3 s) runs out at most 3 s after the kill; the other replica checks every 1 s. The
    // rest is a margin for a loaded machine (5 s measured with a load average of 16).
    expect(takeover).toBeLessThan(3_000 + 1_000 + 4_000);
    await annotate('checkout-v3', 'rollback:1');
    const rolled = await until(
      () => release('checkout-v3'),
      (r) => r.status?.phase === 'RolledBack',
      30_000,
    );
    process.stdout.write(
      `failover: the other replica led ${takeover} ms after the leader was killed (lease 3 s); the rollback was done ${Date.now() - killedAt} ms after\n`,
    );
    expect(rolled.status?.phase).toBe('RolledBack');
    expect(await deploymentOrUndefined('backend-gray')).toBeUndefined();
    expect(second.exitCode).toBeNull();
  });
});
