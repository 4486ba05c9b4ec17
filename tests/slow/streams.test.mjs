// The long suite (make test-slow): 1,000 concurrent paced streams through one gateway, none of them stalled, every
// one complete, and the gateway's memory bounded while they run. Figures are printed, not judged as timings:
// what is asserted is correctness (no stall, no loss) and a generous memory ceiling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { startStandin } from '../fakes/standin.mjs';
import { startGateway } from '../e2e/harness.mjs';

const STREAMS = Number(process.env.STREAMS ?? 1000);
const PACE_MS = 50;
const PIECES = 40; /* about 2 s per stream */

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

test(`${STREAMS} concurrent paced streams: none stalls, all complete`, async () => {
  const s = await startStandin({ maxRecords: STREAMS + 10 });
  const gw = await startGateway({ config: { access_log: false, providers: { openai: { base_url: `${s.url}/v1` } } } });
  const agent = new http.Agent({ keepAlive: true, maxSockets: STREAMS + 10 });
  const body = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  const idle = rssKiB(gw.proc.pid);
  let peak = idle;
  const sampler = setInterval(() => { peak = Math.max(peak, rssKiB(gw.proc.pid)); }, 100);
  let worstGap = 0;
  const one = () => new Promise((resolve, reject) => {
    const req = http.request(gw.base('openai/chat/completions'), {
      agent, method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body),
        'x-standin-pace-ms': String(PACE_MS), 'x-standin-chunks': String(PIECES) },
    }, (res) => {
      let last = Date.now();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { const now = Date.now(); worstGap = Math.max(worstGap, now - last); last = now; text += d; });
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: STREAMS }, one));
  const took = Date.now() - t0;
  clearInterval(sampler);
  const content = (t) => (t.match(/"content":"/g) ?? []).length;
  for (const t of results) {
    assert.ok(t.endsWith('data: [DONE]\n\n'), 'a stream did not complete');
    assert.equal(content(t), PIECES + 1); /* the role chunk carries content "" too */
  }
  console.log(`# ${STREAMS} streams x ${PIECES} pieces @${PACE_MS} ms: ${took} ms, worst gap between chunks ${worstGap} ms, ` +
    `gateway RSS idle ${(idle / 1024).toFixed(1)} MiB, peak ${(peak / 1024).toFixed(1)} MiB`);
  /* a stall would show as a gap of many pace intervals */
  assert.ok(worstGap < PACE_MS * 20, `a stream stalled for ${worstGap} ms`);
  assert.ok(peak < 256 * 1024, `RSS peaked at ${peak} KiB`);
  agent.destroy();
  await gw.stop();
  await s.close();
});
