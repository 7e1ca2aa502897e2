// Drives Debian's chromium (headless, through playwright-core) against colplaid's search
// page: pick the index, type a query, read the ranked results, open the token-match view of
// the first result. Prints what it saw as JSON on stdout (test_browser.py compares it with
// the API) and saves screenshots into OUT_DIR. Requests to anything but the server are
// blocked and reported: the page must be self-contained.
//   node browser.js URL OUT_DIR QUERY
const { chromium } = require('playwright-core');
const path = require('path');

async function main() {
  const [url, outDir, query] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 120000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const seen = { external: [], errors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1180, height: 860 } });
    page.setDefaultTimeout(60000);
    const origin = new URL(url).origin;
    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (new URL(u).origin !== origin) { seen.external.push(u); return route.abort(); }
      return route.continue();
    });
    page.on('pageerror', (e) => seen.errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') seen.errors.push(m.text()); });
    await page.goto(url + '/');
    seen.title = await page.title();
    await page.waitForSelector('#index option', { state: 'attached' });
    seen.indexes = await page.$$eval('#index option', (os) => os.map((o) => o.value));
    // An empty query: a message, no request.
    await page.click('#go');
    seen.empty_status = await page.textContent('#status');
    await page.fill('#q', query);
    await page.press('#q', 'Enter');
    await page.waitForSelector('li.hit');
    seen.status = await page.textContent('#status');
    seen.hits = await page.$$eval('li.hit', (lis) => lis.map((li) => ({
      id: li.dataset.id,
      score: parseFloat(li.querySelector('.score').textContent),
      text: li.querySelector('.text').textContent,
    })));
    await page.screenshot({ path: path.join(outDir, 'browser-results.png'), fullPage: false });
    await page.click('li.hit >> nth=0 >> .explain-btn');
    await page.waitForSelector('li.hit >> nth=0 >> table.matches td');
    seen.matches = await page.$$eval('li.hit:first-child table.matches tr', (trs) => trs.slice(1).map(
      (tr) => Array.from(tr.querySelectorAll('td')).slice(0, 3).map((td) => td.textContent)));
    seen.highlighted = await page.$$eval('li.hit:first-child .doctoks span',
      (ss) => ss.filter((s) => s.style.background).map((s) => s.textContent));
    seen.note = await page.textContent('li.hit:first-child .note');
    seen.lexical_terms = await page.$$eval('li.hit:first-child .lexical .term',
      (ss) => ss.map((s) => ({ term: s.textContent, matched: s.classList.contains('matched') })));
    const first = await page.$('li.hit:first-child');
    await first.screenshot({ path: path.join(outDir, 'browser-explain.png') });
    await page.screenshot({ path: path.join(outDir, 'browser-page.png'), fullPage: true });
    // The mode switch: the same query in hybrid mode.
    await page.selectOption('#mode', 'hybrid');
    await page.click('#go');
    await page.waitForFunction(() => !document.querySelector('li.hit .explain[data-loaded]'));
    await page.waitForSelector('li.hit');
    seen.hybrid_hits = await page.$$eval('li.hit', (lis) => lis.map((li) => ({
      id: li.dataset.id, score: parseFloat(li.querySelector('.score').textContent) })));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + '\n');
}

main().catch((e) => { console.error('browser test: ' + (e && e.stack || e)); process.exit(1); });
