// The explorer in a real browser: Debian's Chromium, driven by playwright-core (no downloaded
// browser). Run by test_melanoma_serve (Serve.ExplorerPageInChromium), which starts the server,
// compares what this prints with `melanoma explain`'s JSON, and fails on any problem reported here.
//
//   node explorer.mjs <url> <photo> <out-dir> [chromium] [device-scale-factor]
//
// Loads the page, uploads <photo>, explains it with CAM, then compares CAM and Grad-CAM side by
// side, then opens a data-set photo with its mask outline; every request to anything but <url> is
// blocked and reported. Writes <out-dir>/explorer.png (a screenshot) and prints one JSON object:
//   {explain: {method, regions, circles: [[cx, cy, r], ...], overlay_width}, compare: [{method, regions}],
//    mask_pixels, external_requests: [...], console_errors: [...]}
import {chromium} from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, photo, outDir, exe = '/usr/bin/chromium', scale = '1'] = process.argv.slice(2);
if (!url || !photo || !outDir) {
  console.error('usage: node explorer.mjs <url> <photo> <out-dir> [chromium] [device-scale-factor]');
  process.exit(2);
}
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-chromium-'));
const result = {external_requests: [], console_errors: []};
const T = 30000;

const context = await chromium.launchPersistentContext(profile, {
  acceptDownloads: true,
  executablePath: exe,
  headless: true,
  viewport: {width: 1400, height: 1000},
  deviceScaleFactor: Number(scale),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = context.pages()[0] || await context.newPage();
  const origin = new URL(url).origin;
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(origin) || u.startsWith('data:') || u.startsWith('blob:')) return route.continue();
    result.external_requests.push(u);
    return route.abort();
  });
  page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });
  page.on('pageerror', (e) => result.console_errors.push(String(e)));

  await page.goto(url);
  // Every method the server offers (/api/info) becomes an option of the method menu.
  const methods = await page.evaluate(async () => (await (await fetch('/api/info')).json()).methods.length);
  if (methods < 1) throw new Error('/api/info lists no methods');
  await page.waitForFunction((n) => document.querySelectorAll('#method option').length === n, methods, {timeout: T});

  // Upload, then CAM.
  await page.setInputFiles('#file', photo);
  await page.waitForFunction(() => document.querySelector('#overlay').dataset.method, null, {timeout: T});
  await page.selectOption('#method', 'cam');
  await page.click('#explain');
  await page.waitForFunction(() => document.querySelector('#overlay').dataset.method === 'cam' &&
                                   document.querySelector('#overlay').complete &&
                                   document.querySelector('#glass-method').textContent === 'CAM', null, {timeout: T});
  // The JSON the page offers for download, read back through its own link.
  const [download] = await Promise.all([page.waitForEvent('download', {timeout: T}), page.click('#dl-json')]);
  const j = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  const explained = await page.evaluate((j) => {
    const circles = [...document.querySelectorAll('#regions-svg circle')].map(
        (c) => [+c.getAttribute('cx'), +c.getAttribute('cy'), +c.getAttribute('r')]);
    return {method: j.method, regions: j.regions, circles, overlay_width: document.querySelector('#overlay').naturalWidth,
            rows: document.querySelectorAll('#regions tbody tr').length,
            glass_maps: document.querySelector('#glass').hidden ? 0 : document.querySelectorAll('#glass-maps img').length, png: document.querySelector('#dl-png').href.length};
  }, j);
  result.explain = explained;

  // Two methods side by side (CAM and Grad-CAM are ticked by default).
  await page.click('#compare');
  await page.waitForFunction(() => document.querySelectorAll('#compare-grid figure img').length === 2, null, {timeout: T});
  result.compare = await page.evaluate(() => state.lastCompare.results.map((r) => ({method: r.method, regions: r.regions})));
  await page.screenshot({path: path.join(outDir, 'explorer.png'), fullPage: false});

  // A data-set photo with its expert mask: the outline is drawn.
  const masked = await page.$('#grid figure[title*="with mask"]');
  if (masked) {
    await masked.click();
    await page.waitForFunction(() => state.photo && state.photo.kind === 'dataset' && state.last &&
                                     document.querySelector('#scores').textContent.includes('Dice'), null, {timeout: T});
    await page.waitForTimeout(300);
    result.mask_pixels = await page.evaluate(() => {
      const c = document.querySelector('#mask-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
      return n;
    });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({path: path.join(outDir, 'explorer-dataset.png'), fullPage: false});
  }
} finally {
  await context.close();
  fs.rmSync(profile, {recursive: true, force: true});
}
console.log(JSON.stringify(result));
