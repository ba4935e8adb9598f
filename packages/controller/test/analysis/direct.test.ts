import { analysisScenarios } from './scenarios.js';

analysisScenarios(
  'analysis with the direct provider: the controller scrapes the proxy itself',
  async () => ({
    provider: { type: 'direct' },
  }),
);
