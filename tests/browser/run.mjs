// Loads page.html in headless Chromium (Debian's /usr/bin/chromium) through a local HTTP server
// that serves only the page and MQTT.js from node_modules: nothing is fetched from elsewhere.
//
// Usage: node run.mjs WS_URL PROTOCOL_VERSION
// Prints the page's log and its result (JSON) and exits 0 when the page reports success.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [wsUrl, version] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const files = {
  '/': ['page.html', 'text/html; charset=utf-8'],
  '/mqtt.min.js': ['node_modules/mqtt/dist/mqtt.min.js', 'text/javascript'],
};

const server = http.createServer((request, response) => {
  const file = files[request.url.split('?')[0]];
  if (!file) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'Content-Type': file[1] });
  fs.createReadStream(path.join(here, file[0])).pipe(response);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/?ws=${encodeURIComponent(wsUrl)}&v=${version}`;

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'roost-chromium-'));
let context;
let code = 1;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = await context.newPage();
  page.on('console', (message) => console.log(`page: ${message.text()}`));
  page.on('pageerror', (error) => console.log(`page error: ${error}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.roostResult !== undefined, null, { timeout: 30000 });
  const result = await page.evaluate(() => window.roostResult);
  console.log(`result: ${JSON.stringify(result)}`);
  code = result.ok ? 0 : 1;
} catch (error) {
  console.log(`failed: ${error}`);
} finally {
  if (context) await context.close();
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
