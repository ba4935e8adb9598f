import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup,
  type RunningController,
  runningApps,
  shopRelease,
  startShop,
  yamlOf,
} from '../../packages/controller/test/graylane.js';

/**
 * The controller's status page in a real headless browser (Debian's chromium, driven by
 * playwright-core, which downloads no browser; .ci/run installs chromium when it is missing).
 * GRAYLANE_SCREENSHOT=FILE also saves the page at the 20 % step, as in docs/status-page.png.
 */
const CHROMIUM = process.env.GRAYLANE_CHROMIUM ?? '/usr/bin/chromium';

describe('the status page: a release walking its steps, live, and its buttons', () => {
  let ctl: RunningController;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    ctl = await startShop();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    expect(await ctl.stop()).toBe(0);
    expect(runningApps()).toEqual([]);
    cleanup(ctl.stateDir);
  });

  const section = () => page.locator('section[data-release="page-v2"]');
  const phase = () => section().locator('.phase');

  it('is served at / and follows the controller live, without a reload', async () => {
    await page.goto(`${ctl.url}/`);
    await page.locator('#live.on').waitFor();
    await expect.poll(() => page.locator('main').textContent()).toContain('No releases');
    const release = shopRelease('page-v2', [{ pause: {} }, { weight: 20 }, { pause: {} }]);
    expect((await ctl.api('POST', '/v1/apply', yamlOf([release]))).status).toBe(200);
    // The same page, no reload: the release appears, deploys, and waits at its first step.
    await expect.poll(() => phase().textContent(), { timeout: 60_000 }).toBe('Paused');
    expect(await section().locator('.step').textContent()).toBe('1/3');
    expect(await section().locator('.facts').textContent()).toContain('waiting for approval');
    // The lane's path, caller first, each canary routed.
    expect(await section().locator('.svc b').allTextContents()).toEqual(['frontend', 'backend']);
    expect(await section().locator('.svc.routed').count()).toBe(2);
  }, 90_000);

  it('refuses a button press without the token and leaves the release as it was', async () => {
    await section().locator('button[data-action="approve"]').click();
    await expect
      .poll(() => section().locator('.result').textContent())
      .toContain('approve refused: GRAYLANE_ERR_UNAUTHORIZED');
    expect((await ctl.release('page-v2')).status.step).toBe(0);
  });

  it('approves with the token: the page shows the next steps (weight 20, step 3/3)', async () => {
    const token = readFileSync(join(ctl.stateDir, 'token'), 'utf8').trim();
    await page.locator('#token').fill(token);
    await page.locator('#token').dispatchEvent('change');
    await section().locator('button[data-action="approve"]').click();
    await expect
      .poll(() => section().locator('.step').textContent(), { timeout: 30_000 })
      .toBe('3/3');
    expect(await section().locator('.weight').textContent()).toBe('20');
    expect(await phase().textContent()).toBe('Paused');
    const api = await ctl.release('page-v2');
    expect([api.status.step, api.status.weight, api.status.phase]).toEqual([2, 20, 'Paused']);
    const events = await section().locator('details >> text=events').count();
    expect(events).toBe(1);
    expect(await section().textContent()).toContain('Approved');
    if (process.env.GRAYLANE_SCREENSHOT)
      await page.screenshot({ path: process.env.GRAYLANE_SCREENSHOT, fullPage: true });
  }, 60_000);

  it('rolls back from the rollback button: the phase changes in the controller and on the page', async () => {
    await section().locator('button[data-action="rollback"]').click();
    await expect.poll(() => phase().textContent(), { timeout: 60_000 }).toBe('RolledBack');
    expect((await ctl.release('page-v2')).status.phase).toBe('RolledBack');
    expect(await section().locator('button[data-action="rollback"]').isDisabled()).toBe(true);
  }, 90_000);
});
