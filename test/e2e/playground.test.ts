/**
 * The layer playground in the built app, in real Chromium on WASM: load stories260K from the
 * local mirror; the dense numbers show at once; removing layers 2 then 0 (compensated), then
 * switching compensation off, then restoring every layer — each time the perplexity, the
 * magnitude curve and the scales shown equal what src/app/playground.ts gives for that state
 * on onnxruntime-node in this process, within 1e-4 relative (float32 rounding of two runtimes);
 * the URL holds the state, and reloading it restores the state and its numbers. At 375 px the
 * panel fits the width (wide tables scroll in their wrapper); axe finds no serious or critical
 * violation in the panel at either width. Screenshots under test-results/e2e/layer-playground/.
 */
import AxeBuilder from '@axe-core/playwright';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Playground, type PlaygroundResult } from '../../src/app/playground';
import { loadModelPath } from '../../src/engine/formats/load-node';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { loadFromCatalog, relErr, waitForTestId } from './app';
import { openBrowser, screenshotsDir, type Browser } from './browser';
import { sharedDir } from './cli';

/** WASM in Chromium against onnxruntime-node. */
const TOLERANCE = 1e-4;

interface Shown {
  ppl: number;
  dense: number;
  curve: { layer: number; value: number }[];
  scales: { layer: number; s: number | null }[];
}

/** Wait until the panel shows the answer for `state` ("2,0|1": removed layers in order | compensation), then read it. */
async function shown(page: Page, state: string): Promise<Shown> {
  await page.locator(`[data-testid=playground][data-state="${state}"][data-current=true]`).waitFor({ timeout: 60_000 });
  const ppl = page.getByTestId('playground-ppl');
  const rows = await page.getByTestId('playground-removal').evaluateAll((els) => els.map((e) => ({ layer: Number(e.getAttribute('data-layer')), s: e.getAttribute('data-scale') ? Number(e.getAttribute('data-scale')) : null })));
  return {
    ppl: Number(await ppl.getAttribute('data-value')),
    dense: Number(await ppl.getAttribute('data-dense')),
    curve: JSON.parse((await page.getByTestId('playground-curve').getAttribute('data-values'))!),
    scales: rows,
  };
}

