import { managedProxyMetrics, startPrometheus } from './prometheus-server.js';
import { analysisScenarios } from './scenarios.js';

analysisScenarios('analysis with a real Prometheus server scraping the proxy', async (ctl) => {
  const prometheus = await startPrometheus([managedProxyMetrics(ctl.stateDir)]);
  return { provider: { type: 'prometheus', address: prometheus.url }, stop: prometheus.stop };
});
