/** A bench result and an SVG well-formedness check, for the plot tests (unit and kernel tier). */
import { expect } from 'chai';
import type { BenchResult, Timing } from '../../src/cli/bench.js';

const T = (median: number, min: number, max: number, n: number, p5 = min, p95 = max): Timing => ({ median, min, max, p5, p95, n });

export const RESULT: BenchResult = {
  machine: 'AMD EPYC <test> & co x2, 23 GiB',
  kernel: '6.18.44-test',
  date: '2026-11-30T12:34:56.000Z',
  mode: 'tracepoint',
  lookups: [
    // one cold outlier each (the max): it must not stretch the picture
    { fds: 1000, memberships: 3, bpf: T(11.0, 10.2, 651.4, 2000, 10.4, 12.9), fdinfo: T(4300, 4100, 8500, 50, 4150, 4900), ratio: 390, source: 'bpf' },
    { fds: 10000, memberships: 3, bpf: T(9.0, 8.7, 120.2, 2000, 8.8, 11.1), fdinfo: T(49900, 48900, 63700, 20, 49000, 52000), ratio: 5570, source: 'bpf' },
    { fds: 19000, memberships: 3, bpf: T(9.2, 9.0, 83.6, 2000, 9.05, 10.7), fdinfo: T(93800, 92200, 2.5e6, 11, 92500, 106200), ratio: 10159, source: 'bpf' },
  ],
  flatness: 0.84,
  syscalls: { baseline: { ctl_pair_ns: 1406, getppid_ns: 175 }, tracked: { ctl_pair_ns: 2823, getppid_ns: 231 }, ctlPairRatio: 2823 / 1406, getppidRatio: 231 / 175 },
};

/**
 * A small well-formedness check: one root element, every start tag closed by
 * the matching end tag, quoted attributes, no bare `<` or `&` in text.
 * Returns the element names in document order.
 */
export function checkWellFormed(xml: string): string[] {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '').replace(/<!--[\s\S]*?-->/g, '');
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const text = body.slice(i, lt < 0 ? body.length : lt);
    expect(text, `text before offset ${lt}`).to.not.match(/&(?!(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);)/);
    if (stack.length === 0) expect(text.trim(), 'text outside the root element').to.equal('');
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    expect(m, `malformed tag at offset ${lt}: ${body.slice(lt, lt + 60)}`).to.not.equal(null);
    const [whole, close, name, , selfClose] = m!;
    if (close) {
      expect(stack.pop(), `</${name}> at offset ${lt}`).to.equal(name);
    } else {
      if (stack.length === 0) roots++;
      names.push(name);
      if (!selfClose) stack.push(name);
    }
    i = lt + whole.length;
  }
  expect(stack, 'unclosed elements').to.deep.equal([]);
  expect(roots, 'root elements').to.equal(1);
  return names;
}