/** axe's serious and critical violations inside the panel. */
async function panelViolations(page: Page): Promise<string[]> {
  const r = await new AxeBuilder({ page: page as never }).include('[data-testid=playground]').withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`);
}

/** The panel alone: test-results/e2e/layer-playground/{name}.png. */
async function panelShot(page: Page, name: string): Promise<void> {
  await page.getByTestId('playground').screenshot({ path: path.join(screenshotsDir, 'layer-playground', `${name}.png`) });
}

function expectEqual(page: Shown, node: PlaygroundResult): void {
  expect(relErr(page.ppl, node.current.ppl.ppl)).toBeLessThan(TOLERANCE);
  expect(relErr(page.dense, node.dense.ppl.ppl)).toBeLessThan(TOLERANCE);
  expect(page.curve.map((p) => p.layer)).toEqual(node.current.curve.map((p) => p.layer));
  page.curve.forEach((p, i) => expect(relErr(p.value, node.current.curve[i].value)).toBeLessThan(TOLERANCE));
  expect(page.scales.map((x) => x.layer)).toEqual(node.removals.map((x) => x.layer));
  page.scales.forEach((x, i) => (node.removals[i].s === null ? expect(x.s).toBeNull() : expect(relErr(x.s!, node.removals[i].s!)).toBeLessThan(TOLERANCE)));
}

describe.sequential('layer playground', () => {
  let browser: Browser;
  let oracle: Playground;
  const page = () => browser.page;

  beforeAll(async () => {
    const ck = await loadModelPath(path.join(sharedDir, 'models/stories260K/stories260K.bin'));
    const text = (f: string) => readFileSync(path.join(sharedDir, 'data/tinystories', f), 'utf8');
    oracle = Playground.fromTexts(ck, nodeRuntime(), text('calib.txt'), text('eval.txt'));
    browser = await openBrowser('layer playground');
    await browser.page.goto(`${inject('baseUrl')}?backend=wasm`);
    await waitForTestId(browser.page, 'catalog', 30_000);
  });
  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
  });

  it('shows the dense numbers once the model is loaded; removing layers updates perplexity, curve and scales as the node engine computes them', async () => {
    const p = page();
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'playground', 60_000);
    const dense = await shown(p, '|1');
    expectEqual(dense, await oracle.compute({ removed: [], compensate: true }));
    expect(dense.ppl).toBe(dense.dense);
    for (let k = 0; k < 5; k++) expect(await p.getByTestId(`layer-${k}`).getAttribute('aria-pressed')).toBe('false');

    await p.getByRole('button', { name: 'layer 2', exact: true }).click();
    expect(await p.getByTestId('layer-2').getAttribute('aria-pressed')).toBe('true');
    const one = await shown(p, '2|1');
    expectEqual(one, await oracle.compute({ removed: [2], compensate: true }));
    expect(one.ppl).toBeGreaterThan(one.dense);
    expect(one.curve.map((c) => c.layer)).toEqual([0, 1, 3, 4, 5]);

    await p.getByTestId('layer-0').click();
    const two = await shown(p, '2,0|1');
    expectEqual(two, await oracle.compute({ removed: [2, 0], compensate: true }));
    console.log(`[e2e] playground: dense ${dense.ppl}, −2 ${one.ppl}, −2,0 ${two.ppl} (s ${two.scales.map((x) => x.s).join(', ')})`);
    await browser.shot('two layers removed, compensated');
    await panelShot(p, 'panel-1280');
    expect(await panelViolations(p)).toEqual([]);
  });

  it('compensation off: the uncompensated model’s numbers; the URL holds the state and a reload restores it', async () => {
    const p = page();
    await p.getByTestId('playground-comp').uncheck();
    const off = await shown(p, '2,0|0');
    const node = await oracle.compute({ removed: [2, 0], compensate: false });
    expectEqual(off, node);
    expect(off.scales.every((x) => x.s === null)).toBe(true);
    expect(off.ppl).not.toBe((await oracle.compute({ removed: [2, 0], compensate: true })).current.ppl.ppl);
    const url = new URL(p.url());
    expect(url.searchParams.get('play')).toBe('2,0');
    expect(url.searchParams.get('comp')).toBe('0');
    expect(url.searchParams.get('backend')).toBe('wasm'); // the settings' parameters stay

    const t0 = Date.now();
    await p.reload();
    await waitForTestId(p, 'playground', 60_000);
    const t1 = Date.now();
    const again = await shown(p, '2,0|0');
    console.log(`[e2e] reload: model back after ${t1 - t0} ms, the playground's state after ${Date.now() - t1} ms more`);
    expect(again).toEqual(off);
    expect(await p.getByTestId('playground-comp').isChecked()).toBe(false);
    expect(await p.getByTestId('layer-0').getAttribute('aria-pressed')).toBe('true');
  });

  it('restoring every layer gives the dense numbers back; at 375 px the panel fits the width', async () => {
    const p = page();
    await p.getByTestId('layer-2').click();
    await p.getByTestId('layer-0').click();
    const back = await shown(p, '|0');
    expect(back.ppl).toBe(back.dense);
    expectEqual(back, await oracle.compute({ removed: [], compensate: false }));
    expect(new URL(p.url()).searchParams.has('play')).toBe(false);

    await p.getByTestId('playground-comp').check();
    await p.getByTestId('layer-3').click();
    await shown(p, '3|1');
    await p.setViewportSize({ width: 375, height: 800 });
    await p.getByTestId('playground').scrollIntoViewIfNeeded();
    // The panel's own content fits (the page as a whole is the layout's business: the catalog table is another panel's).
    const wide = await p
      .getByTestId('playground')
      .evaluate((panel) => [panel, ...panel.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > 375.5 && !e.parentElement?.closest('.table-wrap, details:not([open])')).map((e) => `${e.tagName} ${e.getAttribute('data-testid') ?? ''}`));
    expect(wide).toEqual([]);
    await browser.shot('375 px');
    await panelShot(p, 'panel-375');
    expect(await panelViolations(p)).toEqual([]);
  });
});
