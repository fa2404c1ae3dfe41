/**
 * Teaching, in real Chromium on the built app: the guided tour from step 1 to the end by
 * keyboard only (it loads stories260K, removes a layer in the playground for the reader,
 * and every step outlines the part of the page it talks about), each step's URL (#tour=N)
 * opening that step, and axe-core on every stage of a person's path and of the tour (zero
 * serious or critical violations: WCAG 2 A/AA rules and axe's best practices). Screenshots of
 * every tour step at 1280 px and 375 px wide (test-results/e2e/the-guided-tour/); at 375 px
 * the page never scrolls sideways.
 *
 * The steps share one browser and depend on each other, in order.
 */
import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TOUR_STEPS } from '../../src/ui/tour/steps';
import { generate, runButton, setUpRun, STORIES_RUN, waitForResults, waitForTestId } from './app';
import { openBrowser, type Browser } from './browser';

const PHONE = { width: 375, height: 800 };
const DESKTOP = { width: 1280, height: 900 };

/** axe's serious and critical violations on the page now, as lines a person can act on. */
async function seriousViolations(page: Page): Promise<string[]> {
  const r = await new AxeBuilder({ page: page as never }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

/** How far the page scrolls sideways (0: not at all). */
const sidewaysScroll = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

describe.sequential('the guided tour', () => {
  let browser: Browser;
  const page = () => browser.page;
  /** every stage axe looked at, with what it found */
  const audits: { stage: string; violations: string[] }[] = [];
  const audit = async (stage: string) => {
    const violations = await seriousViolations(page());
    audits.push({ stage, violations });
    console.log(`[e2e] axe, ${stage}: ${violations.length} serious/critical`);
    return violations;
  };

  beforeAll(async () => {
    browser = await openBrowser('the guided tour', { viewport: DESKTOP });
  });
  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
  });

  it('a first visit has no serious accessibility problem, at 1280 px or 375 px, and never scrolls sideways on a phone', async () => {
    const p = page();
    await p.goto(inject('baseUrl'));
    await waitForTestId(p, 'catalog', 30_000);
    expect(await audit('first visit')).toEqual([]);
    await p.setViewportSize(PHONE);
    expect(await sidewaysScroll(p)).toBe(0);
    expect(await audit('first visit, 375 px')).toEqual([]);
    await p.setViewportSize(DESKTOP);
  });

  it('runs from step 1 to the end by keyboard: it loads stories260K, removes a layer for the reader, and outlines what each step is about', async () => {
    const p = page();
    // Start it from the keyboard: Tab to the button, Enter.
    const start = p.getByTestId('tour-start');
    await start.focus();
    await p.keyboard.press('Enter');
    const tour = p.getByTestId('tour');
    await tour.waitFor({ state: 'visible', timeout: 5_000 });

    for (let i = 0; i < TOUR_STEPS.length; i++) {
      const step = TOUR_STEPS[i];
      await expect.poll(() => tour.getAttribute('data-step'), { timeout: 5_000 }).toBe(String(i + 1));
      expect(new URL(p.url()).hash).toBe(`#tour=${i + 1}`);
      expect(await p.getByTestId('tour-title').innerText()).toBe(step.title);
      // Focus is in the panel (its title), so the arrow keys drive it.
      expect(await p.evaluate(() => document.activeElement?.closest('[data-testid=tour]') !== null)).toBe(true);

      // A step's own action, by keyboard: load the model (step 1), remove a layer (step 3).
      const action = p.getByTestId('tour-action');
      if (step.id === 'stack' && (await action.count())) {
        await action.focus();
        await p.keyboard.press('Enter');
        await waitForTestId(p, 'model-summary', 60_000);
      }
      if (step.id === 'remove') {
        await action.waitFor({ state: 'visible', timeout: 30_000 });
        const before = await p.getByTestId('playground-ppl').getAttribute('data-value');
        await action.focus();
        await p.keyboard.press('Enter');
        await expect.poll(() => p.getByTestId('playground-ppl').getAttribute('data-value'), { timeout: 30_000 }).not.toBe(before);
        await p.getByTestId('playground-busy').waitFor({ state: 'detached', timeout: 30_000 });
        expect(await p.locator('[data-testid^=layer-][aria-pressed=true]').count()).toBe(1);
        expect(await p.getByTestId('tour-body').innerText()).toMatch(/removed, no compensation: perplexity [\d.]+ against the dense model’s [\d.]+/);
      }

      if (step.id === 'fold') {
        // compensate the playground's removal: s is measured, folded, and shown with its magnitudes
        await action.focus();
        await p.keyboard.press('Enter');
        await expect.poll(() => p.getByTestId('tour-body').innerText(), { timeout: 30_000 }).toMatch(/In the playground, compensated: layer \d+ with s = [\d.]+ \([\d.]+ \/ [\d.]+ in mean \|X\|\); perplexity [\d.]+/);
      }

      // The step outlines its target, one of the parts it names.
      const outlined = p.locator('.tour-target');
      await expect.poll(() => outlined.count(), { timeout: 10_000 }).toBe(1);
      expect(await outlined.evaluate((el, selectors) => selectors.some((sel) => el.matches(sel)), step.targets)).toBe(true);
      // Its formulas are typeset (MathML), at least those it shows without a run.
      expect(await p.getByTestId('tour-body').locator('math').count()).toBeGreaterThanOrEqual(step.body({ model: null, result: null, example: false, playground: null }).filter((b) => 'math' in b).length);

      await browser.shot(`step ${i + 1} ${step.id}, 1280 px`);
      expect(await audit(`tour step ${i + 1}`)).toEqual([]);
      await p.setViewportSize(PHONE);
      expect(await sidewaysScroll(p)).toBe(0);
      await browser.shot(`step ${i + 1} ${step.id}, 375 px`);
      await p.setViewportSize(DESKTOP);
      await p.getByTestId('tour-title').focus();

      if (i < TOUR_STEPS.length - 1) await p.keyboard.press('ArrowRight');
    }
    // The end: Finish closes it, by keyboard.
    await p.getByTestId('tour-finish').focus();
    await p.keyboard.press('Enter');
    await tour.waitFor({ state: 'detached', timeout: 5_000 });
    expect(new URL(p.url()).hash).toBe('');
  });

  it('each step’s URL opens that step (a fresh load of #tour=N)', async () => {
    const p = page();
    const base = new URL(p.url());
    for (let i = 0; i < TOUR_STEPS.length; i++) {
      base.hash = `tour=${i + 1}`;
      await p.goto('about:blank');
      await p.goto(base.href);
      await expect.poll(() => p.getByTestId('tour').getAttribute('data-step'), { timeout: 10_000 }).toBe(String(i + 1));
      expect(await p.getByTestId('tour-title').innerText()).toBe(TOUR_STEPS[i].title);
    }
    // ← walks back; Esc closes.
    await p.getByTestId('tour-title').focus();
    await p.keyboard.press('ArrowLeft');
    await expect.poll(() => p.getByTestId('tour').getAttribute('data-step')).toBe(String(TOUR_STEPS.length - 1));
    await p.keyboard.press('Escape');
    await p.getByTestId('tour').waitFor({ state: 'detached', timeout: 5_000 });
  });

  it('the rest of a person’s path has no serious accessibility problem: a run, its results and curve, generation', async () => {
    const p = page();
    await waitForTestId(p, 'model-summary', 60_000);
    await audit('model loaded');
    await setUpRun(p, STORIES_RUN);
    await runButton(p).click();
    await waitForResults(p, 120_000);
    await audit('results');
    const draw = p.getByTestId('curve-draw');
    if (await draw.count()) {
      await draw.click();
      await waitForTestId(p, 'curve-chart', 120_000);
      await audit('the curve');
    }
    await generate(p, { prompt: 'Once upon a time', tokens: 8 }, 60_000);
    await audit('generated');
    await p.setViewportSize(PHONE);
    expect(await sidewaysScroll(p)).toBe(0);
    await audit('results, 375 px');
    await browser.shot('results, 375 px');
    await p.setViewportSize(DESKTOP);
    const failing = audits.filter((a) => a.violations.length);
    expect(failing, failing.map((a) => `${a.stage}:\n  ${a.violations.join('\n  ')}`).join('\n')).toEqual([]);
  });

  it('threw no uncaught exception in the page or its workers along the way', () => {
    expect(browser.errors).toEqual([]);
  });
});
