import { type BinRun, runBin } from '../../packages/router-proxy/test/helpers.js';

/** The graylane-proxy bin as gateway and sidecar (with its admin), fed by a watched route-table file. */
export function startMeshProxy(tableFile: string): Promise<BinRun> {
  const listeners = ['--gateway', '--outbound', '--admin'].flatMap((flag) => [flag, '127.0.0.1:0']);
  return runBin(['--route-table', tableFile, ...listeners], {}, 3);
}
